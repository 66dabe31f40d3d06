"""Prepared splits as model input (numpy), for evaluating and calibrating exported models."""
from __future__ import annotations

import numpy as np
import torch

from export.quantize.calibration import calibration_indices
from pipeline.config import paths


def model_inputs(modality, split) -> np.ndarray:
    """A loaded split's samples as the deployable model takes them."""
    return modality.to_input(torch.from_numpy(split.x)).numpy()


def calibration_inputs(modality, n: int, seed: int) -> np.ndarray:
    """`n` seeded training samples (never test data) as model input, for INT8 calibration."""
    train = modality.load_split(paths.data_dir(modality.name), "train")
    chosen = train.x[calibration_indices(len(train), n, seed)]
    return modality.to_input(torch.from_numpy(chosen)).numpy()
