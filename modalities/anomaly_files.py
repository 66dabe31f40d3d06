"""Anomaly data read from files, for any kind of clip (audio, video).

A file list is (path, kind, source) triples: kind "normal" or an anomaly kind, source where the file came
from (machine id, folder). A kind's readers decode the files in list order and pass each file's position
as its "label", so the positions that come back say which files were read (the rest were skipped as
corrupt); `to_split` turns them into an AnomalySplit.

The folder layout read here: root/train/normal/, [root/val/normal/], root/test/normal/ and
root/test/<kind>/ (any other folder name under test is an anomaly kind).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from modalities.splits import NORMAL, AnomalySplit, carve_val

FileList = list[tuple[Path, str, str]]


def kind_labels(files: FileList) -> list[str]:
    """normal first, then the anomaly kinds found, sorted."""
    return [NORMAL, *sorted({kind for _, kind, _ in files} - {NORMAL})]


def to_split(x: np.ndarray, kept: np.ndarray, files: FileList, labels: list[str]) -> AnomalySplit:
    """Decoded samples x of the files at positions `kept` -> their kinds and sources."""
    return AnomalySplit(x, np.asarray([labels.index(files[i][1]) for i in kept], dtype=np.int64), labels,
                        np.asarray([files[i][2] for i in kept], dtype=str))


def subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def require_dir(path: Path, what: str) -> None:
    """FileNotFoundError naming `what` and the folders found beside it."""
    if not path.is_dir():
        found = [p.name for p in subfolders(path.parent)] if path.parent.is_dir() else []
        raise FileNotFoundError(f"{path}: {what} not found" + (f" (found {found})" if found else ""))


def _clip_files(folder: Path, suffixes: set[str]) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise ValueError(f"{folder}: no clips ({', '.join(sorted(suffixes))})")
    return files


def anomaly_folder_files(root: Path, suffixes: set[str]) -> dict[str, FileList]:
    """The folder layout above -> file triples per split; the source is the file's folder."""
    root = Path(root)
    parts = {}
    for part in ("train", "val", "test"):
        if part == "val" and not (root / part).is_dir():
            continue
        require_dir(root / part / NORMAL, f"'{part}/{NORMAL}' folder")
        kinds = subfolders(root / part) if part == "test" else [root / part / NORMAL]
        strays = [k.name for k in subfolders(root / part) if k.name != NORMAL] if part != "test" else []
        if strays:
            raise ValueError(f"{root / part}: training data must be normal only, found folders {strays}")
        parts[part] = [(path, folder.name, str(path.parent.relative_to(root)))
                       for folder in kinds for path in _clip_files(folder, suffixes)]
    return parts


def read_anomaly_folder(root: Path, suffixes: set[str], read: Callable[[FileList, str, list[str]], AnomalySplit],
                        val_fraction: float, seed: int) -> dict[str, AnomalySplit]:
    """The folder layout above, each part decoded by `read(files, what, labels)`; without a val folder,
    val is a seeded `val_fraction` of train, per source."""
    files = anomaly_folder_files(root, suffixes)
    labels = kind_labels(files["test"])
    splits = {part: read(f, f"{root}/{part}", labels) for part, f in files.items()}
    if "val" not in splits:
        splits.update(carve_val(splits["train"], val_fraction, seed))
    return splits
