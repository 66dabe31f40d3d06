import json
import os
import shutil
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pipeline.models.ntxent import NTXentLoss
from tests.conftest import ROOT


def _gather_worker(rank, world, init_file, z1, z2, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    half = len(z1) // world
    a = z1[rank * half : (rank + 1) * half].clone().requires_grad_(True)
    b = z2[rank * half : (rank + 1) * half].clone()
    loss = NTXentLoss(0.3)(a, b)
    loss.backward()
    out[rank] = torch.cat([loss.detach().view(1), a.grad.flatten()])
    dist.destroy_process_group()


def test_ntxent_negatives_come_from_all_processes(tmp_path):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    full_a = z1.clone().requires_grad_(True)
    full = NTXentLoss(0.3)(full_a, z2)
    full.backward()
    out = mp.Manager().dict()
    mp.spawn(_gather_worker, args=(2, str(tmp_path / "init"), z1, z2, out), nprocs=2)
    for rank in range(2):
        loss, grad = out[rank][0], out[rank][1:].view(4, 6)
        assert abs(loss.item() - full.item()) < 1e-5  # each process sees the whole global batch
        # every process's copy of the loss sends gradient to this slice; DDP's averaging divides by 2
        assert torch.allclose(grad / 2, full_a.grad[rank * 4 : (rank + 1) * 4], atol=1e-6)


def test_pretrain_under_torchrun_with_two_cpu_processes(tmp_path):
    for name in ("pipeline", "modalities", "devices", "export"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "tests" / "params.tiny.yaml", tmp_path / "params.yaml")
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")  # the stages read only the params it declares
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "pipeline.stages.prepare", "--modality", "image"], cwd=tmp_path,
                   env=env, check=True)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "pipeline.stages.pretrain", "--modality", "image", "--method", "mae"],
                   cwd=tmp_path, env=env, check=True, timeout=300)
    metrics = json.loads((tmp_path / "metrics/pretrain/image/mae.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] > 0
    # MAE's equal-epochs run trains after its budgeted run, in the same process group
    assert metrics["equal_epochs"]["steps"] > 0
    assert (tmp_path / "models/pretrain/image/mae/encoder.safetensors").is_file()
    assert (tmp_path / "models/pretrain/image/mae/equal_epochs/encoder.safetensors").is_file()
    assert (tmp_path / "checkpoints/pretrain/image/mae/state.json").is_file()
