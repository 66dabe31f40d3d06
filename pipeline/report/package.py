"""What an app embeds, packaged: dist/<task>/<method>/ holds every exported variant of one model and its full
model card, the export stage's card completed with what the later stages measured (latency per device,
robustness; export/model_card.py).

The model files are hard links to those in exports/<task>/<method>/ where the file system allows (copies
otherwise; DVC may turn the links into copies when it caches the folder): either way a file in the package is
byte for byte the one that was scored and benchmarked. Each package is built in a scratch folder and swapped in
whole, so no file of an earlier run stays in it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from devices.io import scratch_dir
from devices.model_files import SCRATCH_PREFIX
from export.files import ATOMIC_TEMP_GLOB
from export.model_card import CARD_FILE


def package_export(export_dir: str | Path, target: str | Path, card: str) -> list[Path]:
    """Link every file of `export_dir` into `target` (replacing it) with `card` as its MODEL_CARD.md;
    returns the packaged files, relative to `target`."""
    export_dir, target = Path(export_dir), Path(target)
    if not (export_dir / "model.onnx").is_file():
        raise FileNotFoundError(f"{export_dir}: no model.onnx to package; run the export stage first")
    files = sorted(path.relative_to(export_dir) for path in export_dir.rglob("*")
                   if path.is_file() and not _scratch(path.relative_to(export_dir)) and path.name != CARD_FILE)
    with scratch_dir(target.parent) as tmp:
        build = tmp / target.name
        for relative in files:
            (build / relative).parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(export_dir / relative, build / relative)
        (build / CARD_FILE).write_text(card)
        if target.exists():
            os.replace(target, tmp / "previous")
        os.replace(build, target)
    return [*files, Path(CARD_FILE)]


def remove_unlisted(dist: str | Path, kept: set[tuple[str, str]]) -> list[Path]:
    """Remove the packages under `dist` (<task>/<method>/) that are not in `kept`: a task or method no
    longer in params.yaml. Returns what was removed."""
    dist = Path(dist)
    removed = [folder for folder in sorted(dist.glob("*/*")) if folder.is_dir()
               and (folder.parent.name, folder.name) not in kept]
    for folder in removed:
        shutil.rmtree(folder)
    for task in dist.glob("*"):
        if task.is_dir() and not any(task.iterdir()):
            task.rmdir()
    return removed


def _scratch(relative: Path) -> bool:
    """A scratch folder's content or a half-written temporary file (export/files.py), not an export."""
    return any(part.startswith(SCRATCH_PREFIX) for part in relative.parts) or relative.match(ATOMIC_TEMP_GLOB)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(src, dst)
