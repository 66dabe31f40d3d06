"""The results table (every variant on every device) and the selection per device and task, as the
report stage writes them, plus the latency budget gate.

reports/results.json::

    {"columns": [<the COLUMNS below, in order>],
     "rows": [{"task": "digits", "method": "mae", "variant": "onnx-int8", "runtime": "onnxruntime",
               "device": "cpu-x86", "precision": "int8", "metric_name": "accuracy", "metric": 0.867,
               "size_bytes": 908006, "p50_ms": 0.41, "p90_ms": 0.5, "p99_ms": 0.62, "throughput": 2400.0,
               "budget_ms": 5.0, "budget_met": true, "compatible": true, "measured": true,
               "file": "exports/digits/mae/model.int8.onnx", "note": null}, ...]}

One row per task x method x variant x device, for the variants a device can be asked to run (its
runtime and precision; targets/<profile>/ variants on that profile only), plus the PyTorch eager model
("variant": "pytorch", "runtime": "pytorch-eager", "file": "models/finetune/<task>/<method>") where a
device report measured it. Latencies are batch-1 ms, throughput samples/s; they, "budget_met" and
"throughput" are null where "measured" is false (never estimated), and "note" says why. "compatible":
true / false / null (not checked). reports/results.csv holds the same rows and columns.

reports/selection.json::

    {"selections": [<devices.select.Selection.to_dict(), see devices/select.py>, ...],  # profile x task
     "budget_gate": {"enabled": false, "failures": ["task 'digits' on 'cpu-x86': ...", ...]}}

The failures are listed whether or not the gate is enabled; enabled, the stage fails on any.
"""
from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable
from pathlib import Path

from devices.io import write_json, write_text
from devices.select import Selection, candidates, load_device, select

COLUMNS = ("task", "method", "variant", "runtime", "device", "precision", "metric_name", "metric", "size_bytes",
           "p50_ms", "p90_ms", "p99_ms", "throughput", "budget_ms", "budget_met", "compatible", "measured", "file",
           "note")


def result_rows(profiles: Iterable[str], tasks: Iterable[str], reports_dir: str | Path,
                metrics_dir: str | Path) -> list[dict]:
    """The rows of reports/results.json, by device, then task, method and variant."""
    rows = []
    tasks = list(tasks)
    for profile in profiles:
        device = load_device(profile, reports_dir)
        for task in tasks:
            for c in candidates(device, task, metrics_dir, include_eager=True):
                row = {"device": c.profile, **{k: v for k, v in vars(c).items() if k in COLUMNS}}
                row["note"] = c.note or (f"failed to run when scored: {c.error}" if c.error else None)
                rows.append({k: row.get(k) for k in COLUMNS})
    return rows


def results_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if row[k] is None else row[k] for k in COLUMNS} for row in rows)
    return out.getvalue()


def budget_failures(selections: Iterable[Selection]) -> list[str]:
    """One line per task x measured device where no variant meets the budget: the budget and the best
    p99 measured there (among the compatible, scored variants when any was measured)."""
    failures = []
    for s in selections:
        if not s.device_measured or s.chosen is not None:
            continue
        measured = [c for c, _ in s.rejected if c.measured]
        pool = [c for c in measured if c.compatible is not False and c.metric is not None] or measured
        best = min(pool, key=lambda c: c.p99_ms, default=None)
        unusable = best is not None and (best.compatible is False or best.metric is None)
        found = (f"best p99 {best.p99_ms:.3f} ms ({best.label()}" + (", not usable" if unusable else "") + ")"
                 if best else "no variant measured")
        failures.append(f"task '{s.task}' on '{s.profile}': no variant meets the p99 budget of {s.budget_ms:g} ms; "
                        f"{found}")
    return failures


def enforce_budget_gate(failures: list[str], enabled: bool) -> None:
    """Print each budget failure on stderr; with the gate enabled, exit non-zero naming them all."""
    for failure in failures:
        print(f"report: over budget: {failure}", file=sys.stderr)
    if enabled and failures:
        sys.exit(f"report: budget gate (params.yaml report.budget_gate) failed: {len(failures)} task x device "
                 "pair(s) without a variant within budget:\n  " + "\n  ".join(failures))


def write_results(profiles: Iterable[str], tasks: Iterable[str], reports_dir: str | Path, metrics_dir: str | Path,
                  out_dir: str | Path, *, gate: bool = False) -> list[str]:
    """Write results.csv, results.json and selection.json under `out_dir`; returns the budget failures."""
    profiles, tasks, out_dir = list(profiles), list(tasks), Path(out_dir)
    rows = result_rows(profiles, tasks, reports_dir, metrics_dir)
    selections = [select(p, t, reports_dir=reports_dir, metrics_dir=metrics_dir) for p in profiles for t in tasks]
    failures = budget_failures(selections)
    write_text(out_dir / "results.csv", results_csv(rows))
    write_json(out_dir / "results.json", {"columns": list(COLUMNS), "rows": rows})
    write_json(out_dir / "selection.json", {"selections": [s.to_dict() for s in selections],
                                            "budget_gate": {"enabled": gate, "failures": failures}})
    return failures
