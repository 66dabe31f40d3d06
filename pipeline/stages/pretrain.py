"""pretrain: self-supervised training of the shared encoder with each method in `methods` (mae, simclr, or
random = no training), for one modality. On CPU the methods train at once in single-thread processes
(`pretrain.workers`). `pretrain.budget: equal_compute` gives each method the epochs that cost the FLOPs
of `pretrain.reference_method`'s epochs, and also trains it for those epochs (models/pretrain/<modality>/
<method>/equal_epochs/), so the methods are compared both ways.

Single process: `python -m pipeline.stages.pretrain --modality image [--method mae]`
Several processes: `torchrun --nproc_per_node N -m pipeline.stages.pretrain ...`, or set
`distributed.nproc_per_node` in params.yaml and the stage launches torchrun itself.
"""
from __future__ import annotations

import os
import sys
import time
from functools import partial

import torch
from dvclive import Live

import numpy as np

from modalities import get_modality
from modalities.base import UNLABELLED_FILE
from pipeline.config import paths
from pipeline.training.checkpoint import config_hash, save_weights
from devices.io import read_json, split_sha256, write_json
from pipeline.models.methods import BETAS, OBJECTIVES, build_objective
from pipeline.models.loading import fresh_encoder
from pipeline.training.distributed import setup, teardown
from pipeline.stages.common import run_methods, seed_everything, selected_methods, start
from pipeline.training.budget import equal_compute_epochs, flops_per_sample
from pipeline.training.loop import train


def relaunch_under_torchrun(nproc: int) -> None:
    """Replace this process by torchrun with nproc workers running the same command."""
    if nproc <= 1 or "WORLD_SIZE" in os.environ:
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "pipeline.stages.pretrain", *sys.argv[1:]]
    os.execv(sys.executable, cmd)


def pretraining_data(modality) -> tuple[torch.Tensor, torch.Tensor]:
    """The training split plus the unlabelled samples prepare kept (labels -1: the objectives use none)."""
    data_dir = paths.data_dir(modality.name)
    train = modality.load_split(data_dir, "train")
    unlabelled = modality.load_unlabelled(data_dir)
    if unlabelled is None:
        return torch.from_numpy(train.x), torch.from_numpy(train.y)
    if unlabelled.shape[1:] != train.x.shape[1:] or unlabelled.dtype != train.x.dtype:
        raise ValueError(f"{data_dir / UNLABELLED_FILE}: samples {unlabelled.dtype} {unlabelled.shape[1:]} do not match "
                         f"the training split's {train.x.dtype} {train.x.shape[1:]}; run the prepare stage again")
    return (torch.from_numpy(np.concatenate([train.x, unlabelled])),
            torch.from_numpy(np.concatenate([train.y, np.full(len(unlabelled), -1, dtype=train.y.dtype)])))


def method_budget(modality, method: str, params, optim, x, y) -> tuple[int, dict]:
    """(epochs, budget facts) for one method: `optim.epochs` at equal epochs or for the reference
    method; at equal compute, the epochs whose FLOPs match the reference's `optim.epochs`."""
    flops = {name: flops_per_sample(build_objective(name, fresh_encoder(modality, params), modality, params),
                                    x, y, modality.to_input, params.seed)
             for name in dict.fromkeys((method, optim.reference_method))}
    facts = {"budget": optim.budget, "reference_method": optim.reference_method,
             "flops_per_sample": flops[method], "reference_epochs": optim.epochs}
    if optim.budget == "equal_epochs" or method == optim.reference_method:
        return optim.epochs, facts
    return equal_compute_epochs(optim.epochs, flops[optim.reference_method], flops[method]), facts


def train_method(modality, method: str, params, optim, proc, x, y, checkpoint_dir, config: dict, live=None,
                 on_epoch_end=None):
    """A freshly seeded encoder trained by `method` for optim.epochs: (encoder, objective, TrainResult)."""
    seed_everything(params.seed)
    encoder = fresh_encoder(modality, params)
    objective = build_objective(method, encoder, modality, params)
    result = train(objective, x, y, modality.to_input, optim, params.seed, proc, checkpoint_dir, config_hash(config),
                   live=live, desc=f"pretrain {modality.name}-{method}", betas=BETAS[method], on_epoch_end=on_epoch_end)
    return encoder, objective, result


def run_config(modality_name: str, method: str, params, optim, proc) -> dict:
    """What a checkpoint must match to be resumed, and what models/pretrain/.../config.json records."""
    return {"modality": modality_name, "method": method, "seed": params.seed,
            "modality_params": params.modality(modality_name).model_dump(),
            "encoder": params.encoder.model_dump(), "optim": optim.model_dump(),
            "objective": getattr(params, method).model_dump() if method in BETAS else None,
            "world_size": proc.world_size, "train_data": split_sha256(paths.data_dir(modality_name), "train")}


def pretrain(modality_name: str, method: str, params, on_epoch_end=None) -> dict:
    """Train (or, for random, initialise) the method's encoder at its budget; its metrics."""
    modality = get_modality(modality_name, params)
    optim = params.optim("pretrain", modality_name)
    proc = setup(amp=optim.amp)
    out = paths.pretrain_dir(modality_name, method)
    config = run_config(modality_name, method, params, optim, proc)
    metrics = {"method": method, "modality": modality_name, "world_size": proc.world_size, "device": str(proc.device)}
    if method in BETAS:
        x, y = pretraining_data(modality)
        config["train_samples"] = len(x)
        epochs, budget = method_budget(modality, method, params, optim, x, y)
        optim = optim.model_copy(update={"epochs": epochs})
        config["optim"] = optim.model_dump()
        live = Live(str(paths.live_dir("pretrain", modality_name, method)), save_dvc_exp=False, dvcyaml=None) if proc.is_main else None
        start = time.perf_counter()
        encoder, objective, result = train_method(modality, method, params, optim, proc, x, y,
                                                  paths.checkpoint_dir("pretrain", modality_name, method), config,
                                                  live=live, on_epoch_end=on_epoch_end)
        if live is not None:
            live.end()
        metrics.update(result.__dict__, **budget, wall_seconds=time.perf_counter() - start, train_samples=len(x),
                       total_flops=budget["flops_per_sample"] * result.trained_samples,
                       objective_parameters=sum(p.numel() for p in objective.parameters()))
    else:
        seed_everything(params.seed)
        encoder, objective = fresh_encoder(modality, params), None
        metrics.update(epochs=0, steps=0, train_seconds=0.0, total_flops=0, note="random initialisation, no training")
        if proc.is_main:  # nothing to resume, but the stage's checkpoint folder says why it is empty
            write_json(paths.checkpoint_dir("pretrain", modality_name, method) / "state.json", {"epoch": 0, "note": metrics["note"]})
    metrics["parameters"] = sum(p.numel() for p in encoder.parameters())
    if proc.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_weights(encoder, out / "encoder.safetensors")
        if objective is not None:
            save_weights(objective, out / "objective.safetensors")
        write_json(out / "config.json", config)
        write_json(paths.metrics_file("pretrain", modality_name, method), metrics)
    return metrics


def pretrain_equal_epochs(modality_name: str, method: str, params) -> dict | None:
    """When the budget gives the method other epochs than the reference's, its run at the reference's epochs
    (models/pretrain/<modality>/<method>/equal_epochs/, probed only, for the comparison at equal epochs): the
    run's facts, or None when there is no such run."""
    paths.equal_epochs_encoder(modality_name, method).unlink(missing_ok=True)
    optim = params.optim("pretrain", modality_name)
    if method not in BETAS or optim.budget == "equal_epochs" or method == optim.reference_method:
        return None  # its budgeted run is already at the reference's epochs
    modality = get_modality(modality_name, params)
    proc = setup(amp=optim.amp)
    x, y = pretraining_data(modality)
    epochs, budget = method_budget(modality, method, params, optim, x, y)
    facts = None
    if epochs != optim.epochs:
        config = {**run_config(modality_name, method, params, optim, proc), "train_samples": len(x),
                  "budget": "equal_epochs"}
        encoder, _, result = train_method(modality, method, params, optim, proc, x, y,
                                          paths.checkpoint_dir("pretrain", modality_name, f"{method}-equal-epochs"), config)
        if proc.is_main:
            save_weights(encoder, paths.equal_epochs_encoder(modality_name, method))
        facts = {key: value for key, value in result.__dict__.items() if key != "curve"}
        facts["total_flops"] = budget["flops_per_sample"] * result.trained_samples
    return facts


def pretrain_job(job: tuple[str, str], args, params):
    method, run = job
    if run == "equal_epochs":
        return pretrain_equal_epochs(args.modality, method, params)
    metrics = pretrain(args.modality, method, params)
    if metrics.get("steps"):
        print(f"pretrain {args.modality}-{method}: {metrics['epochs']} epochs, loss {metrics['final_loss']:.4f}, "
              f"{metrics['total_flops'] / 1e12:.2f} TFLOP, {metrics['samples_per_s']:.1f} samples/s", flush=True)
    return None


def pretrain_jobs(methods: list[str]) -> list[tuple[str, str]]:
    """Each method at its budget, then the equal-epochs runs: the longest jobs start first, and with fewer
    workers than runs the shorter equal-epochs runs fill in beside them."""
    return [(method, "budget") for method in methods] + [(method, "equal_epochs") for method in methods]


def record_equal_epochs(modality_name: str, method: str, facts: dict) -> None:
    """The equal-epochs run's facts, in the method's metrics beside its budgeted run's."""
    path = paths.metrics_file("pretrain", modality_name, method)
    write_json(path, {**read_json(path), "equal_epochs": facts})


def main() -> None:
    args, params = start(__doc__, "modality", optional=("method",), choices={"method": sorted(OBJECTIVES)})
    relaunch_under_torchrun(params.distributed.nproc_per_node)
    # on CPU, methods train at once in single-thread processes (at equal compute their costs match)
    workers = 1 if torch.cuda.is_available() or "WORLD_SIZE" in os.environ else params.pretrain.workers
    jobs = pretrain_jobs(selected_methods(args, params))
    results = run_methods(partial(pretrain_job, args=args, params=params), jobs, workers)
    # one process group for all the jobs: a group destroyed and started again between jobs races, as a
    # rank may still connect to a peer that has already left the new group
    teardown()
    if int(os.environ.get("RANK", "0")) == 0:
        for (method, _), facts in zip(jobs, results):
            if facts is not None:
                record_equal_epochs(args.modality, method, facts)


if __name__ == "__main__":
    main()
