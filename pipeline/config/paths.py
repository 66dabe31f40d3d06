"""Where every stage reads and writes (relative to the repository root).

Per-method outputs are grouped by modality or task (models/pretrain/<modality>/<method>/,
exports/<task>/<method>/), so one DVC stage per modality or task owns the folder of all methods.
"""
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
    return MODELS / "pretrain" / modality / method


def equal_epochs_encoder(modality: str, method: str) -> Path:
    """The method trained for the reference method's epochs (pretrain.budget: equal_compute), beside its
    equal-compute encoder: the equal-epochs side of the comparison."""
    return pretrain_dir(modality, method) / "equal_epochs" / "encoder.safetensors"


def linear_probe_file(modality: str, method: str, equal_epochs: bool = False) -> Path:
    """The probe stage's fitted linear probe on the method's frozen encoder (its equal-epochs encoder's)."""
    folder = MODELS / "probe" / modality / method
    return (folder / "equal_epochs" if equal_epochs else folder) / "linear_probe.safetensors"


def finetune_dir(task: str, method: str) -> Path:
    return MODELS / "finetune" / task / method


def export_dir(task: str, method: str) -> Path:
    return EXPORTS / task / method


def checkpoint_dir(stage: str, group: str, method: str) -> Path:
    return CHECKPOINTS / stage / group / method


def metrics_file(stage: str, group: str, method: str) -> Path:
    """metrics/<stage>/<modality or task>/<method>.json"""
    return METRICS / stage / group / f"{method}.json"


def baseline_file(task: str) -> Path:
    """metrics/baselines/<task>.json: the task's simple baseline (pipeline/evaluation/baselines.py)."""
    return METRICS / "baselines" / f"{task}.json"


def live_dir(stage: str, group: str, method: str) -> Path:
    return LIVE / stage / group / method
