"""Latency measurement of one callable on one input: warm up, then time each call.

Percentiles are nearest-rank (numpy ``method="inverted_cdf"``): every reported
percentile is a latency that was actually observed, never an interpolation.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def summarize(durations_ns, batch: int) -> dict:
    """Statistics (ms, samples/s) over per-call durations in nanoseconds."""
    d = np.asarray(durations_ns, dtype=np.float64)
    if d.size == 0:
        raise ValueError("no timed iterations to summarize")
    ms = d / 1e6
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99], method="inverted_cdf"))
    mean_ms = float(ms.mean())
    return {
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "mean_ms": mean_ms,
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "iterations": int(d.size),
        "batch": int(batch),
        "throughput": (batch / (mean_ms / 1e3)) if mean_ms > 0 else float("inf"),
    }


def measure(
    session_run: Callable[[np.ndarray], object],
    x: np.ndarray,
    warmup: int,
    min_iters: int,
    min_seconds: float,
    *,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict:
    """Time ``session_run(x)`` until at least ``min_iters`` calls AND ``min_seconds`` have passed.

    ``warmup`` untimed calls come first. Each call is timed on its own with
    ``clock`` (``time.perf_counter_ns``; injectable for tests). Returns p50/p90/
    p99/mean/min/max latency in ms, ``iterations``, ``batch`` (``x.shape[0]``),
    ``throughput`` in samples/s (batch / mean latency) and ``measured_seconds``.
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if min_iters < 1:
        raise ValueError(f"min_iters must be >= 1, got {min_iters}")
    if min_seconds < 0:
        raise ValueError(f"min_seconds must be >= 0, got {min_seconds}")
    batch = int(x.shape[0]) if getattr(x, "ndim", 0) >= 1 else 1

    for _ in range(warmup):
        session_run(x)

    min_ns = int(min_seconds * 1e9)
    durations: list[int] = []
    start = clock()
    while True:
        t0 = clock()
        session_run(x)
        t1 = clock()
        durations.append(t1 - t0)
        if len(durations) >= min_iters and t1 - start >= min_ns:
            break
    stats = summarize(durations, batch)
    stats["measured_seconds"] = (t1 - start) / 1e9
    return stats


ROW_STATS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms", "iterations", "throughput")


def judged_stats(stats: dict, profile, task: str | None, batch: int) -> dict:
    """A report row's figures: the measured statistics, the profile's budget and whether p99 meets it.

    The budget is on p99 at batch 1 (the interactive case); other batches carry no budget and no verdict.
    """
    budget = profile.budget_ms(task) if batch == 1 else None
    return {**{key: stats[key] for key in ROW_STATS}, "budget_ms": budget,
            "meets_budget": None if budget is None else stats["p99_ms"] <= budget}
