"""Device targets beyond the x86 CPU: the shipped profiles, their optional fields, and devices.compat
(static shapes, documented operator lists, precision) on tiny ONNX / OpenVINO models. No torch."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from devices.compat import CompatError, check_all, check_model, load_operator_list, operator_list_path
from devices.profile import (
    KNOWN_ARCHES,
    KNOWN_PRECISIONS,
    QUANTIZATION_PRESETS,
    ProfileError,
    host_arch,
    known_profiles,
    load_profile,
)

ROOT = Path(__file__).resolve().parents[1]
NEW_PROFILES = ["cpu-arm64", "jetson-orin", "intel-npu", "qualcomm-npu"]


# --- tiny models ----------------------------------------------------------------------------------


def tiny_onnx(path: Path, batch="N", precision="fp32", task="tiny", extra_op: str | None = None) -> Path:
    """x[batch,3,3] -> Relu -> (extra_op) -> MatMul(w 3x2) -> y; metadata like the exporter writes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2), "w")
    nodes = [helper.make_node("Relu", ["x"], ["r"])]
    if extra_op == "Det":  # [b,3,3] -> [b]; then back to [b,3,3] via a broadcast Mul
        nodes += [helper.make_node("Det", ["r"], ["d"]),
                  helper.make_node("Unsqueeze", ["d", "axes"], ["d3"]),
                  helper.make_node("Mul", ["r", "d3"], ["r2"])]
        last = "r2"
    else:
        last = "r"
    nodes.append(helper.make_node("MatMul", [last, "w"], ["y"]))
    inits = [w, numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes")]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    for key, value in {"precision": precision, "task": task, "modality": "tiny"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_qdq_onnx(path: Path, batch=1, zero_point=128, qtype="uint8", task="tiny") -> Path:
    """x[batch,4] -> Q/DQ (qtype) -> MatMul(DQ(weights)) -> y[batch,3], labelled int8."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    np_type = np.dtype(qtype)
    elem = helper.np_dtype_to_tensor_dtype(np_type)
    w_q = numpy_helper.from_array(np.arange(12, dtype=np_type).reshape(4, 3), "w_q")
    inits = [
        w_q,
        numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(zero_point, np_type), "x_zp"),
        numpy_helper.from_array(np.array(0.01, np.float32), "w_scale"),
        numpy_helper.from_array(np.array(zero_point, np_type), "w_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    for key, value in {"precision": "int8", "task": task}.items():
        model.metadata_props.add(key=key, value=value)
    assert elem in (TensorProto.UINT8, TensorProto.INT8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_ir(onnx_path: Path, xml_path: Path, precision: str) -> Path:
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    model.set_rt_info(precision, ["model_info", "precision"])
    model.set_rt_info("tiny", ["model_info", "task"])
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml_path), compress_to_fp16=precision == "fp16")
    return xml_path


def check(result: dict, name: str) -> dict:
    return next(c for c in result["checks"] if c["check"] == name)


# --- profiles -------------------------------------------------------------------------------------


def test_shipped_profiles_include_the_new_targets():
    assert set(NEW_PROFILES) | {"cpu-x86"} <= set(known_profiles())


@pytest.mark.parametrize("name", known_profiles())
def test_every_shipped_profile_loads_and_is_consistent(name):
    p = load_profile(name)
    assert p.name == name and p.description and p.runtimes
    assert p.arch is None or p.arch in KNOWN_ARCHES
    assert set(p.precision_preference) <= set(p.precisions) <= set(KNOWN_PRECISIONS)
    assert p.quantization_preset is None or p.quantization_preset in QUANTIZATION_PRESETS
    assert p.budget_ms("digits") > 0 and p.budget_ms(None) > 0
    if p.static_shapes:
        assert all(b == 1 for b in p.batch_sizes)
    if p.requires_quantized:
        assert p.precisions == ("int8",)
    for task, shapes in p.input_shapes.items():
        assert all(len(s) >= 1 and all(d >= 1 for d in s) for s in shapes), task
    # every accelerator target has a documented operator list (CPU ones are asked at run time)
    for provider in p.onnxruntime_providers:
        if provider not in ("CPUExecutionProvider", "CUDAExecutionProvider"):
            assert load_operator_list("onnxruntime", provider) is not None, provider
    if p.openvino_device not in (None, "CPU"):
        assert load_operator_list("openvino", p.openvino_device) is not None
    json.dumps(p.to_dict())  # JSON-ready for reports


def test_new_profiles_describe_their_targets():
    arm = load_profile("cpu-arm64")
    assert arm.runtimes == {"onnxruntime": "CPUExecutionProvider"} and arm.arch == "aarch64"
    assert arm.quantization_preset == "arm64" and not arm.static_shapes

    orin = load_profile("jetson-orin")
    assert orin.onnxruntime_providers == ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert orin.onnxruntime_provider_options["trt_fp16_enable"] == "1"  # fp32 ONNX built as an FP16 engine
    assert "fp32" in orin.precisions and "int8" in orin.precisions and orin.quantization_preset == "tensorrt"

    npu = load_profile("intel-npu")
    assert npu.runtimes == {"openvino": "NPU"} and npu.static_shapes and npu.batch_sizes == (1,)
    assert set(npu.precisions) == {"fp16", "int8"} and npu.shapes_for("digits") == ((1, 1, 28, 28),)

    qnn = load_profile("qualcomm-npu")
    assert qnn.runtimes == {"onnxruntime": "QNNExecutionProvider"} and qnn.static_shapes and qnn.requires_quantized
    assert qnn.onnxruntime_provider_options == {"backend_type": "htp"} and qnn.quantization_preset == "qnn-qdq-uint8"


def test_cpu_x86_gets_the_defaults_of_the_optional_fields():
    p = load_profile("cpu-x86")
    assert p.arch == "x86_64" and not p.static_shapes and not p.requires_quantized
    assert p.preferred_precisions == () and p.precision_preference == p.precisions
    assert p.input_shapes == {} and p.quantization_preset is None
    assert p.onnxruntime_providers == ("CPUExecutionProvider",) and p.onnxruntime_provider_options == {}
    assert not p.matches_host_arch("aarch64") and p.matches_host_arch("x86_64")


def test_host_arch_spellings():
    assert host_arch("AMD64") == "x86_64" and host_arch("arm64") == "aarch64" and host_arch("aarch64") == "aarch64"
    orin = load_profile("jetson-orin")
    assert orin.matches_host_arch("ARM64") and not orin.matches_host_arch("x86_64")


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ProfileError) as err:
        load_profile("jetson-nano-9000")
    assert "jetson-nano-9000" in str(err.value) and "qualcomm-npu" in str(err.value)


def shipped_text(name: str) -> str:
    return (ROOT / "devices" / "profiles" / f"{name}.toml").read_text()


def write(tmp_path: Path, text: str, name: str = "custom") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_missing_field_in_a_new_profile_names_file_and_field(tmp_path):
    text = shipped_text("qualcomm-npu").replace('precisions = ["int8"]\n', "")
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    msg = str(err.value)
    assert str(path) in msg and "missing field 'precisions'" in msg


@pytest.mark.parametrize(
    "profile,old,new,field",
    [
        ("cpu-arm64", 'arch = "aarch64"', 'arch = "sparc"', "arch"),
        ("qualcomm-npu", "static_shapes = true", 'static_shapes = "yes"', "static_shapes"),
        ("qualcomm-npu", "requires_quantized = true", "requires_quantized = 1", "requires_quantized"),
        ("cpu-arm64", 'preferred_precisions = ["int8", "fp32"]', 'preferred_precisions = ["fp16"]',
         "preferred_precisions"),
        ("cpu-arm64", 'quantization_preset = "arm64"', 'quantization_preset = "avx9000"', "quantization_preset"),
        ("intel-npu", "digits = [[1, 1, 28, 28]]", "digits = [[1, 0, 28, 28]]", "input_shapes.digits"),
        ("intel-npu", "digits = [[1, 1, 28, 28]]", "digits = [1, 1, 28, 28]", "input_shapes.digits"),
        ("jetson-orin", 'fallback_providers = ["CUDAExecutionProvider"]',
         'fallback_providers = ["TensorrtExecutionProvider"]', "runtimes.onnxruntime.fallback_providers"),
        ("jetson-orin", "trt_fp16_enable = true ", "trt_fp16_enable = [1] ",
         "runtimes.onnxruntime.provider_options.trt_fp16_enable"),
    ],
)
def test_bad_optional_field_names_file_and_field(tmp_path, profile, old, new, field):
    text = shipped_text(profile)
    assert old in text
    path = write(tmp_path, text.replace(old, new))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    msg = str(err.value)
    assert str(path) in msg and f"'{field}'" in msg and "must be" in msg


def test_unknown_optional_field_is_still_rejected(tmp_path):
    path = write(tmp_path, shipped_text("intel-npu").replace("[runtimes.openvino]\n", "[runtimes.openvino]\nfallback_providers = []\n"))
    with pytest.raises(ProfileError, match=r"unknown field.*runtimes\.openvino\.fallback_providers"):
        load_profile(path)


def test_operator_lists_parse_and_cite_their_source():
    for path in sorted((ROOT / "devices" / "profiles" / "ops").glob("*.txt")):
        runtime, _, target = path.stem.partition("-")
        listing = load_operator_list(runtime, target)
        assert listing is not None and len(listing.ops) > 50, path
        header = path.read_text().split("\n\n")[0]
        assert "Source" in header or "taken from" in header, path
    trt = load_operator_list("onnxruntime", "TensorrtExecutionProvider")
    assert trt.lookup("ai.onnx:LayerNormalization") is not None and trt.lookup("ai.onnx:Det") is None
    qnn = load_operator_list("onnxruntime", "QNNExecutionProvider")
    assert "Gelu" in qnn.lookup("ai.onnx:Erf")  # only as part of the fused Gelu pattern
    assert operator_list_path("openvino", "NPU").is_file()


# --- compat ---------------------------------------------------------------------------------------


def test_dynamic_batch_fails_a_static_target_and_passes_the_cpu(tmp_path):
    model = tiny_onnx(tmp_path / "m" / "tiny.onnx")
    cpu = check_model("cpu-x86", model)
    assert cpu["ok"] and cpu["applicable"] and [c["check"] for c in cpu["checks"]] == ["static_shapes", "operators", "precision"]
    assert check(cpu, "operators")["source"] == "runtime" and "MatMul" in check(cpu, "operators")["ops"]

    qnn = check_model("qualcomm-npu", model)
    assert not qnn["ok"] and qnn["target"] == "QNNExecutionProvider"
    static = check(qnn, "static_shapes")
    assert not static["ok"] and "'x' axis 0 (N)" in static["reason"] and "static shapes" in static["reason"]
    assert "--dim_param N --dim_value 1" in static["reason"]
    assert check(qnn, "operators")["ok"]  # Relu, MatMul are in QNN EP's table
    assert not check(qnn, "precision")["ok"]  # fp32, not quantized


def test_operator_outside_the_documented_list_is_named(tmp_path):
    model = tiny_onnx(tmp_path / "det.onnx", batch=1, extra_op="Det")
    qnn = check(check_model("qualcomm-npu", model), "operators")
    assert not qnn["ok"] and qnn["unsupported"] == ["Det"] and "Det" in qnn["reason"]
    assert qnn["source"] == ["devices/profiles/ops/onnxruntime-QNNExecutionProvider.txt"]

    orin = check(check_model("jetson-orin", model), "operators")
    assert not orin["ok"] and orin["unsupported"] == ["Det"]
    assert "CUDAExecutionProvider" in orin["reason"]  # the fallback has no documented list here

    assert check(check_model("cpu-x86", model), "operators")["ok"]  # onnxruntime's CPU EP runs Det


def test_precision_mismatch_is_named(tmp_path):
    fp16 = check(check_model("cpu-arm64", tiny_onnx(tmp_path / "a.onnx", precision="fp16")), "precision")
    assert not fp16["ok"] and "'fp16'" in fp16["reason"] and "['fp32', 'int8']" in fp16["reason"]

    fake = check(check_model("cpu-arm64", tiny_onnx(tmp_path / "b.onnx", precision="int8")), "precision")
    assert not fake["ok"] and "labelled int8" in fake["reason"]


def test_quantized_static_model_passes_the_qualcomm_npu_and_scheme_is_checked(tmp_path):
    uint8 = tiny_qdq_onnx(tmp_path / "q" / "model.int8.onnx")
    result = check_model("qualcomm-npu", uint8)
    assert result["ok"], result
    assert "MatMul" in check(result, "operators")["conditions"]  # HTP input-type restriction listed

    # TensorRT takes symmetric int8 only: uint8 with zero point 128 is named
    trt = check(check_model("jetson-orin", uint8), "precision")
    assert not trt["ok"] and "uint8" in trt["reason"] and "zero points" in trt["reason"]
    symmetric = tiny_qdq_onnx(tmp_path / "s" / "model.int8.onnx", zero_point=0, qtype="int8")
    assert check_model("jetson-orin", symmetric)["ok"]
    # ... and QNN's HTP wants uint8/uint16, so the int8 one fails there
    assert not check(check_model("qualcomm-npu", symmetric), "precision")["ok"]


def test_profile_input_shapes_must_fit(tmp_path):
    model = tiny_qdq_onnx(tmp_path / "model.int8.onnx", task="digits")  # [1,4] vs digits [1,1,28,28]
    static = check(check_model("qualcomm-npu", model), "static_shapes")
    assert not static["ok"] and "[1, 1, 28, 28]" in static["reason"] and "'digits'" in static["reason"]


def test_openvino_ir_on_the_npu_and_the_cpu(tmp_path):
    src = tiny_onnx(tmp_path / "src.onnx")
    ir = tiny_ir(src, tmp_path / "ir" / "fp16" / "model.xml", "fp16")
    npu = check_model("intel-npu", ir)
    assert npu["target"] == "NPU" and not npu["ok"]
    assert not check(npu, "static_shapes")["ok"] and "'x' axis 0" in check(npu, "static_shapes")["reason"]
    ops = check(npu, "operators")
    assert ops["ok"] and ops["source"] == ["devices/profiles/ops/openvino-NPU.txt"]  # no NPU on this host
    assert check(npu, "precision")["ok"]

    cpu = check_model("cpu-x86", ir)
    assert cpu["ok"] and check(cpu, "operators")["source"] == "runtime"  # OpenVINO query_model on CPU


def test_model_of_a_runtime_the_profile_lacks_is_not_applicable(tmp_path):
    result = check_model("intel-npu", tiny_onnx(tmp_path / "m.onnx"))
    assert result["applicable"] is False and not result["ok"]
    assert result["checks"] == [{"check": "runtime", "ok": False, "reason": result["checks"][0]["reason"]}]
    assert "no onnxruntime runtime" in result["checks"][0]["reason"]


def test_unreadable_model_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x01garbage" * 10)
    with pytest.raises(CompatError, match="broken.onnx"):
        check_model("cpu-x86", bad)
    with pytest.raises(CompatError, match="missing.onnx: model file not found"):
        check_model("cpu-x86", tmp_path / "missing.onnx")


def test_check_all_and_cli(tmp_path):
    models = tmp_path / "exports"
    tiny_onnx(models / "a" / "model.onnx")
    tiny_qdq_onnx(models / "a" / "model.int8.onnx")
    tiny_onnx(models / ".cache" / "model.onnx")  # hidden folders are not walked
    results = check_all(load_profile("qualcomm-npu"), models)
    assert [r["model"] for r in results] == ["a/model.int8.onnx", "a/model.onnx"]
    assert [r["ok"] for r in results] == [True, False]

    out = tmp_path / "compat.json"
    proc = subprocess.run(
        [sys.executable, "-m", "devices.compat", "--profile", "qualcomm-npu", "--profile", "cpu-x86",
         "--models", str(models), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr  # a model fails a check
    assert "FAIL" in proc.stdout and "static_shapes" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("4 model checks: 3 ok, 1 failed")
    written = json.loads(out.read_text())
    assert {(r["profile"], r["model"], r["ok"]) for r in written} == {
        ("qualcomm-npu", "a/model.int8.onnx", True), ("qualcomm-npu", "a/model.onnx", False),
        ("cpu-x86", "a/model.int8.onnx", True), ("cpu-x86", "a/model.onnx", True),
    }


def test_compat_without_openvino_skips_ir_models_and_hidden_folders(tmp_path):
    """As on a device with only onnxruntime: IR files are reported, not read; hidden folders are not walked."""
    models = tmp_path / "exports"
    tiny_ir(tiny_onnx(models / "a" / "model.onnx"), models / "a" / "openvino" / "model.xml", "fp32")
    (models / "a" / ".partial").mkdir()
    (models / "a" / ".partial" / "model.onnx").write_bytes(b"half a model")  # read, it would be an error (exit 2)
    code = ("import sys; sys.modules['openvino'] = None; from devices.compat.cli import main; "
            f"sys.exit(main(['--profile', 'cpu-x86', '--profile', 'cpu-arm64', '--models', {str(models)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[:3] for line in lines if not line.startswith(" ")][:4] == [
        ["cpu-x86", "ok", "a/model.onnx"], ["cpu-x86", "skip", "a/openvino/model.xml"],
        ["cpu-arm64", "ok", "a/model.onnx"], ["cpu-arm64", "n/a", "a/openvino/model.xml"]]
    assert "openvino is not installed" in proc.stdout
    assert lines[-1].startswith("4 model checks: 2 ok, 0 failed, 1 not applicable") and "1 not checkable here" in lines[-1]
