"""The fine-tuned deployable model of a task, whatever its head: loaded from models/finetune/<task>/<method>/,
run over a split, scored, and described in the export's metadata (each head's Task does the work)."""
from __future__ import annotations

from torch import nn

from devices.io import read_json
from pipeline.config import paths
from pipeline.models.loading import fresh_encoder
from pipeline.tasks.base import run_model  # noqa: F401  (re-exported: the export stages run models with it)
from pipeline.tasks.registry import get_task
from pipeline.training.checkpoint import load_weights


def finetuned_model(modality, params, task: str, method: str) -> tuple[nn.Module, dict]:
    directory = paths.finetune_dir(task, method)
    config = read_json(directory / "config.json")
    model = get_task(params.tasks[task].head).build(fresh_encoder(modality, params), modality, params, config)
    load_weights(model, directory / "model.safetensors")
    return model.eval(), config


def head_metadata(task_params, model: nn.Module, config: dict) -> dict:
    """What an app needs to read the outputs (goes into the exported model's metadata)."""
    return get_task(task_params.head).metadata(task_params, model, config)


def task_score(task_params, split, config: dict, detail: bool = False):
    """The task's scorer over `split`: outputs -> metrics; `detail` adds per-class / per-kind figures."""
    return get_task(task_params.head).score(task_params, split, config, detail)
