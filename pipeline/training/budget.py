"""Pretraining budgets in compute rather than wall-clock: FLOPs per training sample, counted by
torch.utils.flop_counter on one forward and backward pass, so MAE (which encodes a quarter of the
tokens) gets the epochs its cheaper steps buy when the methods are compared at equal compute.
The count is deterministic: it depends on the shapes, not on the host or on timing."""
from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import FlopCounterMode

COUNT_BATCH = 8  # samples per counted step: enough for batch-wide ops (NT-Xent) to show their share


def flops_per_sample(objective: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, to_input, seed: int) -> float:
    """FLOPs of one training step (forward and backward) per sample, on the first samples of x.

    NT-Xent's similarity matrix grows with the batch, but at these batch sizes it is well under 1% of
    the encoder's cost, so the per-sample figure is taken at a small batch. The objective's RNG (views,
    masks) and its weights are left as they were."""
    batch = min(COUNT_BATCH, len(x))
    if batch < 2:
        raise ValueError(f"need at least 2 training samples to count FLOPs, got {len(x)}")
    xb, yb = to_input(x[:batch]), y[:batch]
    generator = torch.Generator().manual_seed(seed)
    was_training = objective.training
    objective.train()
    with FlopCounterMode(display=False) as counter:
        loss = objective(xb, yb, generator)
        loss.backward()
    objective.zero_grad(set_to_none=True)
    objective.train(was_training)
    return counter.get_total_flops() / batch


def equal_compute_epochs(reference_epochs: int, reference_flops: float, flops: float) -> int:
    """Epochs whose FLOPs match `reference_epochs` of a method costing `reference_flops` per sample
    (same training set): rounded to the nearest epoch, at least one."""
    if reference_flops <= 0 or flops <= 0:
        raise ValueError(f"FLOPs per sample must be positive, got reference {reference_flops}, method {flops}")
    return max(1, math.floor(reference_epochs * reference_flops / flops + 0.5))
