"""Where training runs: one process or DDP under torchrun; GPU when there is one."""
from __future__ import annotations

import os
import resource
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class TrainingProcess:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        """Mixed precision on GPU (bf16 where supported, else fp16); full precision on CPU."""
        if not self.amp or self.device.type != "cuda":
            return nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def needs_grad_scaler(self) -> bool:
        return self.amp and self.device.type == "cuda" and not torch.cuda.is_bf16_supported()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def peak_memory_mb(self) -> dict:
        """GPU: peak allocated by torch; CPU: the process's peak resident set (includes the framework)."""
        if self.device.type == "cuda":
            return {"peak_memory_mb": torch.cuda.max_memory_allocated(self.device) / 2**20, "memory_kind": "cuda_allocated"}
        return {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "memory_kind": "cpu_peak_rss"}


def setup(amp: bool = True) -> TrainingProcess:
    """Read torchrun's environment (if any), start the process group and pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return TrainingProcess(device=device, rank=rank, world_size=world_size, amp=amp)


def teardown() -> None:
    """End the process group that setup started, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()
