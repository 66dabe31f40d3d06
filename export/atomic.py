"""Atomic file output: readers see the old file or the complete new one, never a partial write."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it onto `path` with os.replace.

    The temporary file lives in the destination folder so os.replace is a same-filesystem rename.
    On error the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def scratch_dir(near: str | Path) -> Iterator[Path]:
    """A temporary folder inside `near` (created if needed), removed afterwards.

    For tools that write several files or pick their own file names (OpenVINO's .xml + .bin,
    onnxruntime's intermediate models); results are then os.replace'd out of it.
    """
    near = Path(near)
    near.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=near, prefix=".export-") as tmp:
        yield Path(tmp)
