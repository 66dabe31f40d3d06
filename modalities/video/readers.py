"""Readers for the video datasets users have; clips are uint8 (N, C, T, H, W).

- a class-per-folder tree of clips (`root/<class>/*.mp4`, optionally under train/val/test)
- UCF101-style split lists (`classInd.txt`, `trainlist0N.txt`, `testlist0N.txt` naming `Class/clip.avi`)
- an anomaly folder of clips: train/normal/, [val/normal/], test/normal/, test/<kind>/

Decoding and frame sampling live in devices/preprocess/video.py, shared with the app-side preprocessing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devices.preprocess.video import VIDEO_SUFFIXES, ClipReadError, read_clip
from modalities import anomaly_files
from modalities.anomaly_files import FileList
from modalities.class_folders import files_per_class
from modalities.splits import AnomalySplit, CorruptFileError


@dataclass(frozen=True)
class ClipFormat:
    """How every clip is sampled and stored (from params)."""

    frames: int
    fps: float | None
    size: int
    channels: int

    @property
    def color(self) -> str:
        return "grayscale" if self.channels == 1 else "RGB"


@dataclass
class ClipList:
    """Clip files and their class ids, before decoding."""

    paths: list[Path]
    y: np.ndarray
    labels: list[str]

    def subset(self, indices: np.ndarray) -> ClipList:
        return ClipList([self.paths[i] for i in indices], self.y[indices], self.labels)

    def __len__(self) -> int:
        return len(self.paths)


def read_clips(clips: ClipList, fmt: ClipFormat, on_corrupt: str, skipped: list[str],
               what: str = "clip list") -> tuple[np.ndarray, np.ndarray]:
    """Decode every listed clip -> (uint8 (N, C, T, H, W), labels); unreadable ones raise or are skipped."""
    xs, ys = [], []
    for path, label in zip(clips.paths, clips.y):
        try:
            xs.append(read_clip(path, fmt.frames, fmt.fps, fmt.size, fmt.color).transpose(3, 0, 1, 2))
        except ClipReadError as exc:
            if on_corrupt != "skip":
                raise CorruptFileError(str(exc)) from exc
            skipped.append(str(path))
            continue
        ys.append(label)
    if not xs:
        raise ValueError(f"{what}: none of its {len(clips)} clips could be read (all skipped as unreadable)")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def list_class_folders(root: Path, labels: list[str] | None = None) -> ClipList:
    """root/<class>/<clip> (searched recursively); labels fixes the class order (else sorted folder names)."""
    files, labels = files_per_class(root, VIDEO_SUFFIXES, "clips", labels)
    return ClipList([path for path, _ in files], np.asarray([label for _, label in files], dtype=np.int64), labels)


def _find(root: Path, name: str, subfolders: tuple[str, ...]) -> Path:
    for folder in (root, *(root / s for s in subfolders)):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{root}: '{name}' not found (looked in {root} and {', '.join(subfolders)})")


def read_ucf101_lists(root: Path, split: int) -> dict[str, ClipList]:
    """UCF101's split lists -> {'train': ClipList, 'test': ClipList}.

    The lists are looked up in root or root/ucfTrainTestlist; the clips they name (`Class/clip.avi`)
    in root or root/UCF-101, the layout of the official archives unpacked side by side.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: UCF101 folder not found")
    class_file = _find(root, "classInd.txt", ("ucfTrainTestlist",))
    labels = [line.split()[1] for line in class_file.read_text().splitlines() if line.strip()]
    if not labels:
        raise ValueError(f"{class_file}: no classes listed")
    clips_root = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    lists = {}
    for part in ("train", "test"):
        list_file = _find(root, f"{part}list0{split}.txt", ("ucfTrainTestlist",))
        names = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        if not names:
            raise ValueError(f"{list_file}: the {part} split lists no clips")
        unknown = sorted({n.split("/")[0] for n in names} - set(labels))
        if unknown:
            raise ValueError(f"{list_file}: classes {unknown[:5]} are not in {class_file.name}")
        lists[part] = ClipList([clips_root / n for n in names],
                               np.asarray([labels.index(n.split("/")[0]) for n in names], dtype=np.int64), labels)
    return lists


# ---- anomaly folders --------------------------------------------------------------------------------

def read_anomaly_files(files: FileList, fmt: ClipFormat, on_corrupt: str, skipped: list[str], what: str,
                       labels: list[str]) -> AnomalySplit:
    """Video files -> stored uint8 clips (N, C, T, H, W) with kinds and sources."""
    clips = ClipList([path for path, _, _ in files], np.arange(len(files)), [])
    x, kept = read_clips(clips, fmt, on_corrupt, skipped, what)
    return anomaly_files.to_split(x, kept, files, labels)


def read_anomaly_folder(root: Path, modality, on_corrupt: str, skipped: list[str],
                        val_fraction: float, seed: int) -> dict[str, AnomalySplit]:
    """An anomaly folder of clips (the layout in modalities/anomaly_files.py) in the modality's clip format."""
    def read(files: FileList, what: str, labels: list[str]) -> AnomalySplit:
        return read_anomaly_files(files, modality.clip_format, on_corrupt, skipped, what, labels)

    return anomaly_files.read_anomaly_folder(root, VIDEO_SUFFIXES, read, val_fraction, seed)
