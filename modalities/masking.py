"""MAE masking: which tokens the encoder sees and how to put them back in order."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Mask:
    ids_keep: torch.Tensor  # (B, n_visible) indices of visible tokens
    ids_restore: torch.Tensor  # (B, N) inverse permutation: shuffled order -> original order
    mask: torch.Tensor  # (B, N) float, 1 = scored (hidden, to reconstruct), 0 = not scored


def num_visible(num_tokens: int, ratio: float) -> int:
    return max(1, int(round(num_tokens * (1 - ratio))))


def mask_from_noise(noise: torch.Tensor, n_keep: int) -> Mask:
    """Keep the n_keep tokens with the smallest noise in each row."""
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :n_keep]
    mask = torch.ones_like(noise)
    mask[:, :n_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return Mask(ids_keep=ids_keep, ids_restore=ids_restore, mask=mask)


def random_mask(batch_size: int, num_tokens: int, ratio: float, generator: torch.Generator, device) -> Mask:
    """Per-sample uniform random masking (each sample hides a different subset)."""
    noise = torch.rand(batch_size, num_tokens, generator=generator).to(device)
    return mask_from_noise(noise, num_visible(num_tokens, ratio))


def gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """tokens (B, N, D), ids (B, K) -> (B, K, D)."""
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
