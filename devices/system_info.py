"""What host a measurement ran on: CPU, cores, OS, Python and runtime versions, and its measured float32
matrix-multiply peak (numpy), beside which a model's achieved GFLOP/s is read.

Standard library and numpy; onnxruntime, OpenVINO and threadpoolctl are imported lazily and are
optional (a host with one of them, or neither, is described as such).
"""
from __future__ import annotations

import os
import platform
import sys
import time
from functools import cache
from pathlib import Path


def _cpuinfo() -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical CPU (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return []
    blocks, current = [], {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def cpu_model() -> str:
    """A human-readable CPU model name, best effort."""
    info = _cpuinfo()
    for block in info:
        for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
            if block.get(key):
                return block[key]
    if sys.platform == "darwin":  # pragma: no cover - not the CI host
        import subprocess

        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _physical_cores() -> int | None:
    pairs = {(b.get("physical id", "0"), b["core id"]) for b in _cpuinfo() if "core id" in b}
    return len(pairs) or None


def _usable_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _onnxruntime() -> dict:
    try:
        import onnxruntime as ort
    except Exception as exc:  # ImportError, or a broken install
        return {"available": False, "reason": f"cannot import onnxruntime: {exc}"}
    try:
        providers = list(ort.get_available_providers())
    except Exception as exc:
        return {"available": False, "version": getattr(ort, "__version__", None), "reason": str(exc)}
    return {"available": True, "version": ort.__version__, "providers": providers}


def _openvino() -> dict:
    try:
        import openvino as ov
    except Exception as exc:
        return {"available": False, "reason": f"cannot import openvino: {exc}"}
    try:
        version = ov.get_version()
    except Exception:
        version = getattr(ov, "__version__", None)
    try:
        core = ov.Core()
        names = list(core.available_devices)
    except Exception as exc:
        return {"available": False, "version": version, "reason": f"OpenVINO Core failed: {exc}"}
    devices = {}
    for name in names:
        try:
            devices[name] = str(core.get_property(name, "FULL_DEVICE_NAME"))
        except Exception as exc:  # a plugin that lists a device but cannot describe it
            devices[name] = f"unknown ({exc})"
    return {"available": True, "version": version, "devices": devices}


def _blas_threads() -> int | None:
    """The threads numpy's BLAS runs a matmul with (threadpoolctl), None where that cannot be told."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(counts) if counts else None


@cache
def matmul_peak(size: int = 1024, seconds: float = 0.5) -> dict:
    """This host's float32 matrix-multiply rate: the fastest of repeated `size` x `size` numpy matmuls over
    about `seconds` (at least 3), as GFLOP/s (2 * size**3 operations each), with numpy's BLAS threads.
    Measured once per process."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    a @ b  # warm-up: thread pool start, page faults
    best, runs, start = float("inf"), 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        a @ b
        best, runs = min(best, time.perf_counter() - t0), runs + 1
    return {"gflops_per_s": 2 * size**3 / best / 1e9, "size": size, "dtype": "float32", "runs": runs,
            "threads": _blas_threads()}


def describe_host() -> dict:
    """A JSON-ready description of this host and the runtimes it has."""
    try:
        import numpy

        numpy_version = numpy.__version__
    except Exception:  # pragma: no cover - numpy is a hard requirement elsewhere
        numpy_version = None
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "usable_cores": _usable_cores(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy_version,
        "onnxruntime": _onnxruntime(),
        "openvino": _openvino(),
        "matmul_peak": matmul_peak(),
    }


if __name__ == "__main__":  # python -m devices.system_info
    import json

    print(json.dumps(describe_host(), indent=2))
