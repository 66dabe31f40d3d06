"""Prepared splits as float model input (numpy), for evaluating and calibrating exported models."""
from __future__ import annotations

import numpy as np
import torch

from pipeline.config import paths


def model_inputs(modality, split: str, indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x as the deployable model takes it, labels) for a split, optionally a subset of it."""
    data = modality.load_split(paths.data_dir(modality.name), split)
    x, y = (data.x, data.y) if indices is None else (data.x[indices], data.y[indices])
    return modality.to_input(torch.from_numpy(x)).numpy(), y


def calibration_indices(n_available: int, n: int, seed: int) -> np.ndarray:
    """A seeded random subset of the training split (never test data) for INT8 calibration."""
    return np.sort(np.random.default_rng(seed).permutation(n_available)[:n])
