"""report: reports/summary.md, the tables a user reads first, built only from measured metrics files."""
from __future__ import annotations

import json

from pipeline.config import paths
from devices.io import write_text
from pipeline.stages.common import load_params


def _load(stage: str, group: str, method: str) -> dict | None:
    path = paths.metrics_file(stage, group, method)
    return json.loads(path.read_text()) if path.is_file() else None


METRIC_NAMES = {"accuracy": "accuracy", "map": "mAP@0.5", "auroc": "AUROC"}


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def accuracy_section(params) -> list[str]:
    rows, verdicts = [], []
    for task, spec in params.tasks.items():
        if spec.head != "classification":
            continue
        results = {}
        for method in params.methods:
            probe = _load("probe", spec.modality, method) or {}
            ft = _load("finetune", task, method) or {}
            results[method] = (probe.get("knn_test_accuracy"), probe.get("linear_test_accuracy"),
                               ft.get("test_accuracy"))
            rows.append([spec.modality, task, method, *(_pct(v) for v in results[method])])
        base = results.get("random")
        for method, accs in results.items():
            if method == "random" or base is None:
                continue
            wins = [name for name, a, b in zip(("kNN", "linear probe", "fine-tune"), accs, base)
                    if a is not None and b is not None and a > b]
            verdicts.append(f"- {spec.modality} / {method}: "
                            + (f"beats the random-init encoder on {', '.join(wins)}." if wins
                               else "**does not beat the random-init encoder on kNN, linear probe or fine-tune.**"))
    return (["## Accuracy on the held-out test split", "",
             "kNN and linear probe on the frozen encoder; fine-tune = encoder + head trained end to end. "
             "`random` is the untrained encoder of the same shape (the baseline).", ""]
            + _table(["modality", "task", "method", "kNN", "linear probe", "fine-tune"], rows) + verdicts + [""])


def cost_section(params) -> list[str]:
    rows = []
    for modality in params.modalities:
        for method in params.methods:
            m = _load("pretrain", modality, method)
            if not m or not m.get("steps"):
                continue
            rows.append([modality, method, str(m["epochs"]), _num(m["train_seconds"], ".1f"),
                         _num(m["samples_per_s"], ".1f"), _num(m["peak_memory_mb"], ".0f") + f" ({m['memory_kind']})",
                         m["device"], str(m["world_size"])])
    return (["## Pretraining cost", "",
             "Same encoder, data and epochs for both methods. samples/s counts training images per second "
             "of training-loop time (checkpoint writes excluded).", ""]
            + _table(["modality", "method", "epochs", "train s", "samples/s", "peak MB", "device", "processes"], rows))


def export_section(params) -> list[str]:
    parity_rows, size_rows = [], []
    for task, spec in params.tasks.items():
        for method in params.methods:
            exp = _load("export", task, method) or {}
            quant = _load("quantize", task, method) or {}
            for variant, v in exp.get("variants", {}).items():
                parity_rows.append([spec.modality, task, method, variant, _num(v.get("max_abs_diff"), ".2e"),
                                    _pct(v.get("top1_agreement"))])
            torch_metric = exp.get("torch_test_metric")
            every = {**exp.get("variants", {}), **quant.get("variants", {})}
            for variant, v in every.items():
                if "error" in v:
                    size_rows.append([spec.modality, task, method, f"`{variant}`", f"failed: {v['error']}", "", ""])
                    continue
                size_rows.append([spec.modality, task, method, f"`{variant}`" if "/" in variant else variant,
                                  METRIC_NAMES[spec.metric], _num(v.get("test_metric")), _num(torch_metric),
                                  _num(v.get("size_bytes", 0) / 2**20, ".2f")])
    return (["## Export parity (test split, against PyTorch)", "",
             "Top-1 agreement applies to classifiers only (n/a for detectors and anomaly scorers).", ""]
            + _table(["modality", "task", "method", "variant", "max abs diff", "top-1 agreement"], parity_rows)
            + ["## Task metric and size of every exported variant (test split)", "",
               "`targets/<profile>/...` are the variants prepared for one device profile (static shapes, "
               "its INT8 preset); their metric is measured on this CPU with onnxruntime or OpenVINO.", ""]
            + _table(["modality", "task", "method", "variant", "metric", "exported", "PyTorch", "size MB"],
                     size_rows))


def _latency_p50(report: dict | None, task: str, method: str, runtime: str, precision: str) -> float | None:
    """Batch-1 p50 of the standard export (exports/<task>/<method>/...) on one runtime and precision."""
    for row in (report or {}).get("rows", []):
        if (row["model"].startswith(f"{task}/{method}/") and "/targets/" not in row["model"]
                and row["runtime"] == runtime and row["precision"] == precision and row["batch"] == 1):
            return row["p50_ms"]
    return None


def tasks_section(params) -> list[str]:
    """Every task x method: the fine-tuned metric, the FP32 and INT8 exports' metric, latency on this CPU."""
    path = paths.REPORTS / "latency" / "cpu-x86.json"
    latency = json.loads(path.read_text()) if path.is_file() else None
    measured = latency is not None and latency.get("status") == "measured"
    rows = []
    for task, spec in params.tasks.items():
        for method in params.methods:
            ft = _load("finetune", task, method) or {}
            exp = (_load("export", task, method) or {}).get("variants", {})
            quant = (_load("quantize", task, method) or {}).get("variants", {})
            p50 = [_latency_p50(latency, task, method, *rp) if measured else None
                   for rp in (("onnxruntime", "fp32"), ("onnxruntime", "int8"))]
            rows.append([task, spec.head, method, METRIC_NAMES[spec.metric], _num(ft.get("test_metric")),
                         _num(exp.get("onnx-fp32", {}).get("test_metric")),
                         _num(quant.get("onnx-int8", {}).get("test_metric")),
                         _num(quant.get("openvino-int8", {}).get("test_metric")),
                         *(_num(v, ".2f") for v in p50)])
    where = (f"latency: batch-1 p50 on `cpu-x86` ({latency.get('host', {}).get('cpu_model', 'this host')})"
             if measured else "latency: not measured here")
    return (["## Every task: fine-tuned, exported FP32 and INT8 (test split)", "",
             f"Metric on the held-out test split; {where}.", ""]
            + _table(["task", "head", "method", "metric", "PyTorch", "ONNX FP32", "ORT INT8", "NNCF INT8",
                      "ORT FP32 ms", "ORT INT8 ms"], rows))


def _finetuned(params, head: str):
    """(task, method, fine-tune metrics or {}) for every task with this head and every method."""
    for task, spec in params.tasks.items():
        if spec.head == head:
            for method in params.methods:
                yield task, method, _load("finetune", task, method) or {}


def detection_section(params) -> list[str]:
    rows = []
    for task, method, ft in _finetuned(params, "detection"):
        per_class = ", ".join(f"{label} {_num(v.get('map_50'), '.2f')}" for label, v in ft.get("per_class", {}).items())
        rows.append([task, method, _num(ft.get("test_map_50")), _num(ft.get("test_map_50_95")), per_class])
    if not rows:
        return []
    return (["## Object detection (COCO-style mAP, test split, PyTorch)", ""]
            + _table(["task", "method", "mAP@0.5", "mAP@[.5:.95]", "AP@0.5 per class"], rows))


def anomaly_section(params) -> list[str]:
    rows = []
    for task, method, ft in _finetuned(params, "anomaly"):
        other = ", ".join(f"{name}: AUROC {_num(o.get('test_auroc'))}" for name, o in ft.get("other_scorers", {}).items())
        kinds = ", ".join(f"{kind} {_num(v.get('auroc'), '.2f')}" for kind, v in ft.get("per_kind", {}).items())
        rows.append([task, method, ft.get("scorer", "n/a"), _num(ft.get("test_auroc")), _num(ft.get("test_pauc")),
                     _pct(ft.get("val_false_alarm_rate")), _pct(ft.get("test_false_alarm_rate")),
                     _pct(ft.get("test_detection_rate")), other or "-", kinds])
    if not rows:
        return []
    return (["## Anomaly detection (test split: normal and anomalous samples)", "",
             "pAUC: AUROC over false-positive rates up to each task's `anomaly.max_fpr`, divided by that rate (DCASE's pAUC). "
             "The threshold is set on validation normal samples at the task's target false-alarm rate; the "
             "rates it gives on test are beside it.", ""]
            + _table(["task", "method", "scorer", "AUROC", "pAUC", "val false alarms", "test false alarms",
                      "test detections", "other scorer", "AUROC per kind"], rows))


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
            rows.append([f"`{model}`", runtime, precision, _num(b1.get("p50_ms")), _num(b1.get("p99_ms")),
                         {True: "yes", False: "**no**"}.get(b1.get("meets_budget"), "n/a"),
                         f"{big['throughput']:,.0f} (b{big['batch']})"])
        lines += _table(["model", "runtime", "precision", "p50 ms", "p99 ms", "meets budget", "samples/s"], rows)
    return lines


def main() -> None:
    params = load_params()
    lines = ["# Summary", "", "Every number below was measured by this pipeline run; "
             "see `dvc metrics show` for the raw values.", ""]
    lines += (tasks_section(params) + accuracy_section(params) + detection_section(params) + anomaly_section(params)
              + cost_section(params) + export_section(params) + latency_section())
    target = paths.REPORTS / "summary.md"
    write_text(target, "\n".join(lines))
    print(f"report: wrote {target}")


if __name__ == "__main__":
    main()
