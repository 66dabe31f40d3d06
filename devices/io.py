"""The one home for file output: atomic writes (a killed stage leaves the old file or none, never half a
file), JSON/text helpers and content hashes. No torch: the app side uses it too."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devices.model_files import SCRATCH_PREFIX


FILE_MODE = 0o644  # outputs are read by apps running as other users; mkstemp's 0600 would hide them


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the same folder (so the final rename stays on one filesystem); on
    success it is renamed onto `path` with mode 0644, on error removed and `path` left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")  # keeps the suffix: savers infer formats from it
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def scratch_dir(near: str | Path) -> Iterator[Path]:
    """A temporary folder inside `near` (created if needed), removed afterwards: for tools that write
    several files or pick their own names (OpenVINO's .xml + .bin, onnxruntime's intermediate models),
    whose results are then os.replace'd out of it."""
    near = Path(near)
    near.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=near, prefix=SCRATCH_PREFIX) as tmp:
        yield Path(tmp)


def write_json(path: str | Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run the stage that produces it first")
    return json.loads(path.read_text())


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_sha256(data_dir, split: str) -> str:
    """The prepared split's hash from its manifest: ties a checkpoint to the data it was trained on."""
    return read_json(Path(data_dir) / "manifest.json")["splits"][split]["sha256"]
