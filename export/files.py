"""Export outputs on disk: tool outputs moved out of scratch folders with the mode every output has, and
the leftovers of a killed export cleared before the next one."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from devices.io import FILE_MODE
from devices.model_files import SCRATCH_PREFIX

# What devices.io leaves behind when a process is killed mid-write: scratch_dir's folders and
# atomic_path's temporary files (".<name>.<random>.tmp<suffix>").
SCRATCH_GLOB = f"{SCRATCH_PREFIX}*"
ATOMIC_TEMP_GLOB = ".*.tmp*"


def move_into_place(src: str | Path, dst: str | Path) -> Path:
    """os.replace `src` onto `dst` (same filesystem) with mode 0644.

    Tools write files with their own mode (the umask's, or mkstemp's 0600); apps run as other users.
    """
    os.chmod(src, FILE_MODE)
    os.replace(src, dst)
    return Path(dst)


def remove_stale_scratch(folder: str | Path) -> list[Path]:
    """Remove scratch folders and half-written temporary files anywhere under `folder`; returns them.

    Only for a folder no other process is writing into (one method's export folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(p for p in folder.rglob(SCRATCH_GLOB) if p.is_dir())
    stale = [p for p in stale if not any(parent in stale for parent in p.parents)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    temps = sorted(p for p in folder.rglob(ATOMIC_TEMP_GLOB) if p.is_file())
    for path in temps:
        path.unlink(missing_ok=True)
    return stale + temps
