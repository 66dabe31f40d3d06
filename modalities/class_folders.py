"""Datasets laid out as one folder per class (root/<class>/**/<file>), for every modality's folder reader."""
from __future__ import annotations

from pathlib import Path


def files_per_class(root: str | Path, suffixes: set[str], what: str, labels: list[str] | None = None,
                    ignore_prefixes: tuple[str, ...] = (".",)) -> tuple[list[tuple[Path, int]], list[str]]:
    """((file, class index) pairs in class then name order, class names). `labels` fixes the class order
    (else the sorted folder names) and must hold every folder; `what` names the files in messages
    ("images", "clips"). Folders starting with one of `ignore_prefixes` are not classes. A class folder
    without files of the suffixes is an error: it would be a class with no samples in every split."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder not found (expected one sub-folder of {what} per class)")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(ignore_prefixes))
    if not dirs:
        raise ValueError(f"{root}: expected one sub-folder per class, found none")
    labels = labels or [d.name for d in dirs]
    unknown = [d.name for d in dirs if d.name not in labels]
    if unknown:
        raise ValueError(f"{root}: class folders {unknown} are not among the training classes {labels}")
    per_class = {d: sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in suffixes) for d in dirs}
    empty = [str(d) for d, found in per_class.items() if not found]
    if empty:
        raise ValueError(f"class folders {empty} hold no {what} ({', '.join(sorted(suffixes))}); "
                         f"every class needs {what} (remove the folder or add its {what})")
    return [(path, labels.index(d.name)) for d in dirs for path in per_class[d]], labels
