"""Variant selection per device (devices/select.py), the results table and the budget gate
(pipeline/report/results.py), on synthetic latency reports and metrics written as the pipeline writes them."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from devices.select import STANDARD_FILES, main, select
from pipeline.report.results import COLUMNS, budget_failures, enforce_budget_gate, result_rows, write_results

PROFILE = "cpu-x86"  # shipped profile: budget 5 ms for digits, onnxruntime + openvino, fp32/fp16/int8
ABSENT = "qualcomm-npu"  # shipped profile: int8 only, static shapes; "not measured here" below


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _variant(metric, size, **extra):
    return {"size_bytes": size, "test_accuracy": metric, "test_metric": metric, "max_abs_diff": 0.01,
            "mean_abs_diff": 0.001, "top1_agreement": 0.99, **extra}


def _target(profile, runtime, precision, metric, size):
    return {"profile": profile, "runtime": runtime, "precision": precision, "static_shape": True, "preset": None,
            "measured_with": "onnxruntime CPUExecutionProvider", **_variant(metric, size)}


def _metrics(root: Path, task: str, method: str, fp32: dict, int8: dict, targets: dict) -> None:
    _write(root / "export" / task / f"{method}.json",
           {"task": task, "method": method, "metric": "accuracy", "torch_test_metric": 0.9, "test_samples": 100,
            "variants": fp32, "torch_test_accuracy": 0.9, "onnx_parity_ok": True})
    _write(root / "quantize" / task / f"{method}.json",
           {"task": task, "method": method, "metric": "accuracy", "fp32_test_metric": 0.9, "calibration_samples": 64,
            "reference": "onnx-fp32", "variants": {**int8, **targets}})
    _write(root / "finetune" / task / f"{method}.json",
           {"task": task, "method": method, "head": "classification", "metric": "accuracy", "val_metric": 0.88,
            "test_accuracy": 0.9, "test_metric": 0.9, "test_samples": 100, "learning_curve": [[10, 0.9]]})


def _row(model, runtime, precision, p99, budget=5.0, task="digits"):
    p50 = p99 / 2
    return {"model": model, "runtime": runtime, "target": "CPU", "precision": precision, "task": task, "batch": 1,
            "input_shape": [1, 1, 28, 28], "p50_ms": p50, "p90_ms": p99 * 0.8, "p99_ms": p99, "mean_ms": p50,
            "min_ms": p50 / 2, "max_ms": p99 * 2, "iterations": 100, "throughput": 1000 / p50,
            "budget_ms": budget, "meets_budget": p99 <= budget}


def _compat(model, profile, ok, failed=None):
    checks = [{"check": "static_shapes", "ok": failed != "static_shapes", "reason": "input 'x' axis 0 is dynamic"},
              {"check": "operators", "ok": failed != "operators", "reason": "Erf is not supported"},
              {"check": "precision", "ok": True, "reason": "int8 is in the profile"}]
    runtime = "openvino" if model.endswith(".xml") else "onnxruntime"
    return {"model": model, "profile": profile, "runtime": runtime, "target": "CPU", "precision": "int8",
            "applicable": True, "ok": ok, "checks": checks}


HOST = {"cpu_model": "Test CPU", "machine": "x86_64", "logical_cores": 2, "os": "Linux", "python": "3.11"}


def _measured(profile: str, rows: list[dict], compat: list[dict], skipped=()) -> dict:
    return {"profile": profile, "status": "measured", "host": HOST, "measured_at": "2024-01-01T00:00:00+00:00",
            "settings": {}, "models_dir": "exports", "rows": rows, "skipped": list(skipped), "compatibility": compat}


def _not_measured(profile: str, compat: list[dict]) -> dict:
    return {"profile": profile, "status": "not measured here", "reason": "this host is x86_64, the profile's "
            "device is aarch64", "host": HOST, "measured_at": None, "rows": [], "compatibility": compat}


@pytest.fixture
def world(tmp_path):
    """digits with methods mae and simclr. On cpu-x86 (budget 5 ms): mae onnx-fp32 and openvino-fp32 are the
    most accurate but over budget, mae openvino-fp16 is incompatible, mae onnx-int8 (0.88, 2 ms) is the pick,
    mae openvino-int8 is faster but less accurate, simclr onnx-int8 failed to run when scored, simclr
    openvino-int8 was not measured; simclr onnx-fp32 is slower and less accurate than the pick."""
    metrics, reports = tmp_path / "metrics", tmp_path / "reports" / "latency"
    _metrics(metrics, "digits", "mae",
             {"onnx-fp32": _variant(0.90, 3_000_000), "openvino-fp32": _variant(0.90, 3_100_000),
              "openvino-fp16": _variant(0.899, 1_600_000)},
             {"onnx-int8": _variant(0.88, 900_000), "openvino-int8": _variant(0.87, 1_000_000)},
             {"targets/qualcomm-npu/model.int8.onnx": _target("qualcomm-npu", "onnxruntime", "int8", 0.875, 950_000),
              "targets/intel-npu/openvino-int8/model.xml": _target("intel-npu", "openvino", "int8", 0.87, 1_000_000)})
    _metrics(metrics, "digits", "simclr",
             {"onnx-fp32": _variant(0.85, 3_000_000)},
             {"onnx-int8": {"size_bytes": 900_000, "error": "RuntimeError: bad QDQ node"},
              "openvino-int8": _variant(0.93, 1_000_000)},
             {"targets/qualcomm-npu/model.int8.onnx": _target("qualcomm-npu", "onnxruntime", "int8", 0.80, 950_000)})
    rows = [_row("digits-mae (models/finetune)", "pytorch-eager", "fp32", 1.5),
            _row("digits/mae/model.onnx", "onnxruntime", "fp32", 6.0),
            _row("digits/mae/openvino/fp32/model.xml", "openvino", "fp32", 5.5),
            _row("digits/mae/openvino/fp16/model.xml", "openvino", "fp16", 3.0),
            _row("digits/mae/model.int8.onnx", "onnxruntime", "int8", 2.0),
            _row("digits/mae/openvino-int8/model.xml", "openvino", "int8", 1.0),
            _row("digits/simclr/model.onnx", "onnxruntime", "fp32", 4.0),
            _row("digits/simclr/model.int8.onnx", "onnxruntime", "int8", 0.5)]
    compat = [_compat("digits/mae/openvino/fp16/model.xml", PROFILE, False, failed="operators")]
    compat += [_compat(r["model"], PROFILE, True) for r in rows[1:] if "fp16" not in r["model"]]
    skipped = [{"model": "digits/simclr/openvino-int8/model.xml", "batch": None, "reason": "cannot compile: bad IR"}]
    _write(reports / f"{PROFILE}.json", _measured(PROFILE, rows, compat, skipped))
    _write(reports / f"{ABSENT}.json", _not_measured(ABSENT, [
        _compat("digits/mae/model.int8.onnx", ABSENT, False, failed="static_shapes"),
        _compat("digits/mae/targets/qualcomm-npu/model.int8.onnx", ABSENT, True),
        _compat("digits/simclr/model.int8.onnx", ABSENT, False, failed="static_shapes"),
        _compat("digits/simclr/targets/qualcomm-npu/model.int8.onnx", ABSENT, True)]))
    return {"reports_dir": reports, "metrics_dir": metrics}


def _rejected(selection) -> dict[str, str]:
    return {c.label(): "; ".join(reasons) for c, reasons in selection.rejected}


def test_picks_the_most_accurate_variant_within_the_profile_budget(world):
    s = select(PROFILE, "digits", **world)
    assert s.status == "selected" and s.budget_ms == 5.0 and s.device_measured
    c = s.chosen
    assert (c.method, c.variant, c.file) == ("mae", "onnx-int8", "exports/digits/mae/model.int8.onnx")
    assert (c.metric, c.p50_ms, c.p99_ms, c.size_bytes, c.budget_met) == (0.88, 1.0, 2.0, 900_000, True)
    assert "pytorch" not in {v.variant for v, _ in s.rejected}  # the eager model is never shipped


def test_explains_why_each_faster_or_more_accurate_variant_was_rejected(world):
    rejected = _rejected(select(PROFILE, "digits", **world))
    assert rejected["digits/mae onnx-fp32"] == "over budget: p99 6.000 ms > 5 ms"
    assert rejected["digits/mae openvino-fp32"] == "over budget: p99 5.500 ms > 5 ms"
    assert rejected["digits/mae openvino-fp16"] == "incompatible: operators: Erf is not supported"
    assert rejected["digits/mae openvino-int8"].startswith("less accurate: accuracy 0.8700 < 0.8800")
    assert rejected["digits/simclr onnx-int8"] == "failed to run when scored: RuntimeError: bad QDQ node"
    assert rejected["digits/simclr openvino-int8"] == "not measured: cannot compile: bad IR"
    assert "digits/simclr onnx-fp32" not in rejected  # slower and less accurate than the pick
    assert not any("targets/" in label for label in rejected)  # other profiles' variants are not for this one


def test_budget_override_and_min_metric(world):
    wider = select(PROFILE, "digits", budget_ms=10, **world)
    assert (wider.chosen.variant, wider.chosen.p99_ms) == ("openvino-fp32", 5.5)  # tie on metric: the faster
    strict = select(PROFILE, "digits", min_metric=0.885, **world)
    assert strict.status == "none within budget" and strict.chosen is None
    rejected = _rejected(strict)
    assert rejected["digits/mae onnx-int8"] == "below min metric: accuracy 0.8800 < 0.885"
    assert rejected["digits/mae onnx-fp32"] == "over budget: p99 6.000 ms > 5 ms"
    assert rejected["digits/simclr onnx-fp32"].startswith("below min metric")


def test_a_device_not_measured_here_gets_compatible_variants_and_never_a_latency(world):
    s = select(ABSENT, "digits", **world)
    assert s.status == "not measured" and s.chosen is None and not s.device_measured
    assert "aarch64" in s.device_reason
    assert [(c.method, c.variant) for c in s.not_measured] == [
        ("mae", "targets/qualcomm-npu/model.int8.onnx"), ("simclr", "targets/qualcomm-npu/model.int8.onnx")]
    everything = s.not_measured + [c for c, _ in s.rejected]
    assert all(c.p50_ms is c.p90_ms is c.p99_ms is c.throughput is c.budget_met is None and not c.measured
               for c in everything)
    assert _rejected(s)["digits/mae onnx-int8"].startswith("incompatible: static_shapes")
    assert "not measured" in s.describe() and " ms," not in s.describe().split("\n", 1)[1]
    filtered = select(ABSENT, "digits", min_metric=0.85, **world)
    assert [c.method for c in filtered.not_measured] == ["mae"]
    assert _rejected(filtered)["digits/simclr targets/qualcomm-npu/model.int8.onnx"] == \
        "below min metric: accuracy 0.8000 < 0.85"


def _cli(world, *args):
    return main([*args, "--reports", str(world["reports_dir"]), "--metrics", str(world["metrics_dir"])])


def test_cli_exit_codes_and_messages(world, capsys):
    assert _cli(world, "--profile", PROFILE, "--task", "digits") == 0
    out = capsys.readouterr().out
    assert "selected: digits/mae onnx-int8  exports/digits/mae/model.int8.onnx" in out
    assert "over budget: p99 6.000 ms > 5 ms" in out
    assert _cli(world, "--profile", PROFILE, "--task", "digits", "--min-metric", "0.95") == 1
    assert "no variant meets the limits" in capsys.readouterr().out
    assert _cli(world, "--profile", ABSENT, "--task", "digits") == 0
    assert "not measured here" in capsys.readouterr().out

    assert _cli(world, "--profile", "no-such-device", "--task", "digits") == 2
    err = capsys.readouterr().err
    assert "unknown device profile 'no-such-device'" in err and "cpu-x86" in err
    assert _cli(world, "--profile", PROFILE, "--task", "nodigits") == 2
    err = capsys.readouterr().err
    assert "unknown task 'nodigits'" in err and "digits" in err and "export" in err
    assert _cli(world, "--profile", "cpu-arm64", "--task", "digits") == 2
    err = capsys.readouterr().err
    assert "cpu-arm64.json" in err and "bench stage" in err


def test_cli_json_is_the_selection_dict(world, capsys):
    assert _cli(world, "--profile", ABSENT, "--task", "digits", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "not measured" and data["chosen"] is None
    assert data["not_measured"][0]["p99_ms"] is None and data["not_measured"][0]["measured"] is False


def test_results_rows_cover_every_variant_on_every_device(world, tmp_path):
    rows = result_rows([PROFILE, ABSENT], ["digits"], world["reports_dir"], world["metrics_dir"])
    assert all(list(row) == list(COLUMNS) for row in rows)
    here = {(r["method"], r["variant"]): r for r in rows if r["device"] == PROFILE}
    assert here[("mae", "pytorch")]["runtime"] == "pytorch-eager" and here[("mae", "pytorch")]["measured"]
    assert ("simclr", "pytorch") not in here  # no eager row measured for it
    assert not any(v.startswith("targets/") for _, v in here)
    int8 = here[("mae", "onnx-int8")]
    assert (int8["p99_ms"], int8["budget_ms"], int8["budget_met"], int8["compatible"], int8["size_bytes"]) == \
        (2.0, 5.0, True, True, 900_000)
    assert here[("mae", "onnx-fp32")]["budget_met"] is False
    assert here[("simclr", "openvino-int8")]["measured"] is False
    absent = [r for r in rows if r["device"] == ABSENT]
    assert {r["variant"] for r in absent} == {"onnx-int8", "targets/qualcomm-npu/model.int8.onnx"}  # int8 only
    assert all(not r["measured"] and r["p99_ms"] is None and r["budget_met"] is None for r in absent)

    failures = write_results([PROFILE, ABSENT], ["digits"], world["reports_dir"], world["metrics_dir"],
                             tmp_path / "out")
    assert failures == []
    table = list(csv.DictReader(io.StringIO((tmp_path / "out" / "results.csv").read_text())))
    assert len(table) == len(rows) and list(table[0]) == list(COLUMNS)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"] == rows
    selection = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert [(s["profile"], s["status"]) for s in selection["selections"]] == [(PROFILE, "selected"),
                                                                               (ABSENT, "not measured")]


def test_the_budget_gate_names_task_device_budget_and_best_p99(world):
    passing = [select(p, "digits", **world) for p in (PROFILE, ABSENT)]
    assert budget_failures(passing) == []  # a device not measured here never fails the gate
    _over_budget(world)
    failures = budget_failures([select(p, "digits", **world) for p in (PROFILE, ABSENT)])
    assert failures == ["task 'digits' on 'cpu-x86': no variant meets the p99 budget of 5 ms; "
                        "best p99 6.000 ms (digits/mae openvino-int8)"]


def test_variant_files_are_the_ones_export_writes():
    from export.standard import IR_FILES, ONNX_FILES

    assert STANDARD_FILES == {**{f"onnx-{p}": f for p, f in ONNX_FILES.items()},
                              **{f"openvino-{p}": f for p, f in IR_FILES.items()}}



def _over_budget(world) -> None:
    """Every cpu-x86 row 5 ms slower: no variant of digits within its 5 ms budget there."""
    report = json.loads((world["reports_dir"] / f"{PROFILE}.json").read_text())
    for row in report["rows"]:
        row["p99_ms"] += 5.0
    _write(world["reports_dir"] / f"{PROFILE}.json", report)


def test_the_gate_fails_after_the_outputs_are_written_and_is_off_by_default(world, tmp_path, capsys):
    from pipeline.config.params import ReportParams

    assert ReportParams().budget_gate is False
    _over_budget(world)
    out = tmp_path / "out"
    failures = write_results([PROFILE, ABSENT], ["digits"], world["reports_dir"], world["metrics_dir"], out, gate=True)
    assert all((out / name).is_file() for name in ("results.csv", "results.json", "selection.json"))
    assert json.loads((out / "selection.json").read_text())["budget_gate"] == {"enabled": True, "failures": failures}
    enforce_budget_gate(failures, enabled=False)  # off: reported, not fatal
    assert "report: over budget: task 'digits' on 'cpu-x86'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        enforce_budget_gate(failures, enabled=True)
    message = str(stop.value.code)
    assert "budget gate" in message and "task 'digits' on 'cpu-x86'" in message and "5 ms" in message
    assert "best p99 6.000 ms" in message


def test_the_gate_passes_when_every_measured_device_has_a_variant(world, tmp_path):
    failures = write_results([PROFILE, ABSENT], ["digits"], world["reports_dir"], world["metrics_dir"],
                             tmp_path / "out", gate=True)
    assert failures == []
    enforce_budget_gate(failures, enabled=True)  # returns: nothing to fail on
