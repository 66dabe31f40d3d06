"""Readers for the audio datasets users have, each returning float32 waveforms (N, samples) + labels.

- Google Speech Commands: word folders, `validation_list.txt` / `testing_list.txt`, `_background_noise_`
- ESC-50: `meta/esc50.csv` (filename, fold, target, category) and `audio/*.wav`
- a folder per class of WAV / FLAC / OGG files

Every clip is read with soundfile, mixed down to mono, resampled to the configured rate with
torchaudio, and cut or zero-padded to the configured length (`fit_length`, the app's own rule).
"""
from __future__ import annotations

import csv
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from devices.preprocess.audio import fit_length  # the app's pad/crop rule, shared so the two cannot drift
from modalities.class_folders import files_per_class
from modalities.splits import CorruptFileError, read_labelled, seeded_sample

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
UNKNOWN = "unknown"
BACKGROUND_DIR = "_background_noise_"


@dataclass(frozen=True)
class ClipFormat:
    """How every clip is conformed: rate, length in samples, and where a longer/shorter clip is cut/padded."""

    sample_rate: int
    samples: int
    crop: str  # "center" | "start"


@dataclass
class Clips:
    x: np.ndarray  # float32 (N, samples)
    y: np.ndarray  # int64 (N,)


@lru_cache(maxsize=128)
def _resampler(orig_rate: int, new_rate: int) -> torchaudio.transforms.Resample:
    """torchaudio.functional.resample with its filter built once per rate pair (a dataset has few)."""
    return torchaudio.transforms.Resample(orig_rate, new_rate)


@contextmanager
def one_torch_thread():
    """torch's CPU kernels split sums differently with the thread count (~1e-7 apart): written data must
    not depend on the host's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def resample(waveform: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    if orig_rate == new_rate:
        return waveform
    with torch.inference_mode(), one_torch_thread():
        return _resampler(orig_rate, new_rate)(torch.from_numpy(waveform)).numpy()


def _wav_header_frames(path: Path) -> int | None:
    """The frame count a RIFF/WAVE header promises (its data chunk size / block align); None for another
    format, or a streamed file whose header holds a placeholder size (0, or 2 GiB and up)."""
    with open(path, "rb") as f:
        riff = f.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            return None
        block_align = None
        while len(head := f.read(8)) == 8:
            chunk, size = head[:4], struct.unpack("<I", head[4:])[0]
            if chunk == b"data":
                return size // block_align if block_align and 0 < size < 0x7FFFF000 else None
            if chunk == b"fmt ":
                fmt = f.read(size + (size & 1))
                block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
            else:
                f.seek(size + (size & 1), 1)
    return None


def read_waveform(path: Path) -> tuple[np.ndarray, int]:
    """One file -> (mono float32 waveform, its sample rate). An undecodable, empty or truncated file, or one
    holding NaN / infinite samples, raises CorruptFileError."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    try:
        with sf.SoundFile(str(path)) as f:
            promised, rate = f.frames, f.samplerate
            data = f.read(dtype="float32", always_2d=True)
        # libsndfile caps a WAV's frame count to the bytes present, so its header is read here as well
        promised = max(promised, _wav_header_frames(path) or 0)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"{path}: cannot decode audio ({exc})") from exc
    if len(data) == 0:
        raise CorruptFileError(f"{path}: audio file has no samples")
    if len(data) < promised:
        raise CorruptFileError(f"{path}: truncated audio: the header promises {promised} frames, "
                               f"the file holds {len(data)}")
    finite = np.isfinite(data)
    if not finite.all():
        first = int(np.argwhere(~finite)[0][0])
        raise CorruptFileError(f"{path}: {int((~finite).sum())} NaN or infinite samples (first at frame {first}); "
                               "expected finite audio")
    return data.mean(axis=1), rate


def read_clip(path: Path, fmt: ClipFormat) -> np.ndarray:
    waveform, rate = read_waveform(path)
    return fit_length(resample(waveform, rate, fmt.sample_rate), fmt.samples, fmt.crop).astype(np.float32)


def read_clips(files: list[tuple[Path, int]], fmt: ClipFormat, on_corrupt: str, skipped: list[str]) -> Clips:
    """(path, label) pairs -> Clips; unreadable files raise, or are listed in `skipped` when on_corrupt is 'skip'."""
    xs, ys = read_labelled(files, lambda path: read_clip(path, fmt), on_corrupt, skipped)
    x = np.stack(xs) if xs else np.zeros((0, fmt.samples), np.float32)
    return Clips(x, np.asarray(ys, dtype=np.int64))


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def seeded_subset(items: list, max_items: int | None, seed: int) -> list:
    """A seeded random subset (in the original order), so a size cap does not just take the first classes."""
    return [items[i] for i in seeded_sample(len(items), max_items, seed)]


# ---- folder per class ---------------------------------------------------------------------------

def class_folder_files(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """root/<class>/**/<clip>.{wav,flac,ogg} -> ((path, label index) pairs, sorted class names)."""
    return files_per_class(root, AUDIO_SUFFIXES, "audio files", ignore_prefixes=(".", "_"))


# ---- Speech Commands ----------------------------------------------------------------------------

def _listed(root: Path, name: str) -> set[str]:
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Speech Commands split list not found")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def speech_commands_files(root: Path, keywords: list[str]) -> tuple[dict[str, list[tuple[Path, int]]], list[str]]:
    """Files per split (from the two list files; the rest is train); words outside `keywords` are 'unknown'."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Speech Commands folder not found")
    labels = [*keywords, UNKNOWN]
    val, test = _listed(root, "validation_list.txt"), _listed(root, "testing_list.txt")
    words = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    missing = sorted(set(keywords) - set(words))
    if missing:
        raise ValueError(f"{root}: keywords {missing} have no word folder (found {words})")
    empty = [str(root / word) for word in keywords if not audio_files(root / word)]
    if empty:
        raise ValueError(f"keyword folders {empty} hold no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    splits: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    for word in words:
        label = labels.index(word) if word in keywords else len(keywords)
        for path in audio_files(root / word):
            rel = path.relative_to(root).as_posix()
            splits["val" if rel in val else "test" if rel in test else "train"].append((path, label))
    return splits, labels


def cap_unknown(files: list[tuple[Path, int]], unknown: int, share: float | None, seed: int) -> list:
    """Keep at most share x (mean clips per keyword) 'unknown' clips, a seeded random choice."""
    if share is None:
        return files
    known = [f for f in files if f[1] != unknown]
    keywords = len({label for _, label in known}) or 1
    rest = seeded_subset([f for f in files if f[1] == unknown], int(round(share * len(known) / keywords)), seed)
    return known + rest


def background_noise(root: Path, fmt: ClipFormat, max_clips: int, on_corrupt: str, skipped: list[str]) -> np.ndarray:
    """`_background_noise_` recordings cut into clip-length pieces (float32 (K, samples); K may be 0)."""
    pieces = []
    for path in audio_files(root / BACKGROUND_DIR) if (root / BACKGROUND_DIR).is_dir() else []:
        try:
            waveform, rate = read_waveform(path)
        except CorruptFileError:
            if on_corrupt != "skip":
                raise
            skipped.append(str(path))
            continue
        waveform = resample(waveform, rate, fmt.sample_rate)
        pieces += [waveform[i:i + fmt.samples] for i in range(0, len(waveform) - fmt.samples + 1, fmt.samples)]
    step = max(1, len(pieces) // max_clips)  # spread over all recordings, not the first file only
    return np.stack(pieces[::step][:max_clips]).astype(np.float32) if pieces else np.zeros((0, fmt.samples), np.float32)


# ---- ESC-50 -------------------------------------------------------------------------------------

def esc50_files(root: Path, val_fold: int, test_fold: int) -> tuple[dict[str, list[tuple[Path, int]]], list[str]]:
    """Files per split by fold (the two named folds are val and test, the other three train)."""
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta}: ESC-50 metadata not found")
    with open(meta, newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"filename", "fold", "target", "category"}
    if not rows or not needed <= set(rows[0]):
        raise ValueError(f"{meta}: expected columns {sorted(needed)} and at least one row")
    names = {int(r["target"]): r["category"] for r in rows}
    labels = [names[t] for t in sorted(names)]
    splits: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    for r in rows:
        fold = int(r["fold"])
        split = "val" if fold == val_fold else "test" if fold == test_fold else "train"
        splits[split].append((root / "audio" / r["filename"], labels.index(r["category"])))
    return splits, labels
