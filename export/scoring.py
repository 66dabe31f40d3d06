"""Compare a converted model's outputs with the float reference; score it on the test split; size on disk.

A model may have several outputs (a detector: boxes and scores), so outputs travel as lists of arrays
in the model's output order. The task's metric comes from a `score` callable (pipeline.tasks.scoring)
mapping those outputs over the whole split to numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

Score = Callable[[list[np.ndarray]], dict]


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


def compare_all(reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict[str, float]:
    """compare_outputs over every output: the largest differences; top-1 agreement for a single
    (N, classes) output only (logits), where it means "same predicted class"."""
    if len(reference) != len(candidate):
        raise ValueError(f"reference has {len(reference)} outputs, candidate {len(candidate)}")
    stats = [compare_outputs(r, c) for r, c in zip(reference, candidate)]
    out = {"max_abs_diff": max(s["max_abs_diff"] for s in stats),
           "mean_abs_diff": max(s["mean_abs_diff"] for s in stats)}
    if len(reference) == 1 and np.asarray(reference[0]).ndim == 2:
        out["top1_agreement"] = stats[0]["top1_agreement"]
    return out


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


def run_outputs(path: str | Path, x: np.ndarray) -> list[np.ndarray]:
    """Every output of an exported model over x. A model with a fixed batch axis (a static-shape device
    variant) is run in batches of that size."""
    from devices.runtimes import open_session

    session = open_session(path)
    fixed_batch = session.input_shape[0] if session.input_shape else None
    return predict_fixed_batch(session, x, fixed_batch) if fixed_batch else session.predict_all(x, batch_size=256)


def evaluate_variant(path: str | Path, reference: list[np.ndarray], x: np.ndarray, score: Score) -> dict:
    """Run an exported model over x: its task metric (`score`), size, and agreement with the reference outputs."""
    outputs = run_outputs(path, x)
    return {"size_bytes": file_size_bytes(path), **score(outputs), **compare_all(reference, outputs)}


def predict_fixed_batch(session, x: np.ndarray, batch: int) -> list[np.ndarray]:
    """session.run_all over x in batches of exactly `batch` rows; the last one is padded with zeros and the
    padding's outputs dropped."""
    x = np.asarray(x)
    outs = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        rows = len(chunk)
        if rows < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - rows, *chunk.shape[1:]), dtype=chunk.dtype)])
        outs.append([o[:rows] for o in session.run_all(np.ascontiguousarray(chunk))])
    return [np.concatenate(parts, axis=0) for parts in zip(*outs)]
