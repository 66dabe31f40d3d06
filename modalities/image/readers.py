"""Readers for the image datasets users have, each returning uint8 (N, C, H, W) + labels.

- a class-per-folder tree of PNG/JPEG files (optionally with train/val/test subfolders)
- CIFAR-10's python batches (``data_batch_*``, ``test_batch``, ``batches.meta``)
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from modalities.class_folders import files_per_class
from modalities.splits import CorruptFileError, read_labelled

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def read_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One file -> uint8 (C, size, size). A file PIL cannot decode, one over PIL's pixel limit (a
    decompression bomb) or a float image holding NaN / infinite pixels raises CorruptFileError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                # a float image (e.g. a TIFF) converts NaN to 0 without a word
                finite = img.mode != "F" or np.isfinite(np.asarray(img)).all()
                img = img.convert("L" if channels == 1 else "RGB")
                if img.size != (size, size):
                    img = img.resize((size, size), Image.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CorruptFileError(f"{path}: too many pixels, a possible decompression bomb ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptFileError(f"{path}: cannot decode image ({exc})") from exc
    if not finite:
        raise CorruptFileError(f"{path}: NaN or infinite pixel values; expected finite values")
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def read_class_folders(
    root: Path, size: int, channels: int, labels: list[str] | None, on_corrupt: str, skipped: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """root/<class>/<image>; labels fixes the class order (else sorted folder names)."""
    root = Path(root)
    files, labels = files_per_class(root, IMAGE_SUFFIXES, "images", labels)
    xs, ys = read_labelled(files, lambda path: read_image(path, size, channels), on_corrupt, skipped)
    if not xs:
        raise ValueError(f"{root}: no readable images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders")
    return np.stack(xs), np.asarray(ys, dtype=np.int64), labels


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """CIFAR's batches are pickles; allow only what numpy arrays need, nothing executable."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CorruptFileError(f"{path}: not a readable CIFAR-10 python batch ({exc})") from exc
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path}: expected a dict batch, got {type(data).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    for key in ("data", "labels"):
        if key not in batch:
            raise CorruptFileError(f"{path}: CIFAR-10 batch has no '{key}' entry")
    data = np.asarray(batch["data"])
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise CorruptFileError(f"{path}: CIFAR-10 batch holds NaN or infinite pixel values")
    data = data.astype(np.uint8, copy=False)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CorruptFileError(f"{path}: expected data of shape (N, 3072), got {data.shape}")
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if len(labels) != len(data):
        raise CorruptFileError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(root: Path, on_corrupt: str, skipped: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]] | list:
    """Returns ({'train': (x, y), 'test': (x, y)}, labels) from the python batches."""
    root = Path(root)
    meta_path = root / "batches.meta"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: CIFAR-10 'batches.meta' not found")
    labels = [n.decode() if isinstance(n, bytes) else str(n) for n in _unpickle(meta_path)["label_names"]]
    train_files = sorted(root.glob("data_batch_*"))
    test_file = root / "test_batch"
    if not train_files:
        raise FileNotFoundError(f"{root}: no CIFAR-10 'data_batch_*' files")
    if not test_file.is_file():
        raise FileNotFoundError(f"{test_file}: CIFAR-10 'test_batch' not found")
    parts = []
    for path in train_files:
        try:
            parts.append(_cifar_batch(path))
        except CorruptFileError:
            if on_corrupt != "skip":
                raise
            skipped.append(str(path))
    if not parts:
        raise ValueError(f"{root}: every CIFAR-10 training batch was unreadable")
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return {"train": train, "test": _cifar_batch(test_file)}, labels
