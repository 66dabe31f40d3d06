"""reports/index.html: the page a reader opens first. One self-contained file (plots are inline PNGs, no
external links), so it works offline from file://.

Built from the files reports/summary.md reads (through its loader), the device latency reports,
reports/results.json and reports/selection.json (pipeline/report/results.py), the MAE reconstruction
figures, the dvclive pretraining logs and the robustness metrics; a section whose inputs are missing says
"not run". Only measured numbers appear: a device not measured here shows why, never a latency.
"""
from __future__ import annotations

import csv
import json
from contextlib import contextmanager
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from devices.io import write_text
from devices.report import MEASURED, read_report
from pipeline.config import paths
from pipeline.report import plots
from pipeline.report.comparison import TIE, comparison_rows
from pipeline.report.summary import best_method, load_metrics, pretraining_runs
from pipeline.report.tables import METRIC_NAMES, num, pct

TEMPLATES = Path(__file__).parent / "templates"


def write_html(params, target_path, load=load_metrics) -> Path:
    """Render the page from the files under the current folder (as the stages lay them out) to target_path."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, pct=pct, ms=ms)
    html = env.get_template("index.html.j2").render(**page(params, load))
    write_text(target_path, html)
    return Path(target_path)


def ms(value) -> str:
    """A latency in ms: three decimals below 1 ms (sub-millisecond models are common), two below 100 ms."""
    if value is None:
        return num(value)
    return num(value, ".3f" if value < 1 else ".2f" if value < 100 else ".1f")


def page(params, load=load_metrics) -> dict:
    """Every section's content; a section is None when its inputs do not exist (rendered "not run")."""
    devices = latency_reports()
    selection, results = (_read_json(paths.REPORTS / name) for name in ("selection.json", "results.json"))
    with _reading(paths.REPORTS / "selection.json"):
        picks = None if selection is None else {
            (s["profile"], s["task"]): {"chosen": s["chosen"], "budget_ms": s["budget_ms"],
                                        "any_measured": any(c["measured"] for c in s["rejected"])}
            for s in selection["selections"]}
    with _reading(paths.REPORTS / "results.json"):
        tradeoffs = tradeoff_section(params, devices, results, picks)
    return {"answer": answer_section(params, load, devices, picks), "tradeoffs": tradeoffs,
            "learning": learning_section(params, load),
            "pretrain_loss": pretrain_loss_section(params),
            "reconstructions": reconstruction_section(),
            "robustness": robustness_section(params),
            "verdict": verdict_section(params, load),
            "compat": compat_section(devices),
            "cost": cost_section(params, load),
            "parity": parity_section(params, load),
            "hosts": host_section(devices), "tie": TIE}


def _read_json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); rerun the stage that writes it") from exc


@contextmanager
def _reading(path: Path):
    """A file without a key the page needs is an error that names both."""
    try:
        yield
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not in the expected format ({type(exc).__name__}: {exc}); "
                         "rerun the stage that writes it") from exc


def latency_reports() -> list[dict]:
    """reports/latency/<profile>.json (bench stage): the measured devices first, then by profile name."""
    reports = [read_report(path) for path in sorted((paths.REPORTS / "latency").glob("*.json"))]
    return sorted(reports, key=lambda r: not measured(r))


def measured(report: dict) -> bool:
    return report.get("status", MEASURED) == MEASURED


def _finetuned(params, task: str, load) -> dict[str, dict]:
    found = {m: load("finetune", task, m) for m in params.methods}
    return {m: ft for m, ft in found.items() if ft and ft.get("test_metric") is not None}


def _delta(a, b):
    return None if a is None or b is None else a - b


def answer_section(params, load, devices: list[dict], picks: dict | None) -> dict | None:
    """Per task: the shipped method and its test metric, the selected variant's latency on each device
    (reports/selection.json), and what pretraining bought against random init and the baseline."""
    rows = []
    for task, spec in params.tasks.items():
        finetuned = _finetuned(params, task, load)
        shipped = best_method(finetuned)
        if shipped is None:
            continue
        metric = finetuned[shipped]["test_metric"]
        pretrained = best_method({m: ft for m, ft in finetuned.items() if m != "random"})
        random = finetuned.get("random", {}).get("test_metric")
        baseline = (load("baselines", task, "") or {}).get("test_metric")
        latency = [{"profile": r["profile"], "measured": measured(r),
                    "pick": None if picks is None else picks.get((r["profile"], task), {})} for r in devices]
        rows.append({"task": task, "metric_name": METRIC_NAMES[spec.metric], "shipped": shipped,
                     "picked_on": "val" if "val_metric" in finetuned[shipped] else "test",
                     "test_metric": metric, "latency": latency, "baseline": baseline,
                     "vs_baseline": _delta(metric, baseline), "pretrained": pretrained,
                     "vs_random": _delta(finetuned[pretrained]["test_metric"] if pretrained else None, random)})
    return {"rows": rows, "devices": [r["profile"] for r in devices]} if rows else None


def pareto_front(points: list[dict]) -> None:
    """Mark each point on the front: none other is as fast or faster and strictly more accurate."""
    best = None
    for p in sorted(points, key=lambda p: (p["p50_ms"], -p["metric"])):
        p["front"] = best is None or p["metric"] > best
        best = p["metric"] if best is None else max(best, p["metric"])


def tradeoff_section(params, devices: list[dict], results: dict | None, picks: dict | None) -> list[dict] | None:
    """Per device and task: every measured variant of reports/results.json, metric against p50."""
    if results is None:
        return None
    reasons = {r["profile"]: r.get("reason", "") for r in devices}
    measured_here = {r["profile"] for r in devices if measured(r)}
    out = []
    for device in dict.fromkeys(row["device"] for row in results["rows"]):
        rows = [row for row in results["rows"] if row["device"] == device and row["measured"]
                and row["metric"] is not None]
        entry = {"profile": device, "measured": bool(rows) or device in measured_here,
                 "reason": reasons.get(device) or f"no reports/latency/{device}.json", "tasks": []}
        for task, spec in params.tasks.items():
            chosen = ((picks or {}).get((device, task)) or {}).get("chosen") or {}
            pick = (chosen.get("method"), chosen.get("variant"))
            points = [{**row, "selected": (row["method"], row["variant"]) == pick}
                      for row in rows if row["task"] == task]
            if not points:
                continue
            pareto_front(points)
            budget = next((p["budget_ms"] for p in points if p["budget_ms"] is not None), None)
            name = METRIC_NAMES[spec.metric]
            entry["tasks"].append({"task": task, "metric_name": name, "budget_ms": budget,
                                   "points": sorted(points, key=lambda p: p["p50_ms"]),
                                   "plot": plots.pareto(f"{task} on {device}", name, points, budget)})
        out.append(entry)
    return out


def learning_section(params, load) -> list[dict] | None:
    out = []
    for task, spec in params.tasks.items():
        curves = {m: (load("finetune", task, m) or {}).get("learning_curve") for m in params.methods}
        series = {m: curve for m, curve in curves.items() if curve}
        if series:
            out.append({"task": task, "plot": plots.curves(task, "step", f"val {METRIC_NAMES[spec.metric]}", series)})
    return out or None


def _live_curve(path: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) from a dvclive metric file (plots/metrics/<key>.tsv)."""
    with path.open(newline="") as f, _reading(path):
        try:
            return [(int(row["step"]), float(row[key])) for row in csv.DictReader(f, delimiter="\t")]
        except ValueError as exc:
            raise ValueError(f"{path}: a step or {key} is not a number ({exc})") from exc


def pretrain_loss_section(params) -> list[dict] | None:
    out = []
    for modality in params.modalities:
        files = {m: paths.live_dir("pretrain", modality, m) / "plots" / "metrics" / "loss.tsv" for m in params.methods}
        series = {m: curve for m, f in files.items() if f.is_file() and (curve := _live_curve(f, "loss"))}
        if series:
            out.append({"modality": modality, "plot": plots.curves(modality, "step", "training loss", series)})
    return out or None


def reconstruction_section() -> list[dict] | None:
    figures = sorted((paths.REPORTS / "figures").glob("*.png"))
    return [{"name": f.stem, "src": plots.png_file(f.read_bytes())} for f in figures] or None


def _false_alarms(value) -> tuple | None:
    """false_alarm_rate of an anomaly task, {"clean": rate, "<corruption>": [rate per severity]}:
    (clean, mean over corruptions and severities); a plain rate is the clean one."""
    if value is None or not isinstance(value, dict):
        return None if value is None else (value, None)
    corrupted = [v for name, rates in value.items() if name != "clean" for v in rates]
    return value.get("clean"), sum(corrupted) / len(corrupted) if corrupted else None


def robustness_section(params) -> list[dict] | None:
    """metrics/robustness/<task>.json (pipeline/evaluation/robustness.py): per method and variant the metric
    at each severity, averaged over corruptions, with the clean metric at severity 0."""
    out = []
    for task in params.tasks:
        path = paths.METRICS / "robustness" / f"{task}.json"
        data = _read_json(path)
        if not data:
            continue
        with _reading(path):
            out.append(_robustness(task, data))
    return out or None


def _robustness(task: str, data: dict) -> dict:
    series, rows = {}, []
    for method, variants in data["models"].items():
        for variant, r in variants.items():
            curves = list(r["by_corruption"].values())
            if curves:
                means = [sum(c[i] for c in curves) / len(curves) for i in range(len(data["severities"]))]
                series[method, variant] = [(0, r["clean"]), *zip(data["severities"], means)]
            rows.append({"method": method, "variant": variant, "clean": r["clean"],
                         "false_alarms": _false_alarms(r.get("false_alarm_rate")),
                         **{k: r.get(k) for k in ("mean_corrupted", "relative_drop", "mce")}})
    name = METRIC_NAMES.get(data["metric"], data["metric"])
    return {"task": task, "metric_name": name, "corruptions": data["corruptions"],
            "test_samples": data.get("test_samples"), "rows": rows,
            "plot": plots.severity(task, f"{name}, mean over corruptions", series) if series else None}


def verdict_section(params, load) -> list[list[str]] | None:
    """reports/summary.md's MAE-versus-SimCLR rows (modality, protocol, labels, budget, MAE, SimCLR, random,
    winner) where either method has a figure."""
    if not {"mae", "simclr"} <= set(params.methods):
        return None
    return [row for row in comparison_rows(params, load) if row[4:6] != ["n/a", "n/a"]] or None


def compat_section(devices: list[dict]) -> dict | None:
    """Model x device: pass, the failing checks by name (reasons on hover), or why no check applies."""
    cells: dict[str, dict[str, dict]] = {}
    for report in devices:
        for result in report.get("compatibility", []):
            failed = [c for c in result["checks"] if c["ok"] is False]
            if not result.get("applicable", True):
                cell = {"text": f"n/a (no {result['runtime']} runtime)", "cls": "na"}
            elif not result.get("checkable", True):
                cell = {"text": "not checked", "cls": "na"}
            elif result["ok"]:
                cell = {"text": "pass", "cls": "ok"}
            else:
                cell = {"text": "fail: " + ", ".join(c["check"] for c in failed), "cls": "fail"}
            shown = failed or result["checks"]
            cell["title"] = "; ".join(f"{c['check']}: {c['reason']}" for c in shown if c.get("reason"))
            cells.setdefault(result["model"], {})[report["profile"]] = cell
    if not cells:
        return None
    profiles = [r["profile"] for r in devices]
    fails = {p: sum(c[p]["cls"] == "fail" for c in cells.values() if p in c) for p in profiles}
    return {"profiles": profiles, "fails": fails, "rows": [{"model": m, "cells": cells[m]} for m in sorted(cells)]}


def cost_section(params, load) -> list[dict] | None:
    """Per modality x method, each pretraining run: the equal-compute one and, beside it where it was
    trained, the equal-epochs one (metrics/pretrain/...: "equal_epochs")."""
    rows = [{"modality": modality, "method": method, "budget": budget,
             "flops": {k: run.get(k, v) for k, v in m.items() if "flops" in k},
             "device": m.get("device"), "world_size": m.get("world_size"),
             **{k: run.get(k) for k in ("epochs", "steps", "train_seconds", "samples_per_s", "peak_memory_mb",
                                        "memory_kind")}}
            for modality, method, budget, run, m in pretraining_runs(params, load)]
    return rows or None


def parity_section(params, load) -> list[dict] | None:
    rows = []
    for task, spec in params.tasks.items():
        for method in params.methods:
            exp = load("export", task, method) or {}
            quant = load("quantize", task, method) or {}
            for stage, variants in (("export", exp.get("variants", {})), ("quantize", quant.get("variants", {}))):
                for variant, v in variants.items():
                    size = v.get("size_bytes")
                    rows.append({"task": task, "method": method, "variant": variant,
                                 "metric_name": METRIC_NAMES[spec.metric], "torch_metric": exp.get("torch_test_metric"),
                                 "reference": "PyTorch" if stage == "export" else quant.get("reference", "onnx-fp32"),
                                 "size_mb": None if size is None else size / 2**20,
                                 **{k: v.get(k) for k in ("error", "test_metric", "max_abs_diff", "top1_agreement")}})
    return rows or None


def host_section(devices: list[dict]) -> list[dict] | None:
    return [{"profile": r["profile"], "measured": measured(r), "reason": r.get("reason", ""),
             "measured_here": r.get("measured_here", True), "source": r.get("source"),
             "measured_at": r.get("measured_at"), "host": r.get("host") or {}, "settings": r.get("settings") or {},
             "rows": len(r["rows"]), "skipped": len(r.get("skipped") or [])} for r in devices] or None
