"""report: reports/summary.md, the tables a user reads first, built only from measured metrics files."""
from __future__ import annotations

import json

from pipeline import paths
from pipeline.io import write_text
from pipeline.stages.common import load_params


def _load(stage: str, name: str) -> dict | None:
    path = paths.metrics_file(stage, name)
    return json.loads(path.read_text()) if path.is_file() else None


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
        results = {}
        for method in params.methods:
            probe = _load("probe", f"{spec.modality}-{method}") or {}
            ft = _load("finetune", f"{task}-{method}") or {}
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
    for modality in (m for m, s in params.modalities if s is not None):
        for method in params.methods:
            m = _load("pretrain", f"{modality}-{method}")
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
            exp = _load("export", f"{task}-{method}") or {}
            quant = _load("quantize", f"{task}-{method}") or {}
            for variant, v in exp.get("variants", {}).items():
                parity_rows.append([spec.modality, task, method, variant, _num(v.get("max_abs_diff"), ".2e"),
                                    _pct(v.get("top1_agreement"))])
            torch_acc = exp.get("torch_test_accuracy")
            every = {**exp.get("variants", {}), **quant.get("variants", {})}
            for variant, v in every.items():
                if "error" in v:
                    size_rows.append([spec.modality, task, method, f"`{variant}`", f"failed: {v['error']}", "", ""])
                    continue
                size_rows.append([spec.modality, task, method, f"`{variant}`" if "/" in variant else variant,
                                  _pct(v.get("test_accuracy")), _pct(torch_acc),
                                  _num(v.get("size_bytes", 0) / 2**20, ".2f")])
    return (["## Export parity (test split, against PyTorch)", ""]
            + _table(["modality", "task", "method", "variant", "max abs diff", "top-1 agreement"], parity_rows)
            + ["## Accuracy and size of every exported variant (test split)", "",
               "`targets/<profile>/...` are the variants prepared for one device profile (static shapes, "
               "its INT8 preset); their accuracy is measured on this CPU with onnxruntime or OpenVINO.", ""]
            + _table(["modality", "task", "method", "variant", "test accuracy", "PyTorch accuracy", "size MB"],
                     size_rows))


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
    lines += accuracy_section(params) + cost_section(params) + export_section(params) + latency_section()
    target = paths.REPORTS / "summary.md"
    write_text(target, "\n".join(lines))
    print(f"report: wrote {target}")


if __name__ == "__main__":
    main()
