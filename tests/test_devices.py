"""Device profiles, the latency runner and its reports (fast; no torch)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from devices import benchmark_app as bapp
from devices.latency import judged_stats, measure
from devices.metadata import decode_metadata, read_metadata
from devices.model_files import UnknownModelFormat, find_models
from devices.profile import Profile, ProfileError, known_profiles, load_profile, precision_of
from devices.report import (NOT_MEASURED, not_measured_report, read_report, render_markdown, with_brought_back,
                            write_device_report)
from devices.run import ModelInputError, RuntimeUnavailable, input_shape_for, measure_models
from devices.schema import MapOf, Table, Value, is_number, validate

ROOT = Path(__file__).resolve().parents[1]

GOOD_PROFILE = """
description = "test profile"
arch = "any"
threads = 1
batch_sizes = [1, 32]
warmup_iterations = 3
precisions = ["fp32", "int8"]

[runtimes.onnxruntime]
provider = "CPUExecutionProvider"

[runtimes.openvino]
device = "CPU"

[repetitions]
min_iterations = 20
min_seconds = 0.02

[budget_ms]
default = 5.0
digits = 4.0
"""


def write_profile(tmp_path: Path, text: str, name: str = "test-device") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(text))
    return path


def make_onnx(path: Path, shape=("N", 4), metadata: dict[str, str] | None = None) -> Path:
    """A tiny ONNX model: x[shape] -> MatMul(4x3) -> y."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 3])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_ir(onnx_path: Path, xml_path: Path, model_info: dict[str, str] | None = None) -> Path:
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    for key, value in (model_info or {}).items():
        model.set_rt_info(value, ["model_info", key])
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml_path))
    return xml_path


# --- profiles -----------------------------------------------------------------------------------


def test_shipped_profile_loads():
    assert "cpu-x86" in known_profiles()
    p = load_profile("cpu-x86")
    assert isinstance(p, Profile)
    assert p.name == "cpu-x86"
    assert p.batch_sizes == (1, 32)
    assert p.runtimes == {"onnxruntime": "CPUExecutionProvider", "openvino": "CPU"}
    assert p.threads == 0 and p.warmup_iterations > 0 and p.min_iterations >= 100 and p.min_seconds > 0
    assert set(p.precisions) == {"fp32", "fp16", "int8"}
    assert p.budget_ms("digits") == pytest.approx(5.0)
    assert p.budget_ms("some-other-task") == p.budget_ms(None) == p.budgets_ms["default"]


def test_profile_by_path_and_per_task_budget(tmp_path):
    p = load_profile(write_profile(tmp_path, GOOD_PROFILE))
    assert p.name == "test-device"
    assert p.budget_ms("digits") == 4.0 and p.budget_ms("speech") == 5.0
    assert p.to_dict()["budget_ms"] == {"default": 5.0, "digits": 4.0}


def test_unknown_profile_name_lists_known():
    with pytest.raises(ProfileError) as err:
        load_profile("no-such-device")
    msg = str(err.value)
    assert "no-such-device" in msg and "cpu-x86" in msg


def test_missing_field_names_file_and_field(tmp_path):
    path = write_profile(tmp_path, GOOD_PROFILE.replace("warmup_iterations = 3\n", ""))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    msg = str(err.value)
    assert str(path) in msg and "warmup_iterations" in msg and "missing" in msg and "integer" in msg


def test_missing_nested_field_and_default_budget(tmp_path):
    path = write_profile(tmp_path, GOOD_PROFILE.replace("min_seconds = 0.02\n", ""))
    with pytest.raises(ProfileError, match=r"repetitions\.min_seconds"):
        load_profile(path)
    path = write_profile(tmp_path, GOOD_PROFILE.replace("default = 5.0\n", ""))
    with pytest.raises(ProfileError, match=r"budget_ms\.default"):
        load_profile(path)


@pytest.mark.parametrize(
    "old,new,field",
    [
        ("threads = 1", 'threads = "two"', "threads"),
        ("threads = 1", "threads = true", "threads"),
        ("batch_sizes = [1, 32]", 'batch_sizes = [1, "32"]', "batch_sizes"),
        ("batch_sizes = [1, 32]", "batch_sizes = []", "batch_sizes"),
        ('precisions = ["fp32", "int8"]', 'precisions = ["fp64"]', "precisions"),
        ("min_seconds = 0.02", 'min_seconds = "2s"', "repetitions.min_seconds"),
        ("digits = 4.0", 'digits = "fast"', "budget_ms.digits"),
        ('provider = "CPUExecutionProvider"', "provider = 3", "runtimes.onnxruntime.provider"),
    ],
)
def test_wrong_type_names_file_field_and_expectation(tmp_path, old, new, field):
    assert old in GOOD_PROFILE
    path = write_profile(tmp_path, GOOD_PROFILE.replace(old, new))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    msg = str(err.value)
    assert str(path) in msg and f"'{field}'" in msg and "must be" in msg


@pytest.mark.parametrize(
    "extra,where",
    [
        ("colour = 1\n", "colour"),
        ("[runtimes.tensorrt]\nprovider = 'x'\n", "runtimes.tensorrt"),
        ("[repetitions.more]\nx = 1\n", None),
    ],
)
def test_unknown_field_is_an_error(tmp_path, extra, where):
    text = GOOD_PROFILE
    if extra.startswith("colour"):
        text = extra + text
    elif "repetitions" in extra:
        text = text.replace("min_seconds = 0.02\n", "min_seconds = 0.02\nmax_iterations = 9\n")
        where = "repetitions.max_iterations"
    else:
        text = text + extra
    path = write_profile(tmp_path, text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert "unknown field" in str(err.value) and where in str(err.value) and str(path) in str(err.value)


def test_schema_errors_name_the_file_and_the_dotted_key():
    fields = {"reps": Table({"n": Value("an integer", lambda v: isinstance(v, int))}, "a table with n"),
              "budget": MapOf(Value("a number", is_number), "a table of numbers", must_have=("default",))}
    validate({"reps": {"n": 3}, "budget": {"default": 1.5}}, fields, (), "dev.toml")
    for data, message in [
        ({"reps": {"n": "3"}, "budget": {"default": 1}}, "dev.toml: field 'reps.n' must be an integer, got str '3'"),
        ({"reps": {}, "budget": {"default": 1}}, "dev.toml: missing field 'reps.n': expected an integer"),
        ({"reps": {"n": 3}, "budget": {"x": 1}}, "dev.toml: missing field 'budget.default': expected a number"),
        ({"reps": {"n": 3}, "budget": {"default": 1, "x": None}}, "dev.toml: field 'budget.x' must be a number"),
        ({"reps": {"n": 3, "m": 1}, "budget": {"default": 1}}, "dev.toml: unknown field(s) 'reps.m'; allowed: n"),
    ]:
        with pytest.raises(ProfileError) as err:
            validate(data, fields, (), "dev.toml", ProfileError)
        assert str(err.value).startswith(message)


def test_invalid_toml_names_file(tmp_path):
    path = write_profile(tmp_path, "threads = = 1\n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(path)


# --- latency ------------------------------------------------------------------------------------


class FakeClock:
    """perf_counter_ns stand-in: each session call advances time by the next scripted duration
    (the last one repeats once the script runs out)."""

    def __init__(self, durations_ms):
        self.now = 0
        self.durations = [int(d * 1e6) for d in durations_ms]
        self.calls = 0

    def __call__(self) -> int:
        return self.now

    def run(self, x):
        self.now += self.durations[min(self.calls, len(self.durations) - 1)]
        self.calls += 1


def test_measure_stats_on_fake_clock():
    clock = FakeClock(range(1, 101))  # 1..100 ms, each once
    x = np.zeros((8, 4), np.float32)
    stats = measure(clock.run, x, warmup=0, min_iters=100, min_seconds=0.0, clock=clock)
    assert stats["iterations"] == 100
    assert stats["p50_ms"] == 50 and stats["p90_ms"] == 90 and stats["p99_ms"] == 99
    assert stats["min_ms"] == 1 and stats["max_ms"] == 100
    assert stats["mean_ms"] == pytest.approx(50.5)
    assert stats["throughput"] == pytest.approx(8 / 0.0505)
    assert stats["batch"] == 8


def test_measure_warmup_is_untimed_and_min_seconds_extends_the_run():
    clock = FakeClock([1000.0] * 5 + [10.0])  # 5 slow warm-up calls, then 10 ms calls
    stats = measure(clock.run, np.zeros((1, 4), np.float32), warmup=5, min_iters=3, min_seconds=0.5, clock=clock)
    assert stats["max_ms"] == 10.0  # warm-up not in the stats
    assert stats["iterations"] == 50  # 3 would do by count; 0.5 s of 10 ms calls needs 50
    assert stats["measured_seconds"] == pytest.approx(0.5)


def test_measure_real_function_ordering():
    x = np.random.default_rng(0).standard_normal((4, 64), dtype=np.float32)
    w = np.ones((64, 64), np.float32)
    stats = measure(lambda a: a @ w, x, warmup=2, min_iters=50, min_seconds=0.01)
    assert stats["iterations"] >= 50
    assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    assert stats["throughput"] == pytest.approx(4 / (stats["mean_ms"] / 1e3))


def test_measure_rejects_bad_arguments():
    with pytest.raises(ValueError):
        measure(lambda a: a, np.zeros((1, 1)), warmup=0, min_iters=0, min_seconds=0)


def test_budget_applies_to_p99_at_batch_1():
    profile = load_profile("cpu-x86")
    stats = {"p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 6.0, "mean_ms": 1.5, "min_ms": 0.5, "max_ms": 9.0,
             "iterations": 300, "throughput": 666.0, "batch": 1, "measured_seconds": 1.0}
    row = judged_stats(stats, profile, "digits", 1)
    assert row["budget_ms"] == 5.0 and row["meets_budget"] is False and "measured_seconds" not in row
    assert judged_stats(dict(stats, p99_ms=5.0), profile, "digits", 1)["meets_budget"] is True
    assert judged_stats(stats, profile, "digits", 32) == {**row, "budget_ms": None, "meets_budget": None}


# --- model files and their metadata ---------------------------------------------------------------


def test_metadata_reader_on_onnx_and_openvino_ir(tmp_path):
    meta = {"task": "digits", "precision": "fp32", "labels": '["a", "b"]'}
    src = make_onnx(tmp_path / "m.onnx", metadata=meta)
    ir = make_ir(src, tmp_path / "ir" / "m.xml", meta)
    assert read_metadata(src) == read_metadata(ir) == meta
    assert decode_metadata(read_metadata(ir))["labels"] == ["a", "b"]
    assert read_metadata(make_ir(src, tmp_path / "bare.xml")) == {}  # an IR without the section
    with pytest.raises(FileNotFoundError, match="gone.onnx"):
        read_metadata(tmp_path / "gone.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.onnx: onnxruntime cannot read"):
        read_metadata(tmp_path / "bad.onnx")
    with pytest.raises(UnknownModelFormat, match="m.pt.*expected .onnx or .xml"):
        read_metadata(tmp_path / "m.pt")


def test_find_models_skips_hidden_folders_assets_and_other_targets(tmp_path):
    for rel in ["a/model.onnx", "a/.cache/model.onnx", ".dvc/x.onnx", "a/.model.onnx.x1.tmp.onnx",
                "a/assets/frontend.onnx", "a/targets/npu/model.onnx", "a/targets/cpu/model.onnx"]:
        make_onnx(tmp_path / rel)
    (tmp_path / "a" / "notes.xml").write_text("<notes/>")  # not an OpenVINO IR
    names = [p.relative_to(tmp_path).as_posix() for p in find_models(tmp_path, "npu")]
    assert names == ["a/model.onnx", "a/targets/npu/model.onnx"]


# --- runner -------------------------------------------------------------------------------------


def test_input_shapes_and_precision_inference():
    assert input_shape_for("m", "x", [None, 1, 28, 28], 32) == (32, 1, 28, 28)
    assert input_shape_for("m", "x", [1, 4], 1) == (1, 4)
    assert input_shape_for("m", "x", [1, 4], 32) is None  # fixed batch: skipped, not faked
    with pytest.raises(ModelInputError, match="vit_digits.onnx.*dynamic axis"):
        input_shape_for("vit_digits.onnx", "x", [None, 1, None, 28], 1)
    assert precision_of({"precision": "INT8"}, "a/fp32/m.onnx") == "int8"
    assert precision_of({}, "digits/int8/model.xml") == "int8"
    assert precision_of({}, "vit_fp16.onnx") == "fp16"
    assert precision_of({}, "model.onnx") == "unknown"
    assert precision_of({}, "xfp32x.onnx") == "unknown"


@pytest.fixture
def models_dir(tmp_path):
    models = tmp_path / "exports"
    src = make_onnx(models / "digits" / "fp32" / "tiny.onnx", metadata={"precision": "fp32", "task": "digits"})
    make_ir(src, models / "digits" / "ir" / "tiny_int8.xml", {"task": "digits"})  # precision from the path
    make_onnx(models / "other" / "tiny_fp16.onnx", metadata={"precision": "fp16"})  # not in the profile's list
    return models


def test_cli_writes_report_for_each_model_and_batch(tmp_path, models_dir):
    profile = write_profile(tmp_path, GOOD_PROFILE)
    out, md = tmp_path / "reports" / "dev.json", tmp_path / "reports" / "dev.md"
    proc = subprocess.run(
        [sys.executable, "-m", "devices.run", "--profile", str(profile), "--models", str(models_dir),
         "--out", str(out), "--md", str(md), "--task-of-model", "auto"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["profile"] == "test-device" and report["status"] == "measured"
    assert report["host"]["cpu_model"] and report["host"]["onnxruntime"]["version"]
    assert report["measured_at"].endswith("+00:00")
    rows = report["rows"]
    assert {(r["model"], r["runtime"], r["precision"], r["batch"]) for r in rows} == {
        ("digits/fp32/tiny.onnx", "onnxruntime", "fp32", 1),
        ("digits/fp32/tiny.onnx", "onnxruntime", "fp32", 32),
        ("digits/ir/tiny_int8.xml", "openvino", "int8", 1),
        ("digits/ir/tiny_int8.xml", "openvino", "int8", 32),
    }
    for r in rows:
        assert r["task"] == "digits"
        assert r["iterations"] >= 20
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["throughput"] == pytest.approx(r["batch"] / (r["mean_ms"] / 1e3))
        assert r["input_shape"] == [r["batch"], 4]
        if r["batch"] == 1:
            assert r["budget_ms"] == 4.0 and r["meets_budget"] == (r["p99_ms"] <= 4.0)
        else:
            assert r["budget_ms"] is None and r["meets_budget"] is None
    assert [s["model"] for s in report["skipped"]] == ["other/tiny_fp16.onnx"]
    text = md.read_text()
    assert "| model | runtime | precision | batch | p50 | p90 | p99 | throughput | budget | meets budget |" in text
    assert report["host"]["cpu_model"] in text and "onnxruntime 1." in text
    assert text.count("`digits/") == 4
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_unavailable_provider_is_a_clear_error(tmp_path, models_dir):
    bad = GOOD_PROFILE.replace('provider = "CPUExecutionProvider"', 'provider = "NoSuchExecutionProvider"')
    profile = load_profile(write_profile(tmp_path, bad))
    with pytest.raises(RuntimeUnavailable, match="'NoSuchExecutionProvider' is not available on this host"):
        measure_models(profile, models_dir, log=lambda m: None)
    bad_device = GOOD_PROFILE.replace('device = "CPU"', 'device = "NOSUCHDEVICE"')
    with pytest.raises(RuntimeUnavailable, match="OpenVINO device 'NOSUCHDEVICE' is not available"):
        measure_models(load_profile(write_profile(tmp_path, bad_device, "dev2")), models_dir, log=lambda m: None)

    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "devices.run", "--profile", str(tmp_path / "test-device.toml"),
         "--models", str(models_dir), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "NoSuchExecutionProvider" in proc.stderr and "no fallback" in proc.stderr
    assert not out.exists()


def test_dynamic_non_batch_axis_names_the_model(tmp_path):
    models = tmp_path / "m"
    make_onnx(models / "dyn_fp32.onnx", shape=("N", "F"))
    profile = load_profile(write_profile(tmp_path, GOOD_PROFILE))
    with pytest.raises(ModelInputError, match="dyn_fp32.onnx"):
        measure_models(profile, models, log=lambda m: None)


def test_fixed_batch_model_skips_other_batches(tmp_path):
    models = tmp_path / "m"
    make_onnx(models / "fixed_fp32.onnx", shape=(1, 4))
    profile = load_profile(write_profile(tmp_path, GOOD_PROFILE.replace("min_iterations = 20", "min_iterations = 5")))
    report = measure_models(profile, models, log=lambda m: None)
    assert [r["batch"] for r in report["rows"]] == [1]
    assert report["skipped"] == [{"model": "fixed_fp32.onnx", "path": str(models / "fixed_fp32.onnx"), "batch": 32,
                                  "reason": "input batch axis is fixed to 1"}]


# --- reports ------------------------------------------------------------------------------------


def test_not_measured_report_has_no_numbers(tmp_path):
    report = not_measured_report(load_profile("cpu-x86"), "no Jetson attached to this host")
    assert report["status"] == NOT_MEASURED and report["rows"] == [] and report["profile"] == "cpu-x86"
    write_device_report(report, tmp_path / "r.json", tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    assert "Not measured here" in md and "no Jetson attached" in md
    assert "|" not in md and " ms" not in md
    assert json.loads((tmp_path / "r.json").read_text())["status"] == NOT_MEASURED


def test_report_refuses_rows_without_measurements(tmp_path):
    row = {"model": "m.onnx", "runtime": "onnxruntime", "precision": "fp32", "batch": 1, "p50_ms": 1.0,
           "p90_ms": 1.0, "p99_ms": None, "mean_ms": 1.0, "throughput": 1000.0, "iterations": 10}
    with pytest.raises(ValueError, match="p99_ms"):
        render_markdown({"profile": "x", "rows": [row]})
    with pytest.raises(ValueError, match="not measured"):
        render_markdown({"profile": "x", "status": NOT_MEASURED, "rows": [dict(row, p99_ms=1.0)]})


def measured(profile: str, model: str = "m.onnx") -> dict:
    return {"profile": profile, "status": "measured", "rows": [
        {"model": model, "runtime": "onnxruntime", "batch": 1, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0,
         "mean_ms": 1.0, "throughput": 1000.0, "iterations": 10}]}


def test_reports_brought_back_from_the_device(tmp_path):
    folder = tmp_path / "device_reports" / "jetson-orin"
    here = not_measured_report("jetson-orin", "no Jetson attached")
    assert with_brought_back(here, folder) == here  # no folder, nothing brought back
    folder.mkdir(parents=True)
    (folder / "a.json").write_text(json.dumps(measured("jetson-orin", "old.onnx")))
    (folder / "b.json").write_text(json.dumps(measured("jetson-orin", "new.onnx")))
    merged = with_brought_back(here, folder)
    assert merged["measured_here"] is False and merged["status"] == "measured"
    assert merged["rows"][0]["model"] == "new.onnx" and merged["source"] == str(folder / "b.json")
    assert with_brought_back(measured("jetson-orin"), folder)["rows"][0]["model"] == "m.onnx"  # measured here wins


@pytest.mark.parametrize("text,why", [('{"profile": "jetson-orin", "rows": [', "not a valid device report"),
                                      ("[1, 2]", "expected a JSON object"),
                                      ('{"profile": "jetson-orin"}', "lacks 'rows'")])
def test_a_broken_brought_back_report_is_named(tmp_path, text, why):
    (tmp_path / "broken.json").write_text(text)
    with pytest.raises(ValueError, match=f"broken.json: .*{why}"):
        with_brought_back(not_measured_report("jetson-orin", "absent"), tmp_path)
    with pytest.raises(ValueError, match="broken.json"):
        read_report(tmp_path / "broken.json")


def test_a_report_of_another_device_is_refused(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps(measured("cpu-arm64")))
    with pytest.raises(ValueError, match="x.json: a report for 'cpu-arm64' in the folder of 'jetson-orin'"):
        with_brought_back(not_measured_report("jetson-orin", "absent"), tmp_path)


# --- benchmark_app ------------------------------------------------------------------------------

BENCHMARK_TAIL = """
[ INFO ] Execution Devices:['CPU']
[ INFO ] Count:            22225 iterations
[ INFO ] Duration:         1000.06 ms
[ INFO ] Latency:
[ INFO ]    Median:        47.31 us
[ INFO ]    Average:       60.77 us
[ INFO ]    Min:           29.11 us
[ INFO ]    Max:           11.57 ms
[ INFO ] Throughput:   11112.26 FPS
"""


def test_parse_benchmark_output():
    stats = bapp.parse_benchmark_output(BENCHMARK_TAIL)
    assert stats["median_ms"] == pytest.approx(0.04731) and stats["average_ms"] == pytest.approx(0.06077)
    assert stats["min_ms"] == pytest.approx(0.02911) and stats["max_ms"] == pytest.approx(11.57)
    assert stats["iterations"] == 22225 and stats["throughput_fps"] == pytest.approx(11112.26)
    with pytest.raises(ValueError):
        bapp.parse_benchmark_output("[ ERROR ] nothing ran")


def test_benchmark_app_command_for_dynamic_batch():
    cmd = bapp.benchmark_app_command("benchmark_app", "m.xml", [32, 1, 28, 28], seconds=5)
    assert cmd == ["benchmark_app", "-m", "m.xml", "-d", "CPU", "-hint", "latency", "-t", "5", "-infer_precision", "f32",
                   "-shape", "[32,1,28,28]"]
    cmd = bapp.benchmark_app_command("benchmark_app", "m.xml", [1, 4], seconds=0.2, dynamic=True, threads=2)
    assert cmd[cmd.index("-t") + 1] == "1"  # benchmark_app takes whole seconds >= 1
    assert cmd[-5:] == ["-data_shape", "[1,4]", "-inference_only", "-nthreads", "2"]


def test_benchmark_app_absent_returns_none(monkeypatch, tmp_path):
    monkeypatch.setattr(bapp, "find_benchmark_app", lambda: None)
    assert bapp.benchmark_app_latency(tmp_path / "m.xml") is None
    assert "benchmark_app not found" in bapp.benchmark_app_unavailable_reason()


@pytest.mark.skipif(bapp.find_benchmark_app() is None, reason="benchmark_app not installed")
def test_benchmark_app_runs_on_a_dynamic_batch_ir(tmp_path):
    xml = make_ir(make_onnx(tmp_path / "tiny.onnx"), tmp_path / "tiny.xml")
    stats = bapp.benchmark_app_latency(xml, batch=32, seconds=1)
    assert stats["shape"] == [32, 4] and "-shape" in stats["command"]
    assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"] and stats["iterations"] > 0


# --- no torch -----------------------------------------------------------------------------------


def test_devices_import_without_torch_yaml_pydantic():
    code = textwrap.dedent(
        """
        import sys
        for name in ("torch", "yaml", "pydantic", "torchvision", "timm"):
            sys.modules[name] = None  # importing any of these now raises ImportError
        import devices.run, devices.profile, devices.latency, devices.report, devices.runtimes
        import devices.system_info, devices.benchmark_app, devices.compat, devices.metadata, devices.predict
        lazy = [m for m in ("onnxruntime", "openvino") if m in sys.modules]
        assert not lazy, f"imported eagerly: {lazy}"
        print("ok")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
