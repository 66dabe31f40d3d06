"""export.variants on the project's own tiny classifier: per-profile static-shape and preset INT8 variants,
their compatibility with each shipped device profile, and their accuracy measured on this CPU."""
from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from devices.compat import check_model, format_results
from devices.profile import known_profiles as list_profiles, load_profile
from export.metadata import read_ir_metadata, read_metadata
from export.variants import TARGETS_DIR, evaluate_targets, prepare_for_profile
from pipeline.tasks.registry import get_task

ROOT = Path(__file__).resolve().parents[1]
TASK = "digits"
CLASSES = 10
# What each shipped profile needs beyond the standard exports: (runtime, precision) -> preset.
EXPECTED = {
    "cpu-x86": {},
    "cpu-arm64": {("onnxruntime", "int8"): "arm64"},
    "jetson-orin": {("onnxruntime", "int8"): "tensorrt"},
    "intel-npu": {("openvino", "fp16"): None, ("openvino", "int8"): "nncf-performance"},
    "qualcomm-npu": {("onnxruntime", "int8"): "qnn-qdq-uint8"},
}
MIN_AGREEMENT = {"fp32": 1.0, "fp16": 0.97, "int8": 0.8}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The real architecture (tiny params): Classifier(fresh_encoder) exported to ONNX and OpenVINO IR."""
    import torch

    from export.onnx import export_onnx
    from export.openvino import export_openvino
    from modalities import get_modality
    from pipeline.tasks.classification.model import Classifier
    from pipeline.models.loading import fresh_encoder
    from pipeline.config.params import load

    params = load(ROOT / "tests" / "params.tiny.yaml")
    modality = get_modality("image", params)
    model = Classifier(fresh_encoder(modality, params), CLASSES).eval()
    spec = modality.input_spec()
    metadata = {"task": TASK, "labels": [str(i) for i in range(CLASSES)], "input_name": spec["name"],
                "input_shape": spec["shape"], "precision": "fp32", "method": "random"}
    out = tmp_path_factory.mktemp("export")
    onnx_path = export_onnx(model, modality.example_input(2), out / "model.onnx", metadata,
                            input_name=spec["name"], output_names=["logits"], opset=params.export.opset)
    export_openvino(onnx_path, out / "openvino")
    rng = np.random.default_rng(0)
    x = rng.random((301, *spec["shape"][1:]), dtype=np.float32)  # pixels in [0, 1], as the model takes them
    with torch.inference_mode():
        y = model(torch.from_numpy(x)).numpy().argmax(-1)
    from devices.runtimes import open_session

    reference = open_session(onnx_path).predict(x)  # the fp32 export, as the quantize stage compares
    calibration = rng.random((32, *spec["shape"][1:]), dtype=np.float32)
    return {"dir": out, "metadata": metadata, "x": x, "y": y, "reference": reference, "calibration": calibration}


def _quantization(path: Path) -> dict:
    """Element types and zero points of an ONNX model's Q/DQ tensors (int32 biases left out)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}

    def is_weight(node) -> bool:  # DQ of a stored integer weight, or a Q/DQ pair on a float weight
        source = node.input[0]
        if source in inits:
            return True
        parent = producer.get(source)
        return parent is not None and parent.op_type == "QuantizeLinear" and parent.input[0] in inits

    activation_types, weight_types, zero_points = set(), set(), []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        zp = inits[node.input[2]]
        if zp.dtype == np.int32:  # biases: int32 with scale = input scale x weight scale
            continue
        zero_points.append(zp)
        (weight_types if is_weight(node) else activation_types).add(zp.dtype.name)
    return {"activations": activation_types, "weights": weight_types, "zero_points": zero_points}


def _fixed_dims(path: Path) -> tuple[list, list]:
    if path.suffix == ".onnx":
        import onnx

        graph = onnx.load(str(path)).graph
        dims = [[d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
                for v in [*graph.input, *graph.output]]
        return dims[0], dims[1:]
    import openvino as ov

    model = ov.Core().read_model(str(path))
    shape = [[d.get_length() if d.is_static else None for d in p.get_partial_shape()]
             for p in [*model.inputs, *model.outputs]]
    return shape[0], shape[1:]


@pytest.mark.parametrize("name", list_profiles())
def test_prepare_and_evaluate_shipped_profile(name, exported):
    profile = load_profile(name)
    export_dir = exported["dir"]
    entries = prepare_for_profile(profile, export_dir, exported["calibration"], TASK)

    if name in EXPECTED:
        assert {(e["runtime"], e["precision"]): e["preset"] for e in entries} == EXPECTED[name]
    target_dir = export_dir / TARGETS_DIR / name
    written = [p.relative_to(export_dir).as_posix() for p in target_dir.rglob("*") if p.suffix in (".onnx", ".xml")]
    assert sorted(written) == sorted(e["path"] for e in entries)
    for entry in entries:
        path = export_dir / entry["path"]
        assert path.is_file() and entry["profile"] == name
        assert entry["precision"] in profile.precisions and entry["runtime"] in profile.runtimes
        assert entry["static_shape"] == profile.static_shapes
        assert (entry["quantizer"] is not None) == (entry["precision"] == "int8")

        # metadata: the source's, plus what this variant is
        meta = read_metadata(path) if path.suffix == ".onnx" else read_ir_metadata(path)
        for key in ("task", "labels", "method", "input_name"):
            assert meta[key] == exported["metadata"][key]
        assert meta["precision"] == entry["precision"] and meta["target_profile"] == name
        if entry["quantizer"]:
            assert meta["quantizer"] == entry["quantizer"] and meta.get("preset") == entry["preset"]

        # static shapes: every input/output dim fixed, the input to the profile's shape for the task
        input_dims, output_dims = _fixed_dims(path)
        if profile.static_shapes:
            assert input_dims == list(profile.shapes_for(TASK)[0]) == entry["input_shape"] == meta["input_shape"]
            assert output_dims == [[input_dims[0], CLASSES]]
        else:
            assert input_dims[0] is None and meta["input_shape"] == exported["metadata"]["input_shape"]

        result = check_model(profile, path)
        assert result["ok"], format_results([result])

    results = evaluate_targets(export_dir, entries, exported["x"], [exported["reference"]],
                               get_task("classification").score(None, SimpleNamespace(y=exported["y"]), {}))
    assert sorted(results) == sorted(e["path"] for e in entries)
    for entry in entries:
        r = results[entry["path"]]
        assert "error" not in r, r
        assert r["top1_agreement"] >= MIN_AGREEMENT[entry["precision"]], (entry, r)
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["size_bytes"] > 0
        assert r["measured_with"] in ("onnxruntime CPUExecutionProvider", "OpenVINO CPU")


def test_reference_is_not_degenerate(exported):
    """Agreement is only informative if the fp32 model does not answer one class for everything."""
    assert len(np.unique(exported["reference"].argmax(-1))) >= 3


def test_preset_quantization_types(exported):
    """QNN: uint8 weights and activations. TensorRT: symmetric int8 (all zero points 0). arm64: u8 x s8."""
    targets = exported["dir"] / TARGETS_DIR
    for name in ("qualcomm-npu", "jetson-orin", "cpu-arm64"):
        if not (targets / name / "model.int8.onnx").is_file():
            prepare_for_profile(load_profile(name), exported["dir"], exported["calibration"], TASK)

    qnn = _quantization(targets / "qualcomm-npu" / "model.int8.onnx")
    assert qnn["activations"] == {"uint8"} and qnn["weights"] == {"uint8"}

    trt = _quantization(targets / "jetson-orin" / "model.int8.onnx")
    assert trt["activations"] == {"int8"} and trt["weights"] == {"int8"}
    assert trt["zero_points"] and not any(zp.any() for zp in trt["zero_points"])

    arm = _quantization(targets / "cpu-arm64" / "model.int8.onnx")
    assert arm["activations"] == {"uint8"} and arm["weights"] == {"int8"}


def test_static_profile_without_preset(exported, tmp_path):
    """A static profile with no preset and both runtimes: static fp32 ONNX/IR, default INT8 quantizers on the
    static models, a batch of 4 (the evaluation pads the last batch); a stale file of an earlier run goes."""
    toml = tmp_path / "static-box.toml"
    toml.write_text(textwrap.dedent("""
        description = "test: static shapes, batch 4, no preset"
        threads = 0
        batch_sizes = [4]
        warmup_iterations = 1
        precisions = ["fp32", "int8"]
        static_shapes = true
        arch = "any"
        [input_shapes]
        digits = [[4, 1, 28, 28]]
        [runtimes.onnxruntime]
        provider = "CPUExecutionProvider"
        [runtimes.openvino]
        device = "CPU"
        [repetitions]
        min_iterations = 1
        min_seconds = 0.0
        [budget_ms]
        default = 5.0
    """))
    profile = load_profile(toml)
    stale = exported["dir"] / TARGETS_DIR / profile.name / "model.old.onnx"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"left over")

    entries = prepare_for_profile(profile, exported["dir"], exported["calibration"][:30], TASK)  # 30 -> 28 used
    assert not stale.exists()
    assert {(e["runtime"], e["precision"]): e["quantizer"] for e in entries} == {
        ("onnxruntime", "fp32"): None, ("onnxruntime", "int8"): "onnxruntime-static-qdq",
        ("openvino", "fp32"): None, ("openvino", "int8"): "nncf-ptq"}
    for entry in entries:
        path = exported["dir"] / entry["path"]
        input_dims, output_dims = _fixed_dims(path)
        assert input_dims == [4, 1, 28, 28] and output_dims == [[4, CLASSES]]
        assert check_model(profile, path)["ok"]
    results = evaluate_targets(exported["dir"], entries, exported["x"], [exported["reference"]],
                               get_task("classification").score(None, SimpleNamespace(y=exported["y"]), {}))
    for entry in entries:
        r = results[entry["path"]]
        assert "error" not in r, r
        assert r["top1_agreement"] >= MIN_AGREEMENT[entry["precision"]], (entry, r)
        if entry["precision"] == "fp32":
            assert r["max_abs_diff"] < 1e-4


def test_profile_served_by_standard_exports_writes_nothing(exported):
    stale = exported["dir"] / TARGETS_DIR / "cpu-x86" / "model.int8.onnx"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"left over")
    assert prepare_for_profile("cpu-x86", exported["dir"], exported["calibration"], TASK) == []
    assert not stale.parent.exists()


def test_npu_int8_reuses_the_standard_int8_made_with_its_preset(exported, tmp_path):
    """intel-npu takes NNCF's performance preset: a standard openvino-int8 made with it is reshaped, not quantized
    again; one made with another preset is not reused."""
    import shutil

    from export.quantize.openvino import quantize_openvino_int8
    from export.standard import IR_FILES

    profile = load_profile("intel-npu")
    for preset, reused in (("performance", True), ("mixed", False)):
        export_dir = tmp_path / preset
        shutil.copytree(exported["dir"], export_dir, ignore=shutil.ignore_patterns(TARGETS_DIR))
        standard = quantize_openvino_int8(export_dir / IR_FILES["fp32"], export_dir / "openvino-int8",
                                          exported["calibration"], preset=preset)
        (entry,) = [e for e in prepare_for_profile(profile, export_dir, exported["calibration"], TASK)
                    if e["precision"] == "int8"]
        assert entry["route"].startswith(f"{IR_FILES['int8']} (NNCF") == reused, entry["route"]
        path = export_dir / entry["path"]
        assert _fixed_dims(path)[0] == [1, 1, 28, 28] and check_model(profile, path)["ok"]
        meta = read_ir_metadata(path)
        assert meta["preset"] == "nncf-performance" and meta["target_profile"] == "intel-npu"
        if reused:  # the same quantized weights, only the input fixed
            assert path.with_suffix(".bin").read_bytes() == standard.with_suffix(".bin").read_bytes()


def test_one_preset_table_serves_every_preset_a_profile_may_name():
    """export.quantize.presets is the table devices/profile.py validates against; each preset maps to its runtime's
    quantizer, and a preset of another runtime leaves the runtime's default."""
    from devices.profile import QUANTIZATION_PRESETS
    from export.quantize.presets import DEFAULTS, PRESET_NAMES, PRESETS, quantizer_for

    assert PRESET_NAMES == QUANTIZATION_PRESETS
    assert {name: q.runtime for name, q in PRESETS.items() if q.runtime == "openvino"} == {
        "nncf-performance": "openvino", "nncf-mixed": "openvino"}
    assert quantizer_for("onnxruntime", "nncf-mixed") is DEFAULTS["onnxruntime"]
    assert quantizer_for("openvino", "arm64") is DEFAULTS["openvino"]
    assert quantizer_for("onnxruntime", "tensorrt").name == "optimum-ortquantizer"
    with pytest.raises(ValueError, match="runtime"):
        quantizer_for("tflite", None)
