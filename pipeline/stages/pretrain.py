"""pretrain: self-supervised training of the shared encoder with each method in `methods` (mae, simclr, or
random = no training), one after the other, for one modality.

Single process: `python -m pipeline.stages.pretrain --modality image [--method mae]`
Several processes: `torchrun --nproc_per_node N -m pipeline.stages.pretrain ...`, or set
`distributed.nproc_per_node` in params.yaml and the stage launches torchrun itself.
"""
from __future__ import annotations

import os
import sys
import time

import torch
from dvclive import Live

from modalities import get_modality
from pipeline.config import paths
from pipeline.training.checkpoint import config_hash, save_weights
from devices.io import split_sha256, write_json
from pipeline.models.methods import BETAS, OBJECTIVES, build_objective
from pipeline.models.loading import fresh_encoder
from pipeline.training.distributed import setup, teardown
from pipeline.stages.common import seed_everything, selected_methods, start
from pipeline.training.loop import train


def relaunch_under_torchrun(nproc: int) -> None:
    """Replace this process by torchrun with nproc workers running the same command."""
    if nproc <= 1 or "WORLD_SIZE" in os.environ:
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "pipeline.stages.pretrain", *sys.argv[1:]]
    os.execv(sys.executable, cmd)


def pretrain(modality_name: str, method: str, params, on_epoch_end=None) -> dict:
    modality = get_modality(modality_name, params)
    name = f"{modality_name}-{method}"
    optim = params.optim("pretrain", modality_name)
    proc = setup(amp=optim.amp)
    seed_everything(params.seed)
    encoder = fresh_encoder(modality, params)
    objective = build_objective(method, encoder, modality, params)
    out = paths.pretrain_dir(modality_name, method)
    config = {"modality": modality_name, "method": method, "seed": params.seed,
              "modality_params": params.modality(modality_name).model_dump(),
              "encoder": params.encoder.model_dump(), "optim": optim.model_dump(),
              "objective": getattr(params, method).model_dump() if objective else None,
              "world_size": proc.world_size, "train_data": split_sha256(paths.data_dir(modality_name), "train")}
    metrics = {"method": method, "modality": modality_name, "world_size": proc.world_size,
               "device": str(proc.device), "parameters": sum(p.numel() for p in encoder.parameters())}
    if objective is not None:
        data = modality.load_split(paths.data_dir(modality_name), "train")
        x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
        live = Live(str(paths.live_dir("pretrain", modality_name, method)), save_dvc_exp=False, dvcyaml=None) if proc.is_main else None
        start = time.perf_counter()
        result = train(objective, x, y, modality.to_input, optim, params.seed, proc,
                       paths.checkpoint_dir("pretrain", modality_name, method), config_hash(config), live=live,
                       desc=f"pretrain {name}", betas=BETAS[method], on_epoch_end=on_epoch_end)
        if live is not None:
            live.end()
        metrics.update(result.__dict__, wall_seconds=time.perf_counter() - start,
                       train_samples=len(x), objective_parameters=sum(p.numel() for p in objective.parameters()))
    else:
        metrics.update(epochs=0, steps=0, train_seconds=0.0, note="random initialisation, no training")
        if proc.is_main:  # nothing to resume, but the stage's checkpoint folder says why it is empty
            write_json(paths.checkpoint_dir("pretrain", modality_name, method) / "state.json", {"epoch": 0, "note": metrics["note"]})
    if proc.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_weights(encoder, out / "encoder.safetensors")
        if objective is not None:
            save_weights(objective, out / "objective.safetensors")
        write_json(out / "config.json", config)
        write_json(paths.metrics_file("pretrain", modality_name, method), metrics)
    teardown(proc)
    return metrics


def main() -> None:
    args, params = start(__doc__, "modality", optional=("method",), choices={"method": sorted(OBJECTIVES)})
    relaunch_under_torchrun(params.distributed.nproc_per_node)
    for method in selected_methods(args, params):
        metrics = pretrain(args.modality, method, params)
        if metrics.get("steps"):
            print(f"pretrain {args.modality}-{method}: loss {metrics['final_loss']:.4f}, "
                  f"{metrics['samples_per_s']:.1f} samples/s, peak {metrics['peak_memory_mb']:.0f} MB")


if __name__ == "__main__":
    main()
