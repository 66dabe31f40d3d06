"""reports/summary.md: the tables a user reads first, built only from measured metrics files. Each task
kind adds its own section (Task.report_section); the sections here are common to every task."""
from __future__ import annotations

import json

from pipeline.config import paths
from pipeline.report.comparison import comparison_section
from pipeline.report.robustness import robustness_section
from pipeline.report.tables import METRIC_NAMES, num, pct, table
from pipeline.tasks.registry import get_task


def load_metrics(stage: str, group: str, method: str) -> dict | None:
    path = paths.baseline_file(group) if stage == "baselines" else paths.metrics_file(stage, group, method)
    return json.loads(path.read_text()) if path.is_file() else None


def summary(params, load=load_metrics) -> str:
    lines = ["# Summary", "", "Every number below was measured by this pipeline run; "
             "see `dvc metrics show` for the raw values.", ""]
    lines += tasks_section(params, load) + baselines_section(params, load) + curves_section(params, load)
    lines += comparison_section(params, load)
    for head in dict.fromkeys(spec.head for spec in params.tasks.values()):
        lines += get_task(head).report_section(params, load)
    lines += cost_section(params, load) + export_section(params, load) + latency_section()
    lines += robustness_section(params, load)
    return "\n".join(lines)


def headline_metrics(params, load=load_metrics) -> dict:
    """metrics/summary.json, what `dvc metrics show` and `dvc exp show` print: per task and method the
    test metric of the fine-tuned model and of its ONNX INT8 export."""
    out = {}
    for task, spec in params.tasks.items():
        out[task] = {}
        for method in params.methods:
            finetune = load("finetune", task, method) or {}
            int8 = (load("quantize", task, method) or {}).get("variants", {}).get("onnx-int8", {})
            out[task][method] = {spec.metric: finetune.get("test_metric"), f"{spec.metric}_int8": int8.get("test_metric")}
        out[task]["baseline"] = {spec.metric: (load("baselines", task, "") or {}).get("test_metric")}
    return out


def best_method(finetuned: dict[str, dict]) -> str | None:
    """The method a task ships: the best validation metric (test where there is none: anomaly tasks,
    whose val split holds no anomalies, an optimistic pick)."""
    return max(finetuned, key=lambda m: finetuned[m].get("val_metric", finetuned[m]["test_metric"]), default=None)


def baselines_section(params, load) -> list[str]:
    """Each task's best fine-tuned method against its simple baseline. The method is picked on the val
    metric; anomaly tasks have no anomalies in val, so there it is the best on test (an optimistic pick)."""
    rows = []
    for task, spec in params.tasks.items():
        base = load("baselines", task, "") or {}
        finetuned = {m: load("finetune", task, m) for m in params.methods}
        finetuned = {m: ft for m, ft in finetuned.items() if ft and ft.get("test_metric") is not None}
        best = best_method(finetuned)
        metric, baseline = finetuned[best]["test_metric"] if best else None, base.get("test_metric")
        verdict = "n/a" if metric is None or baseline is None else "yes" if metric > baseline else "**no**"
        rows.append([task, METRIC_NAMES[spec.metric], base.get("model", "not run"), base.get("features", ""),
                     num(baseline), best or "", num(metric), verdict])
    return (["## Every task against a simple baseline (test split)", "",
             "The baseline is fitted on the same training split (`metrics/baselines/`); a model that does not "
             "beat it is not worth its latency. Best method: the best on val (on test for anomaly tasks, whose "
             "val split holds no anomalies).", ""]
            + table(["task", "metric", "baseline", "on", "baseline metric", "best method", "its metric",
                     "beats baseline"], rows))


def curves_section(params, load) -> list[str]:
    """Where each fine-tune's validation curve ends against its best point: a curve still rising at the
    last epoch says the budget stopped it early."""
    rows = []
    for task, spec in params.tasks.items():
        for method in params.methods:
            finetuned = load("finetune", task, method) or {}
            curve = finetuned.get("learning_curve") or []
            if not curve:
                continue
            best_step, best = max(curve, key=lambda point: point[1])
            last_step, last = curve[-1]
            rising = len(curve) > 1 and last >= best and last - curve[-2][1] > 0.005
            stopped = finetuned.get("stopped_at_epoch")
            rows.append([task, method, str(last_step), num(curve[0][1]), f"{num(best)} (step {best_step})", num(last),
                         "**still rising**" if rising else "flat" if last >= best - 0.005 else "past its best",
                         f"early, after epoch {stopped}" if stopped else "no"])
    if not rows:
        return []
    return (["## Fine-tuning learning curves (validation metric after each epoch)", "",
             "The full curves are in `metrics/finetune/<task>/<method>.json` (`learning_curve`: step, val metric) "
             "and in the dvclive plots. With `finetune.patience` a run stops after that many epochs without a "
             "validation gain and ships its best epoch's weights.", ""]
            + table(["task", "method", "steps", "after epoch 1", "best", "last", "at the end", "stopped"], rows))


def pretraining_runs(params, load):
    """(modality, method, budget, run, metrics) for each pretraining run: a method's own run (at its budget)
    and, where it was also trained at equal epochs, that run ("equal_epochs" in its metrics)."""
    for modality in params.modalities:
        for method in params.methods:
            m = load("pretrain", modality, method)
            if not m or not m.get("steps"):
                continue
            if "equal_epochs" in m:
                yield modality, method, "equal epochs", m["equal_epochs"], m
            yield modality, method, m.get("budget", "equal_epochs").replace("_", " "), m, m


def cost_section(params, load) -> list[str]:
    rows = [[modality, method, budget, str(run["epochs"]), str(run["steps"]),
             num(m.get("flops_per_sample", 0) / 1e6, ".1f"), num(run.get("total_flops", 0) / 1e12, ".2f"),
             num(run["train_seconds"], ".1f"), num(run["samples_per_s"], ".1f"),
             num(run["peak_memory_mb"], ".0f") + f" ({run['memory_kind']})", m["device"], str(m["world_size"])]
            for modality, method, budget, run, m in pretraining_runs(params, load)]
    return (["## Pretraining cost", "",
             "Same encoder and data for both methods. FLOPs per training sample (forward and backward) are "
             "counted with torch.utils.flop_counter; at equal compute each method's total matches the reference "
             "method's up to rounding to whole epochs. samples/s counts training samples per second of "
             "training-loop time (checkpoint writes excluded; methods may train at once, one thread each).", ""]
            + table(["modality", "method", "budget", "epochs", "steps", "MFLOP/sample", "TFLOP", "train s",
                     "samples/s", "peak MB", "device", "processes"], rows))


def export_section(params, load) -> list[str]:
    parity_rows, size_rows = [], []
    for task, spec in params.tasks.items():
        for method in params.methods:
            exp = load("export", task, method) or {}
            quant = load("quantize", task, method) or {}
            for variant, v in exp.get("variants", {}).items():
                parity_rows.append([spec.modality, task, method, variant, num(v.get("max_abs_diff"), ".2e"),
                                    pct(v.get("top1_agreement"))])
            torch_metric = exp.get("torch_test_metric")
            every = {**exp.get("variants", {}), **quant.get("variants", {})}
            for variant, v in every.items():
                if "error" in v:
                    size_rows.append([spec.modality, task, method, f"`{variant}`", f"failed: {v['error']}", "", ""])
                    continue
                size_rows.append([spec.modality, task, method, f"`{variant}`" if "/" in variant else variant,
                                  METRIC_NAMES[spec.metric], num(v.get("test_metric")), num(torch_metric),
                                  num(v.get("size_bytes", 0) / 2**20, ".2f")])
    return (["## Export parity (test split, against PyTorch)", "",
             "Top-1 agreement applies to classifiers only (n/a for detectors and anomaly scorers).", ""]
            + table(["modality", "task", "method", "variant", "max abs diff", "top-1 agreement"], parity_rows)
            + ["## Task metric and size of every exported variant (test split)", "",
               "`targets/<profile>/...` are the variants prepared for one device profile (static shapes, "
               "its INT8 preset); their metric is measured on this CPU with onnxruntime or OpenVINO.", ""]
            + table(["modality", "task", "method", "variant", "metric", "exported", "PyTorch", "size MB"],
                     size_rows))


def _latency_p50(report: dict | None, task: str, method: str, runtime: str, precision: str) -> float | None:
    """Batch-1 p50 of the standard export (exports/<task>/<method>/...) on one runtime and precision."""
    for row in (report or {}).get("rows", []):
        if (row["model"].startswith(f"{task}/{method}/") and "/targets/" not in row["model"]
                and row["runtime"] == runtime and row["precision"] == precision and row["batch"] == 1):
            return row["p50_ms"]
    return None


def tasks_section(params, load) -> list[str]:
    """Every task x method: the fine-tuned metric, the FP32 and INT8 exports' metric, latency on this CPU."""
    path = paths.REPORTS / "latency" / "cpu-x86.json"
    latency = json.loads(path.read_text()) if path.is_file() else None
    measured = latency is not None and latency.get("status") == "measured"
    rows = []
    for task, spec in params.tasks.items():
        for method in params.methods:
            ft = load("finetune", task, method) or {}
            exp = (load("export", task, method) or {}).get("variants", {})
            quant = (load("quantize", task, method) or {}).get("variants", {})
            p50 = [_latency_p50(latency, task, method, *rp) if measured else None
                   for rp in (("onnxruntime", "fp32"), ("onnxruntime", "int8"))]
            rows.append([task, spec.head, method, METRIC_NAMES[spec.metric], num(ft.get("test_metric")),
                         num(exp.get("onnx-fp32", {}).get("test_metric")),
                         num(quant.get("onnx-int8", {}).get("test_metric")),
                         num(quant.get("openvino-int8", {}).get("test_metric")),
                         *(num(v, ".2f") for v in p50)])
    where = (f"latency: batch-1 p50 on `cpu-x86` ({latency.get('host', {}).get('cpu_model', 'this host')})"
             if measured else "latency: not measured here")
    return (["## Every task: fine-tuned, exported FP32 and INT8 (test split)", "",
             f"Metric on the held-out test split; {where}.", ""]
            + table(["task", "head", "method", "metric", "PyTorch", "ONNX FP32", "ORT INT8", "NNCF INT8",
                      "ORT FP32 ms", "ORT INT8 ms"], rows))


def latency_section() -> list[str]:
    lines = ["## Latency per runtime (batch 1 p50 / p99, batch 32 throughput)", ""]
    for path in sorted((paths.REPORTS / "latency").glob("*.json")):
        report = json.loads(path.read_text())
        if report.get("status") != "measured":
            lines += [f"`{report['profile']}`: not measured here ({report.get('reason', '')}).", ""]
            continue
        host = report.get("host", {}).get("cpu_model", "unknown host")
        lines += [f"`{report['profile']}`, measured on {host} (details: `{path.with_suffix('.md')}`):", ""]
        merged: dict[tuple, dict] = {}
        for row in report["rows"]:
            merged.setdefault((row["model"], row["runtime"], row["precision"]), {})[row["batch"]] = row
        rows = []
        for (model, runtime, precision), by_batch in merged.items():
            b1 = by_batch.get(1, {})
            big = by_batch[max(by_batch)]
            rows.append([f"`{model}`", runtime, precision, num(b1.get("p50_ms")), num(b1.get("p99_ms")),
                         {True: "yes", False: "**no**"}.get(b1.get("meets_budget"), "n/a"),
                         f"{big['throughput']:,.0f} (b{big['batch']})"])
        lines += table(["model", "runtime", "precision", "p50 ms", "p99 ms", "meets budget", "samples/s"], rows)
    return lines
