"""Device latency reports: JSON (as measured) and Markdown (one table per device).

A report only ever shows numbers from its rows, and rows only come from
``devices.run`` measurements; a device that could not be measured gets a
report that says so and carries no numbers (``not_measured_report``).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from devices.io import write_json, write_text

NOT_MEASURED = "not measured here"
MEASURED = "measured"
PARTIAL = "partial"  # written by devices.run after each model; "measured" once every model is done

_NUMERIC_ROW_FIELDS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput")


def _profile_name(profile) -> str:
    return profile if isinstance(profile, str) else getattr(profile, "name", str(profile))


def not_measured_report(profile, reason: str) -> dict:
    """A report for a device that was not measured on this host: no rows, no numbers."""
    from devices.system_info import describe_host

    return {
        "profile": _profile_name(profile),
        "status": NOT_MEASURED,
        "reason": str(reason),
        "host": describe_host(),
        "measured_at": None,
        "rows": [],
    }


def validate_report(report: dict) -> None:
    """Refuse a report whose rows are not complete measurements (or a not-measured one with rows)."""
    for key in ("profile", "rows"):
        if key not in report:
            raise ValueError(f"device report lacks '{key}'")
    status = report.get("status", MEASURED)
    rows = report["rows"]
    if status == NOT_MEASURED:
        if rows:
            raise ValueError(f"report for '{report['profile']}' says '{NOT_MEASURED}' but has {len(rows)} rows")
        return
    for i, row in enumerate(rows):
        for key in _NUMERIC_ROW_FIELDS:
            value = row.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                raise ValueError(f"row {i} ({row.get('model')}, batch {row.get('batch')}): '{key}' is not a measured number: {value!r}")
        if not isinstance(row.get("iterations"), int) or row["iterations"] < 1:
            raise ValueError(f"row {i} ({row.get('model')}): no timed iterations")


def read_report(path: str | Path) -> dict:
    """A device report written by ``devices.run``; an unreadable or invalid one is an error naming the file."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(report, dict):
            raise ValueError(f"expected a JSON object, got {type(report).__name__}")
        validate_report(report)
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ones
        raise ValueError(f"{path}: not a valid device report: {exc}") from exc
    return report


def skipped_file(path: str | Path, why: str) -> dict:
    """A report's "skipped" entry for a file that was not used (rendered "skipped: <file>: <why>")."""
    return {"file": str(path), "batch": None, "reason": why}


def brought_back(folder: str | Path, profile_name: str, skipped: list[dict] | None = None) -> list[dict]:
    """Reports measured on the device itself and brought back (``python -m devices.run ... --out
    <folder>/X.json``), sorted by file name; each records its file under "source". Hidden files (a
    half-copied ``.X.json.tmp``) are not read. A file that is not a valid report of this profile raises
    ValueError naming it, or, when a `skipped` list is given, is left out and appended to it."""
    reports = []
    for path in sorted(p for p in Path(folder).glob("*.json") if p.is_file() and not p.name.startswith(".")):
        try:
            report = read_report(path)
            if report.get("profile") != profile_name:
                raise ValueError(f"{path}: a report for '{report.get('profile')}' in the folder of '{profile_name}'")
        except (OSError, ValueError) as exc:
            if skipped is None:
                raise
            skipped.append(skipped_file(path, str(exc).removeprefix(f"{path}: ")))
            continue
        reports.append({**report, "source": str(path)})
    return reports


def with_brought_back(report: dict, folder: str | Path, *, skip_bad: bool = False) -> dict:
    """The report of a device not measured here replaced by the last one measured on the device itself.

    With `skip_bad`, a file in `folder` that is not a valid report is listed in the result's "skipped"
    (``skipped_file``) instead of raising, so one bad file does not lose the others or the measurements."""
    bad: list[dict] | None = [] if skip_bad else None
    from_device = brought_back(folder, report["profile"], bad)
    if report.get("status") != MEASURED and from_device:
        report = {**from_device[-1], "status": MEASURED, "measured_here": False}
    if bad:
        report = {**report, "skipped": [*report.get("skipped", []), *bad]}
    return report


def summary_metrics(reports: list[dict]) -> dict:
    """Batch-1 p50/p99 per profile x model x runtime, for `dvc metrics show`."""
    return {r["profile"]: {f"{row['model']}|{row['runtime']}": {"p50_ms": round(row["p50_ms"], 4),
                                                                  "p99_ms": round(row["p99_ms"], 4)}
                           for row in r.get("rows", []) if row["batch"] == 1}
            for r in reports}


def add_achieved_gflops(report: dict, flops_of: Callable[[dict], int | None]) -> dict:
    """Each model's achieved GFLOP/s (its FLOPs per sample x samples/s) on its rows at the largest batch
    measured; `flops_of(row)` gives the model's FLOPs per sample (counted at export, carried in its
    metadata), or None where unknown: that row gets no figure. Returns `report`, changed in place."""
    rows = report.get("rows", [])
    largest: dict[tuple, int] = {}
    for row in rows:
        key = (row["model"], row["runtime"], row.get("precision"))
        largest[key] = max(largest.get(key, 0), row["batch"])
    for row in rows:
        if row["batch"] != largest[(row["model"], row["runtime"], row.get("precision"))]:
            continue
        flops = flops_of(row)
        if flops:
            row["flops_per_sample"] = int(flops)
            row["gflops_per_s"] = flops * row["throughput"] / 1e9
    return report


def _ms(value: float) -> str:
    if value >= 100:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _host_line(host: dict | None) -> str:
    if not host:
        return "unknown host"
    cores = f"{host.get('logical_cores')} logical"
    if host.get("physical_cores"):
        cores += f" / {host['physical_cores']} physical"
    cores += " cores"
    parts = [f"**{host.get('cpu_model', 'unknown CPU')}** ({host.get('machine')}, {cores}), {host.get('os')}"]
    versions = [f"Python {host.get('python')}"]
    if host.get("numpy"):
        versions.append(f"numpy {host['numpy']}")
    ort = host.get("onnxruntime") or {}
    if ort.get("available"):
        versions.append(f"onnxruntime {ort.get('version')} (providers: {', '.join(ort.get('providers', []))})")
    else:
        versions.append("onnxruntime not available")
    ov = host.get("openvino") or {}
    if ov.get("available"):
        devices = ", ".join(f"{k}: {v}" for k, v in (ov.get("devices") or {}).items())
        versions.append(f"OpenVINO {ov.get('version')} (devices: {devices or 'none'})")
    else:
        versions.append("OpenVINO not available")
    peak = host.get("matmul_peak")
    if peak:
        threads = f"{peak['threads']} threads" if peak.get("threads") else "numpy's default threads"
        versions.append(f"float32 matmul peak {peak['gflops_per_s']:.1f} GFLOP/s "
                        f"(numpy {peak['size']}x{peak['size']}, {threads})")
    return parts[0] + "; " + "; ".join(versions)


def render_markdown(report: dict) -> str:
    """The Markdown for one device report."""
    validate_report(report)
    name = report["profile"]
    lines = [f"# Latency on device `{name}`", ""]
    if report.get("status") == NOT_MEASURED:
        lines += [
            f"**Not measured here.** {report.get('reason', '')}".rstrip(),
            "",
            "This report has no latency numbers: nothing was measured for this device"
            + (f" on this host ({report['host'].get('cpu_model')})." if report.get("host") else "."),
            "",
        ]
        return "\n".join(lines + _skipped_lines(report)) + render_compatibility(report.get("compatibility", []))

    lines += [f"Measured on {_host_line(report.get('host'))}, at {report.get('measured_at')}.", ""]
    if report.get("models_total") and report.get("models_done", 0) < report["models_total"]:
        lines += [f"**Partial run:** {report.get('models_done', 0)} of {report['models_total']} models were done "
                  "when this report was written (the run was stopped or is still going).", ""]
    settings = report.get("settings") or {}
    if settings:
        threads = settings.get("threads")
        runtimes = ", ".join(f"{k} ({v})" for k, v in (settings.get("runtimes") or {}).items())
        lines += [
            f"Runtimes: {runtimes}. Threads: {threads if threads else 'runtime default'}. "
            f"Each row: {settings.get('warmup_iterations')} warm-up runs, then at least "
            f"{settings.get('min_iterations')} timed runs and {settings.get('min_seconds')} s. "
            "Latencies in ms per batch (nearest-rank percentiles), inference only: the input is bound once, "
            "as in benchmark_app -inference_only; throughput in samples/s; "
            "the budget is on p99 at batch 1.",
            "",
        ]
    header = ["model", "runtime", "precision", "batch", "p50", "p90", "p99", "throughput", "budget", "meets budget"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 3 + ["---:"] * 6 + [":---:"]) + "|")
    rows = report["rows"]
    for row in rows:
        budget = row.get("budget_ms")
        meets = row.get("meets_budget")
        cells = [
            f"`{row.get('model')}`",
            str(row.get("runtime")),
            str(row.get("precision")),
            str(row.get("batch")),
            _ms(row["p50_ms"]),
            _ms(row["p90_ms"]),
            _ms(row["p99_ms"]),
            f"{row['throughput']:,.0f}",
            _ms(budget) if isinstance(budget, (int, float)) else "—",
            "—" if meets is None else ("yes" if meets else "**no**"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if not rows:
        lines.append("| (no models measured) |" + " |" * (len(header) - 1))
    lines += _compute_rate_lines(rows, (report.get("host") or {}).get("matmul_peak"))
    lines += _end_to_end_lines(rows)
    checked = [row for row in rows if row.get("cross_check")]
    if checked:
        lines += ["", "Cross-check with OpenVINO's `benchmark_app -hint latency` (batch 1, same model, measured "
                  "back to back with our runner on the same host):", "",
                  "| model | our p50 (ms) | benchmark_app median (ms) | ratio |", "|---|---:|---:|---:|"]
        for row in checked:
            c = row["cross_check"]
            lines.append(f"| `{row['model']}` | {_ms(c['ours_p50_ms'])} | {_ms(c['benchmark_app_median_ms'])} | "
                         f"{c['ratio']:.2f} |")
    lines += ["", *_skipped_lines(report)]
    return "\n".join(lines) + render_compatibility(report.get("compatibility", []))


def _compute_rate_lines(rows: list[dict], peak: dict | None) -> list[str]:
    """Markdown lines: achieved GFLOP/s per model at its largest batch, against the host's matmul peak."""
    rated = [row for row in rows if isinstance(row.get("gflops_per_s"), (int, float))]
    if not rated:
        return []
    against = (f"this host's float32 matmul peak of {peak['gflops_per_s']:.1f} GFLOP/s "
               f"({peak['threads'] or 'default'} BLAS threads)" if peak else "no measured matmul peak")
    lines = ["", f"Compute rate at each model's largest batch: its FLOPs per inference (counted at export) x "
                 f"throughput, against {against}:", "",
             "| model | runtime | precision | batch | MFLOPs/sample | GFLOP/s | of peak |", "|---|---|---|---:|---:|---:|---:|"]
    for row in rated:
        share = f"{100 * row['gflops_per_s'] / peak['gflops_per_s']:.1f}%" if peak else "—"
        lines.append(f"| `{row['model']}` | {row['runtime']} | {row['precision']} | {row['batch']} | "
                     f"{row['flops_per_sample'] / 1e6:,.1f} | {row['gflops_per_s']:.2f} | {share} |")
    return lines


def _end_to_end_lines(rows: list[dict]) -> list[str]:
    """Markdown lines: batch-1 latency from a raw input through the model's front end and the model."""
    timed = [row for row in rows if row.get("e2e_front_end")]
    if not timed:
        return []
    lines = ["", "End to end (front end + model), batch 1: each call starts from a raw input (a seeded random "
                 "waveform of the model's clip length, or a fixed English sentence), runs the app's preprocessing "
                 "with the export's front end (as devices.predict does) and hands the result to the model:", "",
             "| model | runtime | precision | front end | e2e p50 | e2e p99 | model only p50 | note |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for row in timed:
        if "e2e_p50_ms" in row:
            figures = [_ms(row["e2e_p50_ms"]), _ms(row["e2e_p99_ms"]), _ms(row["p50_ms"]), ""]
        else:
            figures = ["—", "—", _ms(row["p50_ms"]),
                       "not measured: " + str(row.get("e2e_error")).replace("|", "/").replace("\n", " ")]
        lines.append(f"| `{row['model']}` | {row['runtime']} | {row['precision']} | `{row['e2e_front_end']}` | "
                     + " | ".join(figures) + " |")
    return lines


def _skipped_lines(report: dict) -> list[str]:
    """Markdown lines for the models not measured and the files not used, each with its reason."""
    models = [item for item in report.get("skipped") or [] if "file" not in item]
    files = [item for item in report.get("skipped") or [] if "file" in item]
    lines = []
    if models:
        lines += ["Not measured:", ""]
        for item in models:
            batch = f", batch {item['batch']}" if item.get("batch") is not None else ""
            lines.append(f"- `{item.get('model')}`{batch}: {item.get('reason')}")
        lines.append("")
    if files:
        lines += ["Files not used:", ""]
        lines += [f"- skipped: `{item['file']}`: {item.get('reason')}" for item in files]
        lines.append("")
    return lines


def write_device_report(report: dict, out_json: str | Path | None, out_md: str | Path | None) -> None:
    """Write the report as JSON and/or Markdown, each atomically."""
    validate_report(report)
    if out_json is not None:
        write_json(out_json, report)
    if out_md is not None:
        write_text(out_md, render_markdown(report))


def render_compatibility(results: list[dict]) -> str:
    """Markdown table: pass/fail with the reasons, per model, for one target."""
    if not results:
        return ""
    lines = ["## Compatibility", "", "| model | result | reasons |", "|---|:---:|---|"]
    for r in results:
        failed = [f"{c['check']}: {c['reason']}" for c in r["checks"] if not c["ok"]]
        reasons = "<br>".join(failed) if failed else "static shapes, operators and precision pass"
        verdict = {True: "pass", False: "**fail**"}.get(r["ok"], "not checked here")  # None: a check could not run
        lines.append(f"| `{r['model']}` | {verdict} | {reasons.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def render_index(reports: list[dict]) -> str:
    """One table across devices: model x target -> batch-1 p50/p99 and budget, or why it was not measured."""
    names = [r["profile"] for r in reports]
    cells: dict[str, dict[str, str]] = {}
    for report in reports:
        for row in report.get("rows", []):
            if row["batch"] != 1:
                continue
            verdict = {True: "meets", False: "**misses**", None: "no"}[row.get("meets_budget")]
            cells.setdefault(row["model"], {})[report["profile"]] = (
                f"{_ms(row['p50_ms'])} / {_ms(row['p99_ms'])} ({verdict} {_ms(row['budget_ms'])} budget)"
                if row.get("budget_ms") else f"{_ms(row['p50_ms'])} / {_ms(row['p99_ms'])}")
        for result in report.get("compatibility", []):
            cell = cells.setdefault(result["model"], {})
            if report["profile"] in cell:
                continue
            if not result.get("applicable", True):
                cell[report["profile"]] = f"n/a (no {result['runtime']} runtime)"
            else:
                cell[report["profile"]] = (
                    "not measured here (compatible)" if result["ok"] else
                    "not measured; not fully checked here" if result["ok"] is None else
                    "not measured; incompatible: " + ", ".join(c["check"] for c in result["checks"] if c["ok"] is False))
    lines = ["# Latency across devices", "",
             "Batch-1 p50 / p99 in ms where measured (the device's own report says on what host); "
             "otherwise why not. A model that a device cannot run says which compatibility check failed.", "",
             "| model | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]
    for model in sorted(cells):
        lines.append(f"| `{model}` | " + " | ".join(cells[model].get(n, "—") for n in names) + " |")
    return "\n".join(lines) + "\n"
