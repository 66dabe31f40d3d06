"""NT-Xent (normalised temperature-scaled cross entropy), the SimCLR loss."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Concatenate z from every process; gradients flow back to each process's own slice."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z), dim=0)


class NTXentLoss(nn.Module):
    """For 2B views, each view's positive is its pair; the other 2B-2 views (from all processes) are negatives."""

    def __init__(self, temperature: float = 0.2):
        super().__init__()
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        z1 = gather_with_grad(F.normalize(z1.float(), dim=-1))
        z2 = gather_with_grad(F.normalize(z2.float(), dim=-1))
        b = z1.shape[0]
        z = torch.cat([z1, z2], dim=0)
        logits = z @ z.t() / self.temperature
        logits.fill_diagonal_(float("-inf"))  # a view is not its own negative
        targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
        return F.cross_entropy(logits, targets)
