"""bench: latency of every exported model on one device profile, with PyTorch eager as the baseline.

The onnxruntime/OpenVINO measurements come from `devices.run` (no torch); this
stage adds the PyTorch eager rows for the same models and inputs, and a
`benchmark_app -hint latency` cross-check of the OpenVINO rows.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from devices.benchmark_app import benchmark_app_latency
from devices.latency import measure
from devices.profile import load_profile
from devices.report import not_measured_report, write_device_report
from devices.run import RuntimeUnavailable, measure_models
from devices.runtimes import open_session
from pipeline import paths
from pipeline.io import write_json
from pipeline.models import finetuned_classifier
from pipeline.stages.common import load_params, parser, seed_everything, task_modality


def eager_rows(params, profile) -> list[dict]:
    """PyTorch eager FP32 on this host's CPU, same batches and repetitions as the profile."""
    rows = []
    for task in params.tasks:
        _, modality = task_modality(params, task)
        for method in params.methods:
            model, _ = finetuned_classifier(modality, params, task, method)
            for batch in profile.batch_sizes:
                x = torch.rand(modality.example_input(batch).shape)

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
    """benchmark_app's median beside our p50 for each OpenVINO model at batch 1.

    Ours is re-measured right before benchmark_app, for as long, so both see the same machine state.
    """
    for row in rows:
        if row["runtime"] != "openvino" or row["batch"] != 1:
            continue
        path = paths.EXPORTS / row["model"]
        result = benchmark_app_latency(path, batch=1, seconds=seconds, dynamic=True)
        if result is None:
            continue
        session = open_session(path)
        x = np.random.default_rng(0).random(row["input_shape"], dtype=np.float32)
        ours = measure(session.run, x, profile.warmup_iterations, profile.min_iterations, seconds)
        row["cross_check"] = {"ours_p50_ms": ours["p50_ms"], "benchmark_app_median_ms": result["median_ms"],
                              "ratio": ours["p50_ms"] / result["median_ms"]}


def summary_metrics(report: dict) -> dict:
    """Flat p50/p99 per model x runtime x batch, for `dvc metrics show`."""
    out = {}
    for row in report.get("rows", []):
        key = f"{row['model']}|{row['runtime']}|b{row['batch']}"
        out[key] = {"p50_ms": round(row["p50_ms"], 4), "p99_ms": round(row["p99_ms"], 4),
                    "throughput": round(row["throughput"], 1)}
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--profile", required=True)
    args = ap.parse_args()
    params = load_params()
    seed_everything(params.seed)
    profile = load_profile(args.profile)
    overrides = {k: v for k, v in (("min_seconds", params.bench.min_seconds),
                                   ("min_iterations", params.bench.min_iterations),
                                   ("warmup_iterations", params.bench.warmup_iterations)) if v is not None}
    profile = dataclasses.replace(profile, **overrides)
    out_json = paths.REPORTS / "latency" / f"{profile.name}.json"
    out_md = out_json.with_suffix(".md")
    try:
        report = measure_models(profile, paths.EXPORTS)
    except RuntimeUnavailable as exc:
        report = not_measured_report(profile, str(exc))
    else:
        report["rows"] = eager_rows(params, profile) + report["rows"]
        if params.bench.benchmark_app_seconds > 0:
            cross_check_benchmark_app(report["rows"], profile, params.bench.benchmark_app_seconds)
    write_device_report(report, out_json, out_md)
    write_json(paths.metrics_file("bench", profile.name), summary_metrics(report))
    print(f"bench {profile.name}: {len(report.get('rows', []))} rows -> {out_md}")


if __name__ == "__main__":
    main()
