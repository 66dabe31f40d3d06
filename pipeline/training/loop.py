"""The training loop shared by pretraining and fine-tuning.

Deterministic per (seed, epoch, rank): the data order and every random draw
(augmentation, masking) come from generators seeded from those, so a run that
resumes from an epoch checkpoint continues exactly as if never interrupted.
"""
from __future__ import annotations

import math
import multiprocessing
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pipeline.training.checkpoint import checkpoint_logs, load_training_state, remove_leftovers, save_training_state
from pipeline.training.distributed import TrainingProcess


LOGGED = ("loss", "lr", "val_metric")  # the metrics sent to dvclive (val_metric once an epoch, if evaluated)
PROGRESS_LINES = 10  # the most lines one training run writes to a log


class Progress:
    """Progress of one training run, for people. On a terminal: a tqdm bar per epoch. In a log (stderr not a
    terminal, as under `dvc repro > log`) or in a forked worker (whose bar would interleave with its
    siblings'): at most PROGRESS_LINES whole lines for the run, at evenly spaced steps, not a redraw a step."""

    def __init__(self, desc: str, total_steps: int, start_step: int, enabled: bool, stream=None):
        self.desc, self.total, self.enabled = desc, total_steps, enabled
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.interactive = bool(isatty and isatty()) and multiprocessing.parent_process() is None
        marks = {math.ceil(total_steps * k / PROGRESS_LINES) for k in range(1, PROGRESS_LINES + 1)}
        self.marks = sorted(m for m in marks if m > start_step)  # a resumed run prints only what is left
        self.epoch_text, self.bar, self.started = "", None, time.perf_counter()

    def epoch(self, batches, epoch: int, epochs: int):
        """The epoch's batches to iterate over (wrapped in a bar on a terminal)."""
        self.epoch_text = f"epoch {epoch + 1}/{epochs}"
        if self.enabled and self.interactive:
            self.bar = tqdm(batches, desc=f"{self.desc} {self.epoch_text}", leave=False, file=self.stream)
            return self.bar
        return batches

    def step(self, step: int, loss: float) -> None:
        """After each optimizer step; `step` counts from the start of the run, resumed epochs included."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}")
        elif self.marks and step >= self.marks[0]:
            self.marks = [m for m in self.marks if m > step]
            # one write per line: forked workers share the log, and print() writes the newline apart
            self.stream.write(f"{self.desc}: step {step}/{self.total} ({100 * step // self.total}%), {self.epoch_text}, "
                              f"loss {loss:.4f}, {time.perf_counter() - self.started:.0f} s\n")
            self.stream.flush()


@dataclass
class TrainResult:
    epochs: int
    steps: int
    final_loss: float
    samples_per_s: float
    train_seconds: float
    resumed_from_epoch: int
    peak_memory_mb: float
    memory_kind: str
    trained_samples: int = 0  # over the whole run, resumes included: the FLOP budget's unit
    best_epoch: int | None = None  # early stopping: the epoch whose weights the model ends with
    stopped_at_epoch: int | None = None  # early stopping: the last epoch trained, when before opt.epochs
    curve: list = field(default_factory=list)  # [step, validation metric] after each epoch, when evaluated


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up, then half-cosine decay to zero."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def epoch_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)


def shard_order(n: int, seed: int, epoch: int, proc: TrainingProcess, per_rank_batch: int) -> torch.Tensor:
    """This rank's sample indices for the epoch, whole batches only (same step count on every rank)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919 * epoch))
    steps = n // (per_rank_batch * proc.world_size)
    return perm[proc.rank :: proc.world_size][: steps * per_rank_batch]


def live_files(live) -> dict[str, Path]:
    """dvclive's per-step history file of each metric the loop logs."""
    return {f"{name}.tsv": Path(live.plots_dir) / "metrics" / f"{name}.tsv" for name in LOGGED}


def rewind_live(live, saved: Path | None, step: int) -> None:
    """Make dvclive's per-step files hold exactly the steps before `step` and continue from there: restore
    them from the copy saved with the checkpoint (`saved`; None when starting fresh). Steps logged after
    that checkpoint by a killed run, or by an earlier run when dvclive was opened with resume=True, go."""
    for name, path in live_files(live).items():
        if saved is not None and (saved / name).is_file():
            # a plain copy: a kill half-way is repaired by the next start, and leaves no stray file in the plots
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(saved / name, path)
        else:
            path.unlink(missing_ok=True)
    live.step = step


class EarlyStopping:
    """Stop when the validation metric has not improved for `patience` epochs, but not before
    `min_epochs`, and end with the best epoch's weights (kept in memory and in each checkpoint, so a
    resumed run knows them). Off when patience is None or nothing is evaluated."""

    MIN_GAIN = 1e-4  # an improvement smaller than this is not one (ties keep the earlier, cheaper epoch)

    def __init__(self, patience: int | None, curve: list, state: dict | None, desc: str, proc: TrainingProcess,
                 min_epochs: int = 0):
        if patience is not None and proc.distributed:
            raise ValueError(f"{desc}: early stopping (patience {patience}) needs a single training process")
        self.patience, self.min_epochs, self.curve = patience, min_epochs, curve
        best = (state or {}).get("best")
        self.best_epoch, self.best_metric = (best[0], best[1]) if best else (None, -math.inf)
        self.best_weights = (state or {}).get("best_weights")
        self.stopped = bool((state or {}).get("stopped"))

    def update(self, model: torch.nn.Module, epoch: int) -> None:
        if self.patience is None:
            return
        metric = self.curve[-1][1]
        if metric > self.best_metric + self.MIN_GAIN:
            self.best_epoch, self.best_metric = epoch, metric
            self.best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.stopped = epoch >= self.min_epochs and epoch - self.best_epoch >= self.patience

    def state(self) -> dict:
        return {} if self.best_epoch is None else {"best": [self.best_epoch, self.best_metric], "stopped": self.stopped}

    def restore_best(self, model: torch.nn.Module) -> None:
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)

    def result(self) -> dict:
        if self.best_epoch is None:
            return {}
        return {"best_epoch": self.best_epoch, "stopped_at_epoch": len(self.curve) if self.stopped else None}


def train(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    to_input: Callable[[torch.Tensor], torch.Tensor],
    opt,
    seed: int,
    proc: TrainingProcess,
    checkpoint_dir: Path,
    config_hash: str,
    live=None,
    desc: str = "train",
    betas: tuple[float, float] = (0.9, 0.999),
    on_epoch_end: Callable[[int], None] | None = None,
    evaluate: Callable[[], float] | None = None,
    param_groups: list[dict] | None = None,
) -> TrainResult:
    """Train `model` (its forward(x, y, generator) returns the loss) for opt.epochs epochs.

    opt.batch_size is the global batch: each of the world_size processes takes its share. `evaluate`
    (main process) gives the validation metric after each epoch: the learning curve, kept in the
    checkpoint so a resumed run reports the whole of it. `param_groups` (pipeline.training.param_groups):
    the optimizer's groups, each with an `lr_scale`; by default one group, opt.weight_decay on everything.
    """
    model.to(proc.device)
    per_rank_batch = max(1, opt.batch_size // proc.world_size)
    steps_per_epoch = len(x) // (per_rank_batch * proc.world_size)
    if steps_per_epoch == 0:
        raise ValueError(
            f"{desc}: batch_size {opt.batch_size} is larger than the {len(x)} training samples; lower it in params.yaml"
        )
    total_steps = steps_per_epoch * opt.epochs
    warmup_steps = int(opt.warmup_epochs * steps_per_epoch)
    groups = param_groups or [{"params": list(model.parameters()), "weight_decay": opt.weight_decay, "lr_scale": 1.0}]
    optimizer = torch.optim.AdamW(groups, lr=opt.lr, betas=betas)
    if proc.is_main:
        remove_leftovers(checkpoint_dir)
    state = load_training_state(checkpoint_dir, model, optimizer, config_hash)
    start_epoch = state["epoch"] if state else 0
    # cost counters carry over a resume, so samples/s describes the whole training run
    trained_samples, seconds = (state.get("trained_samples", 0), state.get("train_seconds", 0.0)) if state else (0, 0.0)
    if state and proc.is_main:
        print(f"{desc}: resuming from the checkpoint after epoch {start_epoch} in {checkpoint_dir}")
    net = DistributedDataParallel(model) if proc.distributed else model
    scaler = torch.amp.GradScaler("cuda") if proc.needs_grad_scaler() else None

    step, loss_value = start_epoch * steps_per_epoch, float(state["loss"]) if state else float("nan")
    curve = list(state.get("curve", [])) if state else []
    stopper = EarlyStopping(getattr(opt, "patience", None), curve, state, desc, proc, getattr(opt, "min_epochs", 0))
    if live is not None and proc.is_main:
        rewind_live(live, checkpoint_logs(state) if state else None, step)
    progress = Progress(desc, total_steps, step, enabled=proc.is_main)
    end_epoch = start_epoch if stopper.stopped else opt.epochs  # a run that stopped early stays stopped on resume
    for epoch in range(start_epoch, end_epoch):
        model.train()
        g = epoch_generator(seed, epoch, proc.rank)
        order = shard_order(len(x), seed, epoch, proc, per_rank_batch)
        batches = order.view(-1, per_rank_batch)
        start = time.perf_counter()
        for idx in progress.epoch(batches, epoch, opt.epochs):
            lr = lr_at(step, total_steps, warmup_steps, opt.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            xb = to_input(x[idx].to(proc.device, non_blocking=True))
            yb = y[idx].to(proc.device, non_blocking=True)
            with proc.autocast():
                loss = net(xb, yb, g)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            if scaler:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            loss_value = loss.item()
            step += 1
            if live is not None and proc.is_main:
                live.log_metric("loss", loss_value)
                live.log_metric("lr", lr)
                live.next_step()
            progress.step(step, loss_value)
        seconds += time.perf_counter() - start
        trained_samples += len(batches) * per_rank_batch * proc.world_size
        if proc.is_main and evaluate is not None:
            curve.append([step, float(evaluate())])
            if live is not None:
                live.log_metric("val_metric", curve[-1][1])
            stopper.update(model, epoch + 1)
        if proc.is_main:
            save_training_state(checkpoint_dir, model, optimizer,
                                {"epoch": epoch + 1, "step": step, "loss": loss_value, "config_hash": config_hash,
                                 "trained_samples": trained_samples, "train_seconds": seconds, "curve": curve,
                                 **stopper.state()},
                                logs=live_files(live) if live is not None else None, best=stopper.best_weights)
        proc.barrier()
        if on_epoch_end:
            on_epoch_end(epoch + 1)
        if stopper.stopped:
            break
    stopper.restore_best(model)
    return TrainResult(
        epochs=step // steps_per_epoch, steps=step, final_loss=loss_value,
        samples_per_s=trained_samples / seconds if seconds else float("nan"),
        train_seconds=seconds, resumed_from_epoch=start_epoch, **proc.peak_memory_mb(), trained_samples=trained_samples,
        curve=curve, **stopper.result(),
    )
