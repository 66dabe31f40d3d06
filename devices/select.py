"""Which exported variant to ship on a device: the most accurate one whose measured p99 (batch 1) meets
the task's latency budget, and why each faster or more accurate one was not taken.

    python -m devices.select --profile cpu-x86 --task digits [--budget-ms 5] [--min-metric 0.85]

Inputs, as the pipeline writes them:

- ``reports/latency/<profile>.json`` (bench stage, devices/report.py): batch-1 rows of measured models
  (``model`` relative to exports/), the ``compatibility`` checks of every model, ``status`` "measured" or
  "not measured here" (then no rows, and a ``reason``);
- ``metrics/export/<task>/<method>.json`` (onnx-fp32, openvino-fp32/fp16) and
  ``metrics/quantize/<task>/<method>.json`` (onnx-int8, openvino-int8, targets/<profile>/...): each
  variant's ``test_metric`` and ``size_bytes`` (``error`` for one that failed to run when scored);
- ``metrics/finetune/<task>/<method>.json``: the PyTorch model's ``test_metric``. Its eager rows (bench,
  cpu-x86) appear in results tables, but it is never selected: an app ships an exported file.

A variant is for a device when the profile has its runtime and precision (and, for one under
``targets/<p>/``, when p is the profile). On a measured device a variant is eligible when it built,
its compatibility checks do not fail, it has a batch-1 row with p99 <= budget and its metric is at
least ``min_metric``. On a device not measured here nothing is selected: the compatible variants are
listed as "not measured", with no latency (none is ever invented). Every metric here is higher-better.

``Selection.to_dict()`` (what reports/selection.json holds, one per profile x task)::

    {"profile": "cpu-x86", "task": "digits", "metric_name": "accuracy", "budget_ms": 5.0,
     "min_metric": null, "device_measured": true, "device_reason": null,
     "report": "reports/latency/cpu-x86.json",
     "status": "selected" | "none within budget" | "not measured",
     "chosen": <candidate> | null,
     "rejected": [{**<candidate>, "reasons": ["over budget: p99 6.210 ms > 5 ms", ...]}, ...],
     "not_measured": [<candidate>, ...]}   # device not measured here: its compatible variants

    <candidate> = {"task", "method", "variant" ("onnx-int8", "targets/intel-npu/openvino-int8/model.xml",
                   "pytorch"), "runtime", "profile", "precision", "metric_name", "metric", "size_bytes",
                   "file" ("exports/digits/mae/model.int8.onnx"), "measured" (bool), "p50_ms", "p90_ms",
                   "p99_ms", "throughput" (null unless measured), "budget_ms", "budget_met" (null unless
                   measured), "compatible" (true / false / null: not checked), "failed_checks" (list of
                   "check: reason"), "error" (the variant failed to run when scored: no metric),
                   "note" (why it is not measured; else null)}

``rejected`` lists, for a selection, every variant that is more accurate or faster than the chosen one
(or whose speed is unknown), and for no selection every variant, each with all its reasons.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devices.model_files import TARGETS_DIR
from devices.profile import Profile, ProfileError, load_profile
from devices.report import MEASURED, read_report

REPORTS_DIR = Path("reports/latency")
METRICS_DIR = Path("metrics")
EXPORTS_DIR = "exports"  # latency reports name models relative to it
EAGER_RUNTIME = "pytorch-eager"
EAGER_VARIANT = "pytorch"
# Variant names of the standard exports -> file under exports/<task>/<method>/ (as export/standard.py writes
# them); device variants are named by their path under targets/ already.
STANDARD_FILES = {"onnx-fp32": "model.onnx", "onnx-int8": "model.int8.onnx",
                  "openvino-fp32": "openvino/fp32/model.xml", "openvino-fp16": "openvino/fp16/model.xml",
                  "openvino-int8": "openvino-int8/model.xml"}
RUNTIME_OF_PREFIX = {"onnx": "onnxruntime", "openvino": "openvino"}


class SelectError(ValueError):
    """A profile, task or input file that selection cannot use; the message names it."""


@dataclass(frozen=True)
class Variant:
    """One model of a task x method and its test metric, from the metrics files."""

    task: str
    method: str
    variant: str
    model: str  # its name in latency reports
    file: str
    runtime: str
    precision: str
    metric_name: str
    metric: float | None
    size_bytes: int | None
    profile: str | None = None  # set for a variant made for one profile (targets/<profile>/)
    error: str | None = None


@dataclass
class Candidate:
    """A variant as seen on one device: its metric and, where measured, its batch-1 latency."""

    task: str
    method: str
    variant: str
    runtime: str
    profile: str
    precision: str
    metric_name: str
    metric: float | None
    size_bytes: int | None
    file: str
    measured: bool = False
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    throughput: float | None = None
    budget_ms: float | None = None
    budget_met: bool | None = None
    compatible: bool | None = None
    failed_checks: list[str] = field(default_factory=list)
    error: str | None = None  # the variant failed to run when it was scored (no test metric)
    note: str | None = None

    def label(self) -> str:
        return f"{self.task}/{self.method} {self.variant}"


@dataclass
class Device:
    """One profile's latency report, indexed by model name."""

    profile: Profile
    report_path: Path
    measured: bool
    reason: str | None
    rows: dict[str, dict]  # model -> batch-1 row
    compatibility: dict[str, dict]  # model -> compatibility result
    skipped: dict[str, str]  # model -> why it was not measured


@dataclass
class Selection:
    profile: str
    task: str
    metric_name: str
    budget_ms: float
    min_metric: float | None
    device_measured: bool
    device_reason: str | None
    report: str
    chosen: Candidate | None = None
    rejected: list[tuple[Candidate, list[str]]] = field(default_factory=list)
    not_measured: list[Candidate] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.device_measured:
            return "not measured"
        return "selected" if self.chosen else "none within budget"

    def to_dict(self) -> dict:
        return {"profile": self.profile, "task": self.task, "metric_name": self.metric_name,
                "budget_ms": self.budget_ms, "min_metric": self.min_metric, "device_measured": self.device_measured,
                "device_reason": self.device_reason, "report": self.report, "status": self.status,
                "chosen": asdict(self.chosen) if self.chosen else None,
                "rejected": [{**asdict(c), "reasons": reasons} for c, reasons in self.rejected],
                "not_measured": [asdict(c) for c in self.not_measured]}

    def describe(self) -> str:
        """The selection as a person reads it (the CLI's output)."""
        limits = f"p99 <= {self.budget_ms:g} ms at batch 1" + (
            f", {self.metric_name} >= {self.min_metric:g}" if self.min_metric is not None else "")
        lines = [f"{self.profile} / {self.task}: {limits} ({self.report})"]
        if not self.device_measured:
            lines.append(f"not measured here: {self.device_reason}")
            lines.append("compatible variants, not measured (no latency known):" if self.not_measured
                         else "no compatible variant")
            lines += [f"  {_summary(c)}  {c.file}: not measured"
                      + (" (compatibility not checked)" if c.compatible is None else "") for c in self.not_measured]
        elif self.chosen:
            c = self.chosen
            lines += [f"selected: {c.label()}  {c.file}",
                      f"  {_summary(c, with_label=False)}, p50 {_ms(c.p50_ms)} ms, p99 {_ms(c.p99_ms)} ms"]
        else:
            lines.append("no variant meets the limits on this device")
        if self.rejected:
            lines.append("rejected:")
            for c, reasons in self.rejected:
                speed = f", p99 {_ms(c.p99_ms)} ms" if c.p99_ms is not None else ""
                lines.append(f"  {c.label()} ({_summary(c, with_label=False)}{speed}): {'; '.join(reasons)}")
        return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _summary(c: Candidate, with_label: bool = True) -> str:
    metric = "n/a" if c.metric is None else f"{c.metric:.4f}"
    size = "" if c.size_bytes is None else f", {c.size_bytes / 2**20:.2f} MiB"
    return (f"{c.label()}  " if with_label else "") + f"{c.metric_name} {metric}{size}"


# --- inputs ---------------------------------------------------------------------------------------------


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SelectError(f"{path}: cannot read metrics: {exc}") from exc
    if not isinstance(data, dict):
        raise SelectError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def known_tasks(metrics_dir: str | Path = METRICS_DIR) -> list[str]:
    """Tasks with export or quantize metrics, sorted."""
    root = Path(metrics_dir)
    return sorted({p.name for stage in ("export", "quantize") for p in (root / stage).glob("*") if p.is_dir()})


def _variant(task: str, method: str, name: str, entry: dict, metric_name: str, source: Path) -> Variant:
    if not isinstance(entry, dict):
        raise SelectError(f"{source}: variants.{name} must be an object, got {type(entry).__name__}")
    if name.startswith(f"{TARGETS_DIR}/"):
        rel, runtime, precision = name, entry.get("runtime"), entry.get("precision")
    elif name in STANDARD_FILES:
        rel = STANDARD_FILES[name]
        prefix, _, precision = name.partition("-")
        runtime = RUNTIME_OF_PREFIX[prefix]
    else:
        raise SelectError(f"{source}: unknown variant '{name}' (expected one of {sorted(STANDARD_FILES)} "
                          f"or a path under {TARGETS_DIR}/)")
    if not runtime or not precision:
        raise SelectError(f"{source}: variants.{name} lacks 'runtime' or 'precision'")
    model = f"{task}/{method}/{rel}"
    return Variant(task, method, name, model, f"{EXPORTS_DIR}/{model}", runtime, precision, metric_name,
                   entry.get("test_metric"), entry.get("size_bytes"), entry.get("profile"), entry.get("error"))


def load_variants(task: str, metrics_dir: str | Path = METRICS_DIR, *, include_eager: bool = False) -> list[Variant]:
    """Every variant of every method of a task, from metrics/{export,quantize}/<task>/<method>.json (and the
    PyTorch model from metrics/finetune/ with `include_eager`), in method then file order."""
    root = Path(metrics_dir)
    folders = [root / stage / task for stage in ("export", "quantize")]
    if not any(f.is_dir() for f in folders):
        known = ", ".join(known_tasks(root)) or "none"
        raise SelectError(f"unknown task '{task}': neither {folders[0]} nor {folders[1]} exists (tasks with "
                          f"metrics: {known}); run the export stage for it (dvc repro export@{task})")
    methods = sorted({p.stem for f in folders for p in f.glob("*.json")})
    variants = []
    for method in methods:
        finetune = root / "finetune" / task / f"{method}.json"
        metric_name = None
        for folder in folders:
            path = folder / f"{method}.json"
            if not path.is_file():
                continue
            data = _read(path)
            metric_name = data.get("metric", metric_name)
            for name, entry in (data.get("variants") or {}).items():
                variants.append(_variant(task, method, name, entry, data.get("metric"), path))
        if include_eager and finetune.is_file():
            data = _read(finetune)
            model = f"{task}-{method} (models/finetune)"  # the name the bench stage gives its eager rows
            variants.append(Variant(task, method, EAGER_VARIANT, model, f"models/finetune/{task}/{method}",
                                    EAGER_RUNTIME, "fp32", data.get("metric", metric_name), data.get("test_metric"),
                                    None))
    return variants


def load_device(profile: str | Profile, reports_dir: str | Path = REPORTS_DIR) -> Device:
    """A profile and its latency report; a SelectError naming the file (and the stage that writes it)."""
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    path = Path(reports_dir) / f"{profile.name}.json"
    if not path.is_file():
        raise SelectError(f"{path}: no latency report for profile '{profile.name}'; run the bench stage "
                          f"(dvc repro bench) with '{profile.name}' in params.yaml bench.profiles")
    try:
        report = read_report(path)
    except ValueError as exc:
        raise SelectError(str(exc)) from exc
    if report["profile"] != profile.name:
        raise SelectError(f"{path}: a report for profile '{report['profile']}', expected '{profile.name}'")
    rows = {row["model"]: row for row in report["rows"] if row.get("batch") == 1}
    skipped = {item["model"]: item.get("reason", "") for item in report.get("skipped") or []
               if "model" in item and item.get("batch") in (None, 1)}
    compatibility = {item["model"]: item for item in report.get("compatibility") or []}
    measured = report.get("status", MEASURED) == MEASURED
    return Device(profile, path, measured, None if measured else report.get("reason"), rows, compatibility, skipped)


def for_device(variant: Variant, device: Device) -> bool:
    """Whether the device can be asked to run the variant: its runtime and precision, its own target folder."""
    if variant.runtime == EAGER_RUNTIME:
        return variant.model in device.rows
    return (variant.runtime in device.profile.runtimes and variant.precision in device.profile.precisions
            and variant.profile in (None, device.profile.name))


def assess(variant: Variant, device: Device) -> Candidate:
    """The variant on the device: its batch-1 row if measured, its compatibility, the task's budget."""
    budget = device.profile.budget_ms(variant.task)
    c = Candidate(variant.task, variant.method, variant.variant, variant.runtime, device.profile.name,
                  variant.precision, variant.metric_name, variant.metric, variant.size_bytes, variant.file,
                  budget_ms=budget)
    compat = device.compatibility.get(variant.model)
    if compat is not None:
        c.compatible = compat.get("ok")
        c.failed_checks = [f"{ch['check']}: {ch.get('reason', '')}" for ch in compat.get("checks", [])
                           if ch.get("ok") is False]
    row = device.rows.get(variant.model)
    c.error = variant.error
    if row is not None:
        c.measured = True
        c.p50_ms, c.p90_ms, c.p99_ms, c.throughput = (row[k] for k in ("p50_ms", "p90_ms", "p99_ms", "throughput"))
        c.budget_met = c.p99_ms <= budget
    elif not device.measured:
        c.note = f"not measured here: {device.reason}"
    else:
        c.note = (f"not measured: {device.skipped[variant.model]}" if variant.model in device.skipped
                  else f"not measured: no batch-1 row in {device.report_path}")
    return c


def candidates(device: Device, task: str, metrics_dir: str | Path = METRICS_DIR, *,
               include_eager: bool = False) -> list[Candidate]:
    """Every variant of the task that is for the device, assessed on it."""
    return [assess(v, device) for v in load_variants(task, metrics_dir, include_eager=include_eager)
            if for_device(v, device)]


# --- selection ------------------------------------------------------------------------------------------


def reasons_against(c: Candidate, budget_ms: float, min_metric: float | None, device_measured: bool) -> list[str]:
    """Why a candidate cannot be selected (empty: it can)."""
    reasons = []
    if c.compatible is False:
        reasons.append("incompatible: " + ("; ".join(c.failed_checks) or "a compatibility check failed"))
    if c.error:
        reasons.append(f"failed to run when scored: {c.error}")
    elif c.metric is None:
        reasons.append(f"no test {c.metric_name} in the metrics")
    elif min_metric is not None and c.metric < min_metric:
        reasons.append(f"below min metric: {c.metric_name} {c.metric:.4f} < {min_metric:g}")
    if device_measured and not c.measured:
        reasons.append(c.note or "not measured")
    if c.measured and c.p99_ms > budget_ms:
        reasons.append(f"over budget: p99 {c.p99_ms:.3f} ms > {budget_ms:g} ms")
    return reasons


def _dominated(c: Candidate, chosen: Candidate) -> bool:
    """Neither more accurate nor faster than the chosen variant (both known)."""
    return (c.metric is not None and c.p99_ms is not None and c.metric <= chosen.metric
            and c.p99_ms >= chosen.p99_ms)


def select(profile: str | Profile, task: str, budget_ms: float | None = None, min_metric: float | None = None,
           reports_dir: str | Path = REPORTS_DIR, metrics_dir: str | Path = METRICS_DIR) -> Selection:
    """The most accurate variant of `task` within `budget_ms` (default: the profile's budget for the task) on
    the profile's device, from its measured rows; see the module docstring."""
    device = load_device(profile, reports_dir)
    found = candidates(device, task, metrics_dir)
    budget = float(budget_ms) if budget_ms is not None else device.profile.budget_ms(task)
    metric_name = next((c.metric_name for c in found if c.metric_name), None) or "metric"
    selection = Selection(device.profile.name, task, metric_name, budget, min_metric, device.measured,
                          device.reason, str(device.report_path))
    judged = [(c, reasons_against(c, budget, min_metric, device.measured)) for c in found]
    if not device.measured:
        selection.not_measured = sorted((c for c, reasons in judged if not reasons), key=lambda c: -c.metric)
        selection.rejected = [(c, reasons) for c, reasons in judged if reasons]
        return selection
    eligible = [c for c, reasons in judged if not reasons]
    chosen = max(eligible, key=lambda c: (c.metric, -c.p99_ms, -(c.size_bytes or 0)), default=None)
    selection.chosen = chosen
    for c, reasons in judged:
        if c is chosen or (chosen is not None and _dominated(c, chosen)):
            continue
        if not reasons:  # eligible, faster, but less accurate
            reasons = [f"less accurate: {c.metric_name} {c.metric:.4f} < {chosen.metric:.4f} of the selected"]
        selection.rejected.append((c, reasons))
    return selection


def main(argv: list[str] | None = None) -> int:
    """Exit 0: a variant selected, or the device is not measured here (its compatible variants listed);
    1: measured, but no variant meets the limits; 2: a bad profile, task or input file."""
    parser = argparse.ArgumentParser(prog="python -m devices.select", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="profile name (devices/profiles/NAME.toml) or .toml path")
    parser.add_argument("--task", required=True, help="task name (a folder of metrics/quantize/)")
    parser.add_argument("--budget-ms", type=float, default=None,
                        help="p99 budget at batch 1 in ms (default: the profile's budget for the task)")
    parser.add_argument("--min-metric", type=float, default=None, help="lowest acceptable test metric")
    parser.add_argument("--reports", default=str(REPORTS_DIR), help="folder of the latency reports")
    parser.add_argument("--metrics", default=str(METRICS_DIR), help="folder of the metrics files")
    parser.add_argument("--json", action="store_true", help="print the selection as JSON")
    args = parser.parse_args(argv)
    if args.budget_ms is not None and not args.budget_ms > 0:
        parser.error(f"--budget-ms must be > 0 ms, got {args.budget_ms:g}")
    try:
        selection = select(args.profile, args.task, args.budget_ms, args.min_metric, args.reports, args.metrics)
    except (ProfileError, SelectError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(selection.to_dict(), indent=2) if args.json else selection.describe())
    return 1 if selection.status == "none within budget" else 0


if __name__ == "__main__":
    sys.exit(main())
