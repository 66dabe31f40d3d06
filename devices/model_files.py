"""Which files are exported models, and which runtime opens each: the one table of model formats.

No torch and no runtime import here: finding models must work on a device that has only one runtime.
"""
from __future__ import annotations

from pathlib import Path

RUNTIME_OF_SUFFIX = {".onnx": "onnxruntime", ".xml": "openvino"}
FORMAT_OF_RUNTIME = {"onnxruntime": "ONNX", "openvino": "OpenVINO IR"}
ASSETS_DIR = "assets"  # what an app needs beside a model (tokenizer, front end): not models to measure
TARGETS_DIR = "targets"  # variants prepared for one profile live under targets/<profile>/
# Folders an export writes into before moving its results out (devices.io.scratch_dir); a killed export
# leaves them behind. Hidden, so never taken for models; export.files removes them.
SCRATCH_PREFIX = ".export-"


class UnknownModelFormat(ValueError):
    """A file whose suffix names no model format a runtime here opens."""


def runtime_of(path: str | Path) -> str:
    """The runtime that opens a model file, from its suffix."""
    suffix = Path(path).suffix
    try:
        return RUNTIME_OF_SUFFIX[suffix]
    except KeyError:
        expected = " or ".join(RUNTIME_OF_SUFFIX)
        raise UnknownModelFormat(f"{path}: unknown model format '{suffix}' (expected {expected})") from None


def is_openvino_ir(path: Path) -> bool:
    """Whether an .xml file is an OpenVINO IR (root element ``<net>``)."""
    import xml.etree.ElementTree as ET

    try:
        for _, elem in ET.iterparse(path, events=("start",)):
            return elem.tag == "net"
    except ET.ParseError:
        return False
    return False


def _for_profile(rel: Path, profile_name: str | None) -> bool:
    """Whether a model at `rel` (relative to the models folder) is one to take for the profile.

    Hidden files and folders are skipped: they hold half-written outputs (the atomic writer's
    temporary files keep the model suffix) and tool caches, not exports."""
    folders = rel.parts[:-1]
    if any(part.startswith(".") for part in rel.parts) or ASSETS_DIR in folders:
        return False
    if TARGETS_DIR not in folders:
        return True
    at = folders.index(TARGETS_DIR)
    return profile_name is not None and len(folders) > at + 1 and folders[at + 1] == profile_name


def find_models(models_dir: str | Path, profile_name: str | None = None) -> list[Path]:
    """Exported models under a folder (ONNX files, OpenVINO IR .xml files), sorted: the generic ones,
    plus those under ``targets/<profile_name>/`` when a profile is named."""
    root = Path(models_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: models folder not found")
    found = [p for suffix in RUNTIME_OF_SUFFIX for p in root.rglob(f"*{suffix}")
             if p.is_file() and _for_profile(p.relative_to(root), profile_name)
             and (RUNTIME_OF_SUFFIX[p.suffix] != "openvino" or is_openvino_ir(p))]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())
