"""Fixed sin-cos positional embeddings (as in MAE), for 1-D sequences, 2-D grids and 3-D (video) grids."""
from __future__ import annotations

import torch


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """positions (M,) -> (M, dim): half sines, half cosines over geometric frequencies."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dimension, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.double().reshape(-1, 1) * omega.reshape(1, -1)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()


def sincos_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """(height * width, dim), row-major; half the channels encode rows, half columns."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs a dimension divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.cat([sincos_1d(rows.flatten(), dim // 2), sincos_1d(cols.flatten(), dim // 2)], dim=1)


def sincos_3d(frames: int, height: int, width: int, dim: int) -> torch.Tensor:
    """(frames * height * width, dim), ordered (t, h, w) row-major; channels split over time, rows, columns.

    Rows and columns get an equal even share (about a third each), time gets the rest, so any even
    dimension works.
    """
    if dim % 2:
        raise ValueError(f"3-D sin-cos embedding needs an even dimension, got {dim}")
    spatial = 2 * (dim // 6)
    if spatial == 0:
        raise ValueError(f"3-D sin-cos embedding needs a dimension of at least 6, got {dim}")
    t, rows, cols = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    return torch.cat([sincos_1d(t.flatten(), dim - 2 * spatial), sincos_1d(rows.flatten(), spatial),
                      sincos_1d(cols.flatten(), spatial)], dim=1)
