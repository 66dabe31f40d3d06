"""Validation and batching of calibration arrays shared by both INT8 quantizers."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def check_calibration(calibration: np.ndarray, input_shape: Sequence[int | None], model: str) -> np.ndarray:
    """C-contiguous copy of `calibration` (float32, or int64 for token-id inputs), checked against the model
    input shape.

    input_shape: the model input's dims, None where dynamic (axis 0 is the batch axis).
    """
    array = np.asarray(calibration)
    if np.issubdtype(array.dtype, np.integer):
        dtype = np.int64
    elif np.issubdtype(array.dtype, np.floating):
        dtype = np.float32
    else:
        raise ValueError(f"{model}: calibration must be a float (or integer token-id) array, got dtype {array.dtype}")
    if array.ndim != len(input_shape) or len(array) == 0:
        raise ValueError(
            f"{model}: calibration shape {array.shape} does not match the model input {_fmt(input_shape)}"
            " (expected a non-empty batch of model inputs)"
        )
    for got, want in zip(array.shape[1:], input_shape[1:]):
        if want is not None and got != want:
            raise ValueError(f"{model}: calibration shape {array.shape} does not match the model input {_fmt(input_shape)}")
    batch = input_shape[0]
    if batch is not None and len(array) % batch:
        raise ValueError(f"{model}: the model has a fixed batch of {batch}; {len(array)} calibration samples do not divide into it")
    if not np.isfinite(array).all():
        raise ValueError(f"{model}: calibration contains NaN or infinite values")
    return np.ascontiguousarray(array, dtype=dtype)


def batches(array: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(array), size):
        yield array[start : start + size]


def _fmt(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
