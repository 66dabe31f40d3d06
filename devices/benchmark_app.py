"""A cross-check of devices.run against OpenVINO's own ``benchmark_app`` CLI.

``benchmark_app`` ships with the ``openvino`` wheel (``.venv/bin/benchmark_app``).
For a model with a dynamic batch ([?,1,28,28]) it needs a concrete shape:

* ``-shape [B,1,28,28]`` (default here) reshapes the model to a static shape
  before compiling, and times inference only. Works for any rank, unlike ``-b``,
  which needs benchmark_app to guess which axis is the batch from the layout.
* ``-data_shape [B,1,28,28] -inference_only`` keeps the model dynamic (as
  ``devices.run`` / ``OpenVinoSession`` runs it) and feeds that shape
  (``dynamic=True``). Without ``-inference_only`` benchmark_app also times
  filling the input, and with several data shapes it requires ``-api async``.

With ``-hint latency`` it runs one synchronous request and prints, in its last
lines, ``Median/Average/Min/Max: <value> us`` (older releases print ``ms``).
"""
from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from devices.latency import measure
from devices.run import random_input
from devices.runtimes import open_session

log = logging.getLogger(__name__)

_STAT = re.compile(r"^\[\s*\w+\s*\]\s+(Median|Average|Min|Max):\s+([0-9.]+)\s*(ns|us|ms|s)\s*$", re.MULTILINE)
_COUNT = re.compile(r"Count:\s+([0-9]+)\s+iterations")
_THROUGHPUT = re.compile(r"Throughput:\s+([0-9.]+)\s+FPS")
_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def find_benchmark_app() -> str | None:
    """Path of the benchmark_app executable: next to this Python first, else on PATH."""
    here = Path(sys.executable).parent  # not resolved: a venv's bin/ holds its own scripts
    for name in ("benchmark_app", "benchmark_app.exe"):
        candidate = here / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("benchmark_app")


def benchmark_app_unavailable_reason() -> str | None:
    """Why benchmark_app_latency would return None here; None when it can run."""
    if find_benchmark_app() is None:
        return f"benchmark_app not found next to {sys.executable} nor on PATH (it ships with the openvino wheel)"
    try:
        import openvino  # noqa: F401  (needed to read the model's input shape)
    except Exception as exc:
        return f"openvino is not importable ({exc})"
    return None


def _input_shape(model_xml: Path, batch: int) -> list[int]:
    import openvino as ov

    model = ov.Core().read_model(str(model_xml))
    if len(model.inputs) != 1:
        raise ValueError(f"{model_xml}: has {len(model.inputs)} inputs; only single-input models are supported")
    dims = [d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape()]
    if not dims:
        raise ValueError(f"{model_xml}: input is a scalar; expected a batch axis first")
    dynamic = [i for i, d in enumerate(dims) if d is None and i != 0]
    if dynamic:
        raise ValueError(f"{model_xml}: input axes {dynamic} are dynamic besides the batch axis 0; cannot choose a shape")
    return [batch, *dims[1:]]


def benchmark_app_command(
    tool: str, model_xml: str | Path, shape: list[int], device: str = "CPU", seconds: float = 5,
    *, dynamic: bool = False, threads: int = 0,
) -> list[str]:
    """The benchmark_app argv for a latency run at one input shape."""
    shape_text = "[" + ",".join(str(d) for d in shape) + "]"
    whole_seconds = max(1, math.ceil(seconds))  # benchmark_app's -t takes a positive integer
    cmd = [tool, "-m", str(model_xml), "-d", device, "-hint", "latency", "-t", str(whole_seconds)]
    if device == "CPU":
        cmd += ["-infer_precision", "f32"]  # as devices.runtimes.open_session runs it (no silent bf16)
    cmd += ["-data_shape", shape_text, "-inference_only"] if dynamic else ["-shape", shape_text]
    if threads:
        cmd += ["-nthreads", str(threads)]
    return cmd


def parse_benchmark_output(text: str) -> dict:
    """Median/average/min/max latency (ms), iteration count and FPS from benchmark_app's output."""
    # The overall block is the last one printed (per-shape-group blocks come before it).
    stats = {}
    for name, value, unit in _STAT.findall(text):
        stats[f"{name.lower()}_ms"] = float(value) * _TO_MS[unit]
    missing = [k for k in ("median_ms", "average_ms", "min_ms", "max_ms") if k not in stats]
    if missing:
        raise ValueError(f"benchmark_app output has no {', '.join(missing)} latency lines")
    count = _COUNT.findall(text)
    fps = _THROUGHPUT.findall(text)
    stats["iterations"] = int(count[-1]) if count else None
    stats["throughput_fps"] = float(fps[-1]) if fps else None
    return stats


def benchmark_app_latency(
    model_xml: str | Path,
    device: str = "CPU",
    batch: int = 1,
    seconds: float = 5,
    *,
    dynamic: bool = False,
    threads: int = 0,
    timeout: float | None = None,
) -> dict | None:
    """Run benchmark_app in latency mode on an OpenVINO IR at ``batch``; its stats in ms.

    ``seconds`` is rounded up to a whole number >= 1 (what ``-t`` accepts).

    Returns None (and logs the reason, see ``benchmark_app_unavailable_reason``)
    when the tool is absent. Raises RuntimeError if the tool runs but fails or
    prints no latency. The dict holds ``median_ms``, ``average_ms``, ``min_ms``,
    ``max_ms``, ``iterations``, ``throughput_fps`` (benchmark_app's FPS, i.e.
    batches/s x batch as it reports), plus ``command``, ``shape``, ``device``.
    """
    reason = benchmark_app_unavailable_reason()
    if reason is not None:
        log.warning("benchmark_app not run: %s", reason)
        return None
    model_xml = Path(model_xml)
    if not model_xml.is_file():
        raise FileNotFoundError(f"{model_xml}: OpenVINO model not found")
    shape = _input_shape(model_xml, batch)
    cmd = benchmark_app_command(find_benchmark_app(), model_xml, shape, device, seconds, dynamic=dynamic, threads=threads)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout if timeout is not None else seconds + 120,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"benchmark_app timed out: {' '.join(cmd)}") from exc
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark_app failed (exit {proc.returncode}): {' '.join(cmd)}\n{output[-2000:]}")
    try:
        stats = parse_benchmark_output(output)
    except ValueError as exc:
        raise RuntimeError(f"{exc}: {' '.join(cmd)}\n{output[-2000:]}") from exc
    stats.update({"command": cmd, "shape": shape, "device": device, "batch": batch, "dynamic": dynamic})
    return stats


def cross_check(rows: list[dict], models_dir: str | Path, profile, seconds: float) -> None:
    """Add benchmark_app's median beside our p50 to each OpenVINO FP32 row at batch 1 (one check of the
    timing method per model; FP16 and INT8 are timed the same way), as ``row["cross_check"]``.

    Ours is re-measured right before benchmark_app, for as long, so both see the same machine state.
    """
    for row in rows:
        if row["runtime"] != "openvino" or row["batch"] != 1 or row["precision"] != "fp32":
            continue
        path = Path(models_dir) / row["model"]
        result = benchmark_app_latency(path, batch=1, seconds=seconds, dynamic=True)
        if result is None:
            continue
        session = open_session(path)
        x = random_input(np.random.default_rng(0), row["input_shape"], session.input_dtype, session.metadata, str(path))
        bound = session.bind(x)
        ours = measure(lambda _: bound(), x, profile.warmup_iterations, profile.min_iterations, seconds)
        row["cross_check"] = {"ours_p50_ms": ours["p50_ms"], "benchmark_app_median_ms": result["median_ms"],
                              "ratio": ours["p50_ms"] / result["median_ms"]}


if __name__ == "__main__":  # python -m devices.benchmark_app MODEL.xml [BATCH] [SECONDS]
    import json

    args = sys.argv[1:]
    if not args:
        print("usage: python -m devices.benchmark_app MODEL.xml [BATCH] [SECONDS]", file=sys.stderr)
        sys.exit(2)
    result = benchmark_app_latency(args[0], batch=int(args[1]) if len(args) > 1 else 1,
                                   seconds=float(args[2]) if len(args) > 2 else 5)
    if result is None:
        print(f"not run: {benchmark_app_unavailable_reason()}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(result, indent=2))
