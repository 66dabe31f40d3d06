"""Anomaly-detection data: the split every anomaly source produces, and readers for real datasets.

An `AnomalySplit` is a modality `Split` whose y is the anomaly kind, an index into `labels` with
labels[0] == "normal", plus `source`: where each sample came from (machine id, footage clip), so
metrics can be reported per machine as DCASE does. Real datasets do not say which fault a sample
shows; their anomalies all get the kind "anomaly".

Readers (audio through modalities.audio.readers, video through modalities.video.readers, so files
are decoded, resampled and cut exactly as the modalities' own data):
- MIMII: <machine_type>/<id>/{normal,abnormal}/*.wav (each SNR's archive unpacks to that tree)
- DCASE task 2 (2020): dev_data/<machine>/{train,test}/{normal,anomaly}_id_XX_*.wav
  (2021+ names, section_XX_..._{normal,anomaly}_*.wav, read the same way)
- a folder of clips, audio or video: train/normal/, [val/normal/], test/normal/, test/<kind>/
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modalities.audio import readers as audio_formats
from modalities.video import readers as video_formats
from modalities.base import Split

NORMAL = "normal"
ANOMALY = "anomaly"  # the kind of a real dataset's anomalous sample
_DCASE_KIND = re.compile(r"(?:^|_)(normal|anomaly)_")
_DCASE_SOURCE = re.compile(r"(id_\d+|section_\d+)")


@dataclass
class AnomalySplit(Split):
    """y: anomaly kind per sample (0 = normal); source: str (N,), where each sample came from."""

    source: np.ndarray | None = None

    def __post_init__(self):
        super().__post_init__()
        if not self.labels or self.labels[0] != NORMAL:
            raise ValueError(f"anomaly kinds must start with '{NORMAL}', got {self.labels}")
        self.source = np.full(len(self.y), "") if self.source is None else np.asarray(self.source, dtype=str)
        if len(self.source) != len(self.y):
            raise ValueError(f"split has {len(self.y)} samples but {len(self.source)} sources")

    @property
    def is_anomaly(self) -> np.ndarray:
        return self.y != 0

    @property
    def anomalous(self) -> int:
        return int(self.is_anomaly.sum())

    def arrays(self) -> dict[str, np.ndarray]:
        return {**super().arrays(), "source": self.source}

    def subset(self, indices: np.ndarray) -> AnomalySplit:
        return AnomalySplit(self.x[indices], self.y[indices], self.labels, self.source[indices])


def check_anomaly_splits(splits: dict[str, Split], what: str) -> None:
    """train and val hold normal samples only (the detector learns normal; val sets its threshold);
    test holds both normal and anomalous ones (else AUROC is undefined)."""
    for name in ("train", "val"):
        split = splits.get(name)
        if isinstance(split, AnomalySplit) and split.anomalous:
            raise ValueError(f"{what}: split '{name}' must hold normal samples only, but {split.anomalous} of its "
                             f"{len(split)} are anomalous ({sorted({split.labels[k] for k in split.y if k})})")
    test = splits.get("test")
    if isinstance(test, AnomalySplit) and not 0 < test.anomalous < len(test):
        raise ValueError(f"{what}: split 'test' must hold both normal and anomalous samples, it has "
                         f"{len(test) - test.anomalous} normal and {test.anomalous} anomalous")


def save_anomaly_split(split: AnomalySplit, path: str | Path) -> None:
    """A self-contained file (labels inside); a modality's save_split keeps labels in the manifest instead."""
    np.savez(path, **split.arrays(), labels=np.asarray(split.labels, dtype=str))


def load_anomaly_split(path: str | Path) -> AnomalySplit:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: anomaly split not found")
    with np.load(path, allow_pickle=False) as arrays:
        return AnomalySplit(arrays["x"], arrays["y"], arrays["labels"].tolist(), arrays["source"])


def holdout_normal(split: AnomalySplit, val_fraction: float, seed: int) -> dict[str, AnomalySplit]:
    """One labelled pool -> train / val (normal only) / test, per source as DCASE built its sets from
    MIMII: test gets every anomaly plus as many of the source's normal samples, val a seeded
    `val_fraction` of the remaining normal ones, train the rest."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for source in np.unique(split.source):
        mine = np.flatnonzero(split.source == source)
        anomalous, normal = mine[split.is_anomaly[mine]], rng.permutation(mine[~split.is_anomaly[mine]])
        n_test, n_val = len(anomalous), int(round(val_fraction * (len(normal) - len(anomalous))))
        if len(normal) <= n_test + n_val:
            raise ValueError(f"source '{source}': {len(normal)} normal samples cannot give {n_test} to test, "
                             f"{n_val} to val and some to train")
        parts["test"] += [anomalous, normal[:n_test]]
        parts["val"].append(normal[n_test:n_test + n_val])
        parts["train"].append(normal[n_test + n_val:])
    return {name: split.subset(np.sort(np.concatenate(idx))) for name, idx in parts.items()}


def planned_kinds(train: int, val: int, test_normal: int, test_anomalous: int, kinds: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Kind per sample of a generated set, in split order: train and val normal, then test's normal and
    anomalous samples (spread evenly over kinds 1..kinds-1) in a seeded order."""
    if min(train, val, test_normal, test_anomalous) < 1:
        raise ValueError("every split needs at least one sample (and test at least one anomalous sample)")
    anomalous = 1 + np.arange(test_anomalous) % (kinds - 1)
    test = rng.permutation(np.concatenate([np.zeros(test_normal, np.int64), anomalous]))
    return np.concatenate([np.zeros(train + val, np.int64), test])


def split_planned(x: np.ndarray, kinds: np.ndarray, labels: list[str], sources: np.ndarray, train: int,
                  val: int) -> dict[str, AnomalySplit]:
    """A generated set in `planned_kinds` order -> train / val / test."""
    bounds = {"train": (0, train), "val": (train, train + val), "test": (train + val, len(kinds))}
    return {name: AnomalySplit(x[a:b], kinds[a:b], labels, sources[a:b]) for name, (a, b) in bounds.items()}


# ---- reading files ---------------------------------------------------------------------------------
# A file list is (path, kind, source) triples; readers pass each file's position as its "label", so the
# positions that come back say which files were read (the rest were skipped as corrupt).

def _labels(files: list[tuple[Path, str, str]]) -> list[str]:
    return [NORMAL, *sorted({kind for _, kind, _ in files} - {NORMAL})]


def _to_split(x: np.ndarray, kept: np.ndarray, files: list[tuple[Path, str, str]], labels: list[str]) -> AnomalySplit:
    return AnomalySplit(x, np.asarray([labels.index(files[i][1]) for i in kept], dtype=np.int64), labels,
                        np.asarray([files[i][2] for i in kept], dtype=str))


def read_audio_files(files: list[tuple[Path, str, str]], modality, on_corrupt: str, skipped: list[str],
                     what: str, labels: list[str] | None = None) -> AnomalySplit:
    """Sound files -> stored log-mel spectrograms (the audio modality's front end) with kinds and sources."""
    clips = audio_formats.read_clips([(path, i) for i, (path, _, _) in enumerate(files)], modality.clip_format,
                                     on_corrupt, skipped)
    if len(clips.y) == 0:
        raise ValueError(f"{what}: none of its {len(files)} clips could be read (all skipped as unreadable)")
    return _to_split(modality.log_mel(clips.x), clips.y, files, labels or _labels(files))


def read_video_files(files: list[tuple[Path, str, str]], modality, on_corrupt: str, skipped: list[str],
                     what: str, labels: list[str] | None = None) -> AnomalySplit:
    """Video files -> stored uint8 clips (N, C, T, H, W) with kinds and sources."""
    clips = video_formats.ClipList([path for path, _, _ in files], np.arange(len(files)), [])
    x, kept = video_formats.read_clips(clips, modality.clip_format, on_corrupt, skipped, what)
    return _to_split(x, kept, files, labels or _labels(files))


def _wav_files(folder: Path) -> list[Path]:
    files = audio_formats.audio_files(folder) if folder.is_dir() else []
    if not files:
        raise ValueError(f"{folder}: no audio files ({', '.join(sorted(audio_formats.AUDIO_SUFFIXES))})")
    return files


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        found = [p.name for p in _subfolders(path.parent)] if path.parent.is_dir() else []
        raise FileNotFoundError(f"{path}: {what} not found" + (f" (found {found})" if found else ""))


# ---- MIMII -----------------------------------------------------------------------------------------

def mimii_files(root: Path, machine_type: str) -> list[tuple[Path, str, str]]:
    """root/<machine_type>/<id>/{normal,abnormal}/*.wav -> (path, 'normal' | 'anomaly', id) triples."""
    machine_dir = Path(root) / machine_type
    _require_dir(machine_dir, f"MIMII machine type '{machine_type}'")
    ids = _subfolders(machine_dir)
    if not ids:
        raise ValueError(f"{machine_dir}: expected one folder per machine id (id_00, ...), found none")
    files = []
    for id_dir in ids:
        files += [(path, NORMAL, id_dir.name) for path in _wav_files(id_dir / "normal")]
        if (id_dir / "abnormal").is_dir():
            files += [(path, ANOMALY, id_dir.name) for path in _wav_files(id_dir / "abnormal")]
    return files


def read_mimii(root: Path, machine_type: str, modality, on_corrupt: str, skipped: list[str],
               val_fraction: float, seed: int) -> dict[str, AnomalySplit]:
    """MIMII's one pool per machine id -> train / val / test as `holdout_normal` divides it."""
    files = mimii_files(root, machine_type)
    pool = read_audio_files(files, modality, on_corrupt, skipped, f"MIMII {machine_type} at {root}", [NORMAL, ANOMALY])
    return holdout_normal(pool, val_fraction, seed)


# ---- DCASE task 2 ----------------------------------------------------------------------------------

def _dcase_entry(path: Path) -> tuple[Path, str, str]:
    kind, source = _DCASE_KIND.search(path.name), _DCASE_SOURCE.search(path.name)
    if kind is None or source is None:
        raise ValueError(f"{path}: not a DCASE task 2 file name (expected e.g. normal_id_00_00000000.wav)")
    return path, kind.group(1), source.group(1)


def dcase_files(root: Path, machine: str) -> dict[str, list[tuple[Path, str, str]]]:
    """{'train', 'test'} file triples of one machine under root (dev_data, or the folder holding it)."""
    root = Path(root)
    base = root / "dev_data" if (root / "dev_data").is_dir() else root
    _require_dir(base / machine, f"DCASE machine '{machine}'")
    parts = {}
    for part in ("train", "test"):
        _require_dir(base / machine / part, f"DCASE {part} folder")
        parts[part] = [_dcase_entry(path) for path in _wav_files(base / machine / part)]
    stray = [str(p) for p, kind, _ in parts["train"] if kind != NORMAL]
    if stray:
        raise ValueError(f"{base / machine / 'train'}: the train folder must hold normal clips only, found {stray[:3]}")
    return parts


def read_dcase(root: Path, machine: str, modality, on_corrupt: str, skipped: list[str],
               val_fraction: float, seed: int) -> dict[str, AnomalySplit]:
    """DCASE's train (normal) and test folders; val is a seeded `val_fraction` of train, per machine id."""
    files = dcase_files(root, machine)
    labels = [NORMAL, ANOMALY]
    train = read_audio_files(files["train"], modality, on_corrupt, skipped, f"DCASE {machine} train", labels)
    test = read_audio_files(files["test"], modality, on_corrupt, skipped, f"DCASE {machine} test", labels)
    return {**_carve_val(train, val_fraction, seed), "test": test}


def _carve_val(train: AnomalySplit, val_fraction: float, seed: int) -> dict[str, AnomalySplit]:
    rng = np.random.default_rng(seed)
    val = [rng.permutation(np.flatnonzero(train.source == s))[: int(round(val_fraction * (train.source == s).sum()))]
           for s in np.unique(train.source)]
    val = np.sort(np.concatenate(val))
    return {"train": train.subset(np.setdiff1d(np.arange(len(train)), val)), "val": train.subset(val)}


# ---- a folder of clips -----------------------------------------------------------------------------

def anomaly_folder_files(root: Path, suffixes: set[str]) -> dict[str, list[tuple[Path, str, str]]]:
    """root/train/normal/, [root/val/normal/], root/test/normal/ and root/test/<kind>/ (any other name is an
    anomaly kind) -> file triples per split; the source is the file's folder."""
    root = Path(root)
    parts = {}
    for part in ("train", "val", "test"):
        if part == "val" and not (root / part).is_dir():
            continue
        _require_dir(root / part / NORMAL, f"'{part}/{NORMAL}' folder")
        kinds = _subfolders(root / part) if part == "test" else [root / part / NORMAL]
        strays = [k.name for k in _subfolders(root / part) if k.name != NORMAL] if part != "test" else []
        if strays:
            raise ValueError(f"{root / part}: training data must be normal only, found folders {strays}")
        parts[part] = [(path, folder.name, str(path.parent.relative_to(root)))
                       for folder in kinds for path in _clip_files(folder, suffixes)]
    return parts


def _clip_files(folder: Path, suffixes: set[str]) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise ValueError(f"{folder}: no clips ({', '.join(sorted(suffixes))})")
    return files


_FOLDER_READERS = {"audio": (audio_formats.AUDIO_SUFFIXES, read_audio_files),
                   "video": (video_formats.VIDEO_SUFFIXES, read_video_files)}


def read_anomaly_folder(root: Path, modality, on_corrupt: str, skipped: list[str],
                        val_fraction: float, seed: int) -> dict[str, AnomalySplit]:
    """The folder layout above, of the modality's clips (audio or video); val carved from train if absent."""
    if modality.kind not in _FOLDER_READERS:
        raise ValueError(f"anomaly folders hold audio or video clips, not {modality.kind}")
    suffixes, read = _FOLDER_READERS[modality.kind]
    files = anomaly_folder_files(root, suffixes)
    labels = _labels(files["test"])
    splits = {part: read(f, modality, on_corrupt, skipped, f"{root}/{part}", labels) for part, f in files.items()}
    if "val" not in splits:
        splits.update(_carve_val(splits["train"], val_fraction, seed))
    return splits
