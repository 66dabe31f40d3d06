"""bench: latency of every exported model on each device profile, with PyTorch eager as the baseline.

The onnxruntime/OpenVINO measurements, the compatibility checks, the reports brought back from the
devices themselves and the `benchmark_app -hint latency` cross-check come from `devices` (no torch);
this stage adds the PyTorch eager rows for the same models and inputs on this host's CPU, and the GFLOP/s each
model achieves at its largest batch (its FLOPs per inference, counted at export, from its metadata).
"""
from __future__ import annotations

import dataclasses
import sys
from functools import cache
from pathlib import Path

import numpy as np
import torch

from devices.benchmark_app import cross_check
from devices.compat import check_all
from devices.io import write_json, write_text
from devices.latency import judged_stats, measure
from devices.metadata import decode_metadata, read_metadata
from devices.profile import load_profile
from devices.report import (MEASURED, add_achieved_gflops, render_index, summary_metrics, with_brought_back,
                            write_device_report)
from devices.run import measure_here, random_input
from pipeline.config import paths
from pipeline.stages.common import start, task_modality
from pipeline.tasks.models import finetuned_model

DEVICE_REPORTS = Path("device_reports")
EAGER_PROFILE = "cpu-x86"  # the PyTorch baseline runs on this host's CPU only


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
                rows.append({"model": f"{task}-{method} (models/finetune)", "runtime": "pytorch-eager", "target": "cpu",
                             "precision": "fp32", "task": task, "method": method, "batch": batch,
                             "input_shape": list(x.shape),
                             **judged_stats(stats, profile, task, batch)})
    return rows


@cache
def export_flops(task: str, method: str) -> int | None:
    """FLOPs per inference the export stage counted for exports/<task>/<method>/ (None if it has no count)."""
    path = paths.export_dir(task, method) / "model.onnx"
    return decode_metadata(read_metadata(path)).get("flops_per_sample") if path.is_file() else None


def row_flops(row: dict) -> int | None:
    """A row's model FLOPs per inference: its export folder is <task>/<method>/ under exports/ (an eager row
    names its method)."""
    if "method" in row:
        return export_flops(row["task"], row["method"])
    parts = Path(row["model"]).parts
    return export_flops(parts[0], parts[1]) if len(parts) > 2 else None


def bench_profile(params, name: str) -> dict:
    settings = params.bench
    overrides = {k: v for k, v in (("batch_sizes", tuple(settings.batch_sizes or ()) or None),
                                   ("min_seconds", settings.min_seconds),
                                   ("min_iterations", settings.min_iterations),
                                   ("warmup_iterations", settings.warmup_iterations)) if v is not None}
    profile = dataclasses.replace(load_profile(name), **overrides)
    compatibility = check_all(profile, paths.EXPORTS)
    report = measure_here(profile, paths.EXPORTS)
    if report["status"] == MEASURED:
        if profile.name == EAGER_PROFILE:
            report["rows"] = eager_rows(params, profile) + report["rows"]
        if settings.benchmark_app_seconds > 0:
            cross_check(report["rows"], paths.EXPORTS, profile, settings.benchmark_app_seconds)
    # a bad file brought back is named in the report and on stderr; the good ones and the measurements stay
    report = with_brought_back(report, DEVICE_REPORTS / profile.name, skip_bad=True)
    for item in report.get("skipped", []):
        if "file" in item:
            print(f"bench {profile.name}: skipped: {item['file']}: {item['reason']}", file=sys.stderr)
    report["compatibility"] = compatibility
    return add_achieved_gflops(report, row_flops)


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
