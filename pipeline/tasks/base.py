"""What every task kind (head) provides to the stages: build its deployable model, fit it on a
pretrained encoder, score outputs on a split, describe the exported model, and add report rows.

A stage never branches on the head: it asks `pipeline.tasks.registry.get_task(head)`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from dvclive import Live
from torch import nn

from pipeline.config import paths
from pipeline.tasks.kinds import TaskSpec, task_specs
from pipeline.training.checkpoint import config_hash
from pipeline.training.distributed import setup
from pipeline.training.loop import train
from pipeline.training.param_groups import parameter_groups

Score = Callable[[list[np.ndarray]], dict]  # a model's outputs over a split -> metrics ("test_metric" first)


@dataclass
class FitJob:
    """One task x method to fit: params, the task's modality and splits, and the config.json entries
    known before fitting (the loader of the fitted model reads them back)."""

    params: object
    task: str
    method: str
    modality: object
    splits: dict
    config: dict

    @property
    def task_params(self):
        return self.params.tasks[self.task]


@dataclass
class Fitted:
    """A fitted deployable model, the config entries its loader needs, what fitting cost, and other
    scorers fitted alongside it that are reported but not exported ({name: (model, config)})."""

    model: nn.Module
    config: dict = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    alternatives: dict = field(default_factory=dict)


class Task(ABC):
    head: str

    @property
    def spec(self) -> TaskSpec:
        return task_specs()[self.head]

    @abstractmethod
    def build(self, encoder, modality, params, config: dict) -> nn.Module:
        """The untrained deployable model with the shapes `config` (the fine-tune's config.json) records."""

    @abstractmethod
    def fit(self, encoder, job: FitJob) -> Fitted:
        """Fit the head (and, where the kind trains end to end, the encoder) on the training split."""

    @abstractmethod
    def score(self, task_params, split, config: dict, detail: bool = False) -> Score:
        """The task's metric over `split` from a model's outputs; `detail` adds per-class/kind figures."""

    @abstractmethod
    def baseline(self, task_params, modality, splits: dict, params) -> dict:
        """The simple model fitted on the same training split and scored on the same test split
        (pipeline/evaluation/baselines.py): `model`, `features`, `test_metric` and the kind's figures."""

    @abstractmethod
    def metadata(self, task_params, model: nn.Module, config: dict) -> dict:
        """What an app needs to read the outputs (goes into the exported model's metadata)."""

    def val_metric(self, model: nn.Module, job: FitJob, config: dict | None = None) -> Callable[[], float]:
        """The task metric of `model` on the val split, as the training loop's learning-curve callback."""
        val = job.splits["val"]
        score = self.score(job.task_params, val, config or {})
        return lambda: score(outputs_on(model, job.modality, val))["test_metric"]

    def evaluate(self, model: nn.Module, job: FitJob, config: dict) -> dict:
        """The task metric on test, and on val as `val_metric`."""
        val = self.score(job.task_params, job.splits["val"], config)(outputs_on(model, job.modality, job.splits["val"]))
        test = self.score(job.task_params, job.splits["test"], config, detail=True)(
            outputs_on(model, job.modality, job.splits["test"]))
        return {"val_metric": val["test_metric"], **test}

    def report_section(self, params, load: Callable[[str, str, str], dict | None]) -> list[str]:
        """Markdown lines this kind adds to reports/summary.md (load(stage, group, method) reads metrics)."""
        return []


@torch.no_grad()
def run_model(model: nn.Module, x: np.ndarray, device=None, batch_size: int = 256) -> list[np.ndarray]:
    """Every output of `model` over model inputs x (numpy), in batches: what the exports are compared with.
    Runs where the model is unless `device` says otherwise."""
    device = device or next(model.parameters()).device
    model.eval().to(device)
    parts = []
    for i in range(0, len(x), batch_size):
        out = model(torch.from_numpy(x[i:i + batch_size]).to(device))
        parts.append([o.float().cpu().numpy() for o in (out if isinstance(out, tuple) else (out,))])
    return [np.concatenate(p, axis=0) for p in zip(*parts)]


def outputs_on(model: nn.Module, modality, split) -> list[np.ndarray]:
    return run_model(model, modality.to_input(torch.from_numpy(split.x)).numpy())


def train_end_to_end(objective: nn.Module, y_train: np.ndarray, job: FitJob,
                     val_metric: Callable[[], float] | None = None) -> dict:
    """Train `objective` (encoder + head) on the task's training split, resuming from its checkpoint;
    returns the cost figures and the learning curve ([step, val_metric()] after each epoch)."""
    optim = job.params.optim("finetune", job.modality.name)
    proc = setup(amp=optim.amp)
    live = Live(str(paths.live_dir("finetune", job.task, job.method)), save_dvc_exp=False, dvcyaml=None)
    result = train(objective, torch.from_numpy(job.splits["train"].x), torch.from_numpy(y_train),
                   job.modality.to_input, optim, job.params.seed, proc,
                   paths.checkpoint_dir("finetune", job.task, job.method),
                   config_hash({**job.config, "optim": optim.model_dump()}), live=live,
                   desc=f"finetune {job.task}-{job.method}", evaluate=val_metric,
                   param_groups=parameter_groups(objective, optim.weight_decay, optim.layer_decay))
    live.end()
    return {"epochs": result.epochs, "steps": result.steps, "train_seconds": result.train_seconds,
            "samples_per_s": result.samples_per_s, "learning_curve": result.curve,
            **({"best_epoch": result.best_epoch, "stopped_at_epoch": result.stopped_at_epoch}
               if result.best_epoch is not None else {})}
