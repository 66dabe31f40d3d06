"""Readers for anomaly-detection sound datasets -> AnomalySplits of stored log-mel spectrograms.

- MIMII: <machine_type>/<id>/{normal,abnormal}/*.wav (each SNR's archive unpacks to that tree)
- DCASE task 2 (2020): dev_data/<machine>/{train,test}/{normal,anomaly}_id_XX_*.wav
  (2021+ names, section_XX_..._{normal,anomaly}_*.wav, read the same way)
- a folder of clips: train/normal/, [val/normal/], test/normal/, test/<kind>/ (modalities/anomaly_files.py)

Files are decoded, resampled and cut by modalities.audio.readers, exactly as the modality's own data.
Real datasets do not say which fault a sample shows; their anomalies all get the kind "anomaly".
"""
from __future__ import annotations

import re
from pathlib import Path

from modalities import anomaly_files
from modalities.anomaly_files import FileList, kind_labels, require_dir, subfolders, to_split
from modalities.audio.readers import AUDIO_SUFFIXES, audio_files, read_clips
from modalities.splits import ANOMALY, NORMAL, AnomalySplit, carve_val, holdout_normal

_DCASE_KIND = re.compile(r"(?:^|_)(normal|anomaly)_")
_DCASE_SOURCE = re.compile(r"(id_\d+|section_\d+)")


def read_audio_files(files: FileList, modality, on_corrupt: str, skipped: list[str], what: str,
                     labels: list[str] | None = None) -> AnomalySplit:
    """Sound files -> stored log-mel spectrograms (the audio modality's front end) with kinds and sources."""
    clips = read_clips([(path, i) for i, (path, _, _) in enumerate(files)], modality.clip_format, on_corrupt, skipped)
    if len(clips.y) == 0:
        raise ValueError(f"{what}: none of its {len(files)} clips could be read (all skipped as unreadable)")
    return to_split(modality.log_mel(clips.x), clips.y, files, labels or kind_labels(files))


def _wav_files(folder: Path) -> list[Path]:
    files = audio_files(folder) if folder.is_dir() else []
    if not files:
        raise ValueError(f"{folder}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return files


# ---- MIMII -----------------------------------------------------------------------------------------

def mimii_files(root: Path, machine_type: str) -> FileList:
    """root/<machine_type>/<id>/{normal,abnormal}/*.wav -> (path, 'normal' | 'anomaly', id) triples."""
    machine_dir = Path(root) / machine_type
    require_dir(machine_dir, f"MIMII machine type '{machine_type}'")
    ids = subfolders(machine_dir)
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


def dcase_files(root: Path, machine: str) -> dict[str, FileList]:
    """{'train', 'test'} file triples of one machine under root (dev_data, or the folder holding it)."""
    root = Path(root)
    base = root / "dev_data" if (root / "dev_data").is_dir() else root
    require_dir(base / machine, f"DCASE machine '{machine}'")
    parts = {}
    for part in ("train", "test"):
        require_dir(base / machine / part, f"DCASE {part} folder")
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
    return {**carve_val(train, val_fraction, seed), "test": test}


# ---- a folder of clips -----------------------------------------------------------------------------

def read_anomaly_folder(root: Path, modality, on_corrupt: str, skipped: list[str],
                        val_fraction: float, seed: int) -> dict[str, AnomalySplit]:
    """An anomaly folder of sound files (the layout in modalities/anomaly_files.py)."""
    def read(files: FileList, what: str, labels: list[str]) -> AnomalySplit:
        return read_audio_files(files, modality, on_corrupt, skipped, what, labels)

    return anomaly_files.read_anomaly_folder(root, AUDIO_SUFFIXES, read, val_fraction, seed)
