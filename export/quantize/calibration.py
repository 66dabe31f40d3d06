"""Calibration data for every INT8 quantizer: which training samples, checked against the model input, and
fed to the quantizer in batches."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

BATCH = 32  # samples per quantizer run when the model's batch axis is dynamic


def calibration_indices(n_available: int, n: int, seed: int) -> np.ndarray:
    """A seeded random subset (sorted) of `n_available` training samples (never test data)."""
    return np.sort(np.random.default_rng(seed).permutation(n_available)[:n])


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


def fit_to_batch(calibration: np.ndarray, input_shape: Sequence[int | None], batch: int | None,
                 model: str) -> np.ndarray:
    """Checked calibration for a model whose batch axis will be fixed to `batch` (None: stays dynamic),
    cut to a multiple of it."""
    array = check_calibration(calibration, [None, *input_shape[1:]], model)
    if batch:
        usable = len(array) - len(array) % batch
        if usable == 0:
            raise ValueError(f"{model}: {len(array)} calibration samples are fewer than the static batch {batch}")
        array = array[:usable]
    return array


def batch_size(input_shape: Sequence[int | None]) -> int:
    """Samples per quantizer run: the model's fixed batch, else BATCH."""
    return input_shape[0] or BATCH


def batches(array: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(array), size):
        yield array[start : start + size]


def onnxruntime_reader(calibration: np.ndarray, input_name: str, input_shape: Sequence[int | None]):
    """An onnxruntime CalibrationDataReader over `calibration` in batches of batch_size(input_shape)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._feeds = ({input_name: x} for x in batches(calibration, batch_size(input_shape)))

        def get_next(self):
            return next(self._feeds, None)

    return Reader()


def _fmt(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
