"""Where every stage reads and writes (relative to the repository root)."""
from __future__ import annotations

from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
CHECKPOINTS = Path("checkpoints")
METRICS = Path("metrics")
EXPORTS = Path("exports")
REPORTS = Path("reports")
LIVE = Path("dvclive")


def data_dir(modality: str) -> Path:
    return DATA / modality


def pretrain_dir(modality: str, method: str) -> Path:
    return MODELS / "pretrain" / f"{modality}-{method}"


def finetune_dir(task: str, method: str) -> Path:
    return MODELS / "finetune" / f"{task}-{method}"


def export_dir(task: str, method: str) -> Path:
    return EXPORTS / f"{task}-{method}"


def checkpoint_dir(stage: str, name: str) -> Path:
    return CHECKPOINTS / stage / name


def metrics_file(stage: str, name: str) -> Path:
    return METRICS / stage / f"{name}.json"


def live_dir(stage: str, name: str) -> Path:
    return LIVE / stage / name
