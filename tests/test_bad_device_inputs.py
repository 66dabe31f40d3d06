"""One bad input does not stop a device stage: a broken report brought back, a corrupt model, a scratch
folder a killed export left, a target option that does not apply. Each is named; the good ones are kept."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from devices.model_files import SCRATCH_PREFIX, find_models
from devices.profile import host_arch, load_profile
from devices.report import NOT_MEASURED, not_measured_report, with_brought_back, write_device_report
from devices.run import measure_models
from devices.runtimes import open_session
from tests.test_devices import make_onnx

ROOT = Path(__file__).resolve().parents[1]

PROFILE = """
description = "smallest settings"
arch = "{arch}"
threads = 1
batch_sizes = [1]
warmup_iterations = 1
precisions = ["fp32"]

[runtimes.onnxruntime]
provider = "CPUExecutionProvider"

[repetitions]
min_iterations = 2
min_seconds = 0

[budget_ms]
default = 5.0
"""


def write_profile(folder: Path, name: str, arch: str | None = None) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(PROFILE.format(arch=arch or host_arch()))
    return path


def measured(profile: str, model: str) -> dict:
    return {"profile": profile, "status": "measured", "rows": [
        {"model": model, "runtime": "onnxruntime", "batch": 1, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0,
         "mean_ms": 1.0, "throughput": 1000.0, "iterations": 10}]}


def reports_with_bad_files(folder: Path, profile: str) -> None:
    folder.mkdir(parents=True)
    (folder / "a-good.json").write_text(json.dumps(measured(profile, "good.onnx")))
    (folder / "b-malformed.json").write_text('{"profile": "%s", "rows": [' % profile)
    (folder / "c-binary.json").write_bytes(b"\xff\xfe\x00\x81binary")
    (folder / ".d.json.tmp.json").write_text("half a cop")  # hidden: not read at all


# --- reports brought back from a device -------------------------------------------------------------


def test_bad_brought_back_files_are_named_and_the_good_one_merged(tmp_path):
    folder = tmp_path / "device_reports" / "board"
    reports_with_bad_files(folder, "board")
    report = with_brought_back(not_measured_report("board", "no board here"), folder, skip_bad=True)
    assert report["status"] == "measured" and report["measured_here"] is False
    assert [r["model"] for r in report["rows"]] == ["good.onnx"]
    skipped = {Path(s["file"]).name: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"b-malformed.json", "c-binary.json"}
    assert skipped["b-malformed.json"].startswith("not a valid device report: Expecting value")
    assert "codec can't decode byte 0xff" in skipped["c-binary.json"]

    write_device_report(report, tmp_path / "board.json", tmp_path / "board.md")
    md = (tmp_path / "board.md").read_text()
    assert "`good.onnx`" in md
    assert f"- skipped: `{folder / 'c-binary.json'}`: not a valid device report: 'utf-8' codec" in md
    assert json.loads((tmp_path / "board.json").read_text())["skipped"] == report["skipped"]


def test_without_skip_bad_a_binary_report_is_an_error_naming_it(tmp_path):
    (tmp_path / "x.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"x\.json: not a valid device report: 'utf-8' codec"):
        with_brought_back(not_measured_report("board", "absent"), tmp_path)


def test_bad_files_in_a_not_measured_report_are_rendered(tmp_path):
    (tmp_path / "x.json").write_text("{")
    report = with_brought_back(not_measured_report("board", "absent"), tmp_path, skip_bad=True)
    assert report["status"] == NOT_MEASURED and report["rows"] == []
    write_device_report(report, None, tmp_path / "board.md")
    assert f"- skipped: `{tmp_path / 'x.json'}`: not a valid device report" in (tmp_path / "board.md").read_text()


@pytest.fixture
def bench_setup(tmp_path, monkeypatch):
    """The bench stage over a tiny export folder and device_reports/ with bad files, two profiles: one
    measured here, one of another arch (its report comes from the device)."""
    from pipeline.config import paths
    from pipeline.stages import bench

    exports = tmp_path / "exports"
    make_onnx(exports / "t" / "m" / "model.onnx", metadata={"precision": "fp32"})
    monkeypatch.setattr(paths, "EXPORTS", exports)
    monkeypatch.setattr(bench, "DEVICE_REPORTS", tmp_path / "device_reports")
    other = "aarch64" if host_arch() != "aarch64" else "x86_64"
    profiles = {"here": write_profile(tmp_path, "here"), "away": write_profile(tmp_path, "away", other)}
    for name in profiles:
        reports_with_bad_files(tmp_path / "device_reports" / name, name)
    settings = types.SimpleNamespace(batch_sizes=None, min_seconds=None, min_iterations=None,
                                     warmup_iterations=None, benchmark_app_seconds=0)
    return bench, types.SimpleNamespace(bench=settings), profiles


def test_bench_keeps_measurements_and_good_reports_beside_bad_files(bench_setup, tmp_path, capsys):
    bench, params, profiles = bench_setup
    here = bench.bench_profile(params, str(profiles["here"]))
    assert here["status"] == "measured" and [r["model"] for r in here["rows"]] == ["t/m/model.onnx"]
    away = bench.bench_profile(params, str(profiles["away"]))
    assert away["measured_here"] is False and [r["model"] for r in away["rows"]] == ["good.onnx"]
    for report in (here, away):
        assert sorted(Path(s["file"]).name for s in report["skipped"]) == ["b-malformed.json", "c-binary.json"]
        write_device_report(report, tmp_path / "out" / f"{report['profile']}.json", None)
    err = capsys.readouterr().err
    assert f"bench away: skipped: {tmp_path / 'device_reports' / 'away' / 'c-binary.json'}: not a valid" in err
    assert err.count("skipped:") == 4


# --- models -------------------------------------------------------------------------------------------


def test_a_corrupt_model_is_named_and_the_good_one_measured(tmp_path):
    models = tmp_path / "exports"
    make_onnx(models / "a" / "good.onnx", metadata={"precision": "fp32"})
    (models / "b").mkdir()
    (models / "b" / "corrupt.onnx").write_bytes(b"\x08\x01garbage" * 10)
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "devices.run", "--profile", str(write_profile(tmp_path, "dev")),
         "--models", str(models), "--out", str(out), "--md", str(tmp_path / "report.md")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert [r["model"] for r in report["rows"]] == ["a/good.onnx"]
    [skip] = report["skipped"]
    assert skip["model"] == "b/corrupt.onnx" and skip["reason"].startswith("onnxruntime cannot load this model")
    assert f"skipped: {models / 'b' / 'corrupt.onnx'}: onnxruntime cannot load this model" in proc.stderr
    assert "`b/corrupt.onnx`: onnxruntime cannot load" in (tmp_path / "report.md").read_text()


def test_compat_fails_a_corrupt_model_by_name_and_checks_the_others(tmp_path):
    from devices.compat.checks import check_all

    models = tmp_path / "exports"
    make_onnx(models / "a" / "good.onnx", metadata={"precision": "fp32"})
    (models / "b").mkdir()
    (models / "b" / "corrupt.onnx").write_bytes(b"\x08\x01garbage" * 10)
    results = {r["model"]: r for r in check_all(write_profile(tmp_path, "dev"), models)}
    assert results["a/good.onnx"]["ok"]
    corrupt = results["b/corrupt.onnx"]
    assert corrupt["ok"] is False and corrupt["checks"][0]["check"] == "readable"
    assert "corrupt.onnx" in corrupt["checks"][0]["reason"]


def test_only_corrupt_models_is_an_error_naming_them(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "corrupt.onnx").write_bytes(b"not a model")
    profile = load_profile(write_profile(tmp_path, "dev"))
    with pytest.raises(RuntimeError, match="corrupt.onnx: onnxruntime cannot load"):
        measure_models(profile, tmp_path / "m", log=lambda m: None)


def test_scratch_of_a_killed_export_is_not_a_model(tmp_path):
    from export.files import SCRATCH_GLOB, remove_stale_scratch

    make_onnx(tmp_path / "t" / "m" / "model.onnx")
    make_onnx(tmp_path / "t" / "m" / ".export-abc" / "prepared.onnx")
    assert SCRATCH_GLOB == f"{SCRATCH_PREFIX}*" and ".export-abc".startswith(SCRATCH_PREFIX)
    assert [p.relative_to(tmp_path).as_posix() for p in find_models(tmp_path)] == ["t/m/model.onnx"]
    assert remove_stale_scratch(tmp_path / "t" / "m") == [tmp_path / "t" / "m" / ".export-abc"]


# --- target options -----------------------------------------------------------------------------------


def test_devices_run_refuses_device_option_naming_it_and_the_onnx_model(tmp_path):
    make_onnx(tmp_path / "exports" / "a" / "model.onnx")
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "devices.run", "--profile", "cpu-x86", "--models", str(tmp_path / "exports"),
         "--out", str(out), "--device", "NPU"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and not out.exists()
    assert "--device 'NPU' is not an option of devices.run" in proc.stderr
    assert "(a/model.onnx) run on the provider of its [runtimes.onnxruntime]" in proc.stderr


def test_open_session_refuses_a_target_of_the_other_runtime(tmp_path):
    model = make_onnx(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match=r"model\.onnx: device 'NPU' \(--device\) is an OpenVINO device"):
        open_session(model, device="NPU")
    with pytest.raises(ValueError, match=r"model\.xml: provider 'CUDAExecutionProvider' \(--provider\)"):
        open_session(tmp_path / "model.xml", provider="CUDAExecutionProvider")


def test_devices_predict_with_device_npu_on_onnx_is_an_error(tmp_path, capsys):
    from devices.predict import main

    model = make_onnx(tmp_path / "model.onnx")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 4), np.float32))
    assert main([str(model), str(x), "--device", "NPU"]) == 2
    assert f"error: {model}: device 'NPU' (--device) is an OpenVINO device" in capsys.readouterr().err
