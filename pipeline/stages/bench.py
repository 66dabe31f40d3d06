"""bench: latency of every exported model on one device profile, with PyTorch eager as the baseline.

The onnxruntime/OpenVINO measurements come from `devices.run` (no torch); this
stage adds the PyTorch eager rows for the same models and inputs, and a
`benchmark_app -hint latency` cross-check of the OpenVINO rows.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from devices.benchmark_app import benchmark_app_latency
from devices.latency import measure
from devices.compat import check_all
from devices.profile import host_arch, load_profile
from devices.report import not_measured_report, render_index, validate_report, write_device_report
from devices.run import RuntimeUnavailable, measure_models, random_input
from devices.runtimes import open_session
from pipeline.config import paths
from devices.io import write_json, write_text
from pipeline.stages.common import start, task_modality
from pipeline.tasks.models import finetuned_model

DEVICE_REPORTS = Path("device_reports")


def eager_rows(params, profile) -> list[dict]:
    """PyTorch eager FP32 on this host's CPU, same batches and repetitions as the profile."""
    rows = []
    rng = np.random.default_rng(0)
    for task in params.tasks:
        _, modality = task_modality(params, task)
        for method in params.methods:
            model, _ = finetuned_model(modality, params, task, method)
            spec = modality.input_spec()
            for batch in profile.batch_sizes:
                shape = [batch, *spec["shape"][1:]]
                x = torch.from_numpy(random_input(rng, shape, np.dtype(spec["dtype"]), {"input_range": spec.get("range")},
                                                  f"{task}-{method}: input '{spec['name']}'"))

                def run(xb, model=model):
                    with torch.inference_mode():
                        return model(xb)

                stats = measure(run, x, profile.warmup_iterations, profile.min_iterations, profile.min_seconds)
                budget = profile.budget_ms(task) if batch == 1 else None
                rows.append({
                    "model": f"{task}-{method} (models/finetune)", "runtime": "pytorch-eager", "target": "cpu",
                    "precision": "fp32", "task": task, "batch": batch, "input_shape": list(x.shape),
                    **{k: stats[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms",
                                             "iterations", "throughput")},
                    "budget_ms": budget, "meets_budget": stats["p99_ms"] <= budget if budget else None,
                })
    return rows


def cross_check_benchmark_app(rows: list[dict], profile, seconds: float) -> None:
    """benchmark_app's median beside our p50 for each OpenVINO FP32 model at batch 1 (one check of the
    timing method per model; FP16 and INT8 are timed the same way).

    Ours is re-measured right before benchmark_app, for as long, so both see the same machine state.
    """
    for row in rows:
        if row["runtime"] != "openvino" or row["batch"] != 1 or row["precision"] != "fp32":
            continue
        path = paths.EXPORTS / row["model"]
        result = benchmark_app_latency(path, batch=1, seconds=seconds, dynamic=True)
        if result is None:
            continue
        session = open_session(path)
        x = random_input(np.random.default_rng(0), row["input_shape"], session.input_dtype, session.metadata, str(path))
        bound = session.bind(x)
        ours = measure(lambda _: bound(), x, profile.warmup_iterations, profile.min_iterations, seconds)
        row["cross_check"] = {"ours_p50_ms": ours["p50_ms"], "benchmark_app_median_ms": result["median_ms"],
                              "ratio": ours["p50_ms"] / result["median_ms"]}


def summary_metrics(reports: list[dict]) -> dict:
    """Batch-1 p50/p99 per profile x model x runtime, for `dvc metrics show`."""
    return {r["profile"]: {f"{row['model']}|{row['runtime']}": {"p50_ms": round(row["p50_ms"], 4),
                                                                  "p99_ms": round(row["p99_ms"], 4)}
                           for row in r.get("rows", []) if row["batch"] == 1}
            for r in reports}


def brought_back(profile_name: str) -> list[dict]:
    """Reports users ran on the device itself (`python -m devices.run ... --out device_reports/<profile>/X.json`)."""
    reports = []
    for path in sorted((DEVICE_REPORTS / profile_name).glob("*.json")):
        report = json.loads(path.read_text())
        validate_report(report)
        if report.get("profile") != profile_name:
            raise ValueError(f"{path}: a report for '{report.get('profile')}' in the folder of '{profile_name}'")
        reports.append({**report, "source": str(path)})
    return reports


def bench_profile(params, name: str) -> dict:
    profile = load_profile(name)
    overrides = {k: v for k, v in (("batch_sizes", tuple(params.bench.batch_sizes or ()) or None),
                                   ("min_seconds", params.bench.min_seconds),
                                   ("min_iterations", params.bench.min_iterations),
                                   ("warmup_iterations", params.bench.warmup_iterations)) if v is not None}
    profile = dataclasses.replace(profile, **overrides)
    compatibility = check_all(profile, paths.EXPORTS)
    if not profile.matches_host_arch():
        report = not_measured_report(profile, f"this host is {host_arch()}, the profile's device is {profile.arch}")
    else:
        try:
            report = measure_models(profile, paths.EXPORTS)
        except RuntimeUnavailable as exc:
            report = not_measured_report(profile, str(exc))
        else:
            if profile.name == "cpu-x86":  # the PyTorch baseline runs on this host's CPU only
                report["rows"] = eager_rows(params, profile) + report["rows"]
            if params.bench.benchmark_app_seconds > 0:
                cross_check_benchmark_app(report["rows"], profile, params.bench.benchmark_app_seconds)
    from_device = brought_back(profile.name)
    if report["status"] != "measured" and from_device:  # measured on the device itself, brought back here
        report = {**from_device[-1], "status": "measured", "measured_here": False}
    report["compatibility"] = compatibility
    return report


def main() -> None:
    _, params = start(__doc__)
    out = paths.REPORTS / "latency"
    reports = [bench_profile(params, name) for name in params.bench.profiles]
    for report in reports:
        write_device_report(report, out / f"{report['profile']}.json", out / f"{report['profile']}.md")
        print(f"bench {report['profile']}: {report['status']}, {len(report.get('rows', []))} rows")
    write_text(out / "index.md", render_index(reports))
    write_json(paths.METRICS / "bench.json", summary_metrics(reports))


if __name__ == "__main__":
    main()
