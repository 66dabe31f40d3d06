"""Compare a converted model's outputs with the float reference; model size on disk."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def compare_outputs(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Elementwise differences and top-1 agreement (argmax over the last axis)."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ValueError(f"output shapes differ: reference {reference.shape}, candidate {candidate.shape}")
    if reference.size == 0:
        raise ValueError("cannot compare empty outputs")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "top1_agreement": float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
    }


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose argmax equals the label."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (N, classes) and labels (N,), got {logits.shape} and {labels.shape}")
    if len(labels) == 0:
        raise ValueError("cannot compute accuracy of zero samples")
    return float(np.mean(logits.argmax(-1) == labels))


def file_size_bytes(path: str | Path) -> int:
    """Bytes on disk of a model: the file itself, plus the .bin for an OpenVINO .xml."""
    path = Path(path)
    files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: model file not found")
    return sum(f.stat().st_size for f in files)


def evaluate_variant(path: str | Path, reference: np.ndarray, x: np.ndarray, labels: np.ndarray) -> dict:
    """Run an exported model over x: its accuracy, size, and agreement with the reference outputs.

    A model with a fixed batch axis (a static-shape device variant) is run in batches of that size.
    """
    from devices.runtimes import open_session

    session = open_session(path)
    fixed_batch = session.input_shape[0] if session.input_shape else None
    out = predict_fixed_batch(session, x, fixed_batch) if fixed_batch else session.predict(x, batch_size=256)
    return {"size_bytes": file_size_bytes(path), "test_accuracy": accuracy(out, labels),
            **compare_outputs(reference, out)}


def predict_fixed_batch(session, x: np.ndarray, batch: int) -> np.ndarray:
    """session.run over x in batches of exactly `batch` rows; the last one is padded with zeros and the
    padding's outputs dropped."""
    x = np.asarray(x)
    outs = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        rows = len(chunk)
        if rows < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - rows, *chunk.shape[1:]), dtype=chunk.dtype)])
        outs.append(session.run(np.ascontiguousarray(chunk))[:rows])
    return np.concatenate(outs, axis=0)
