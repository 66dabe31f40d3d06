"""INT8 OpenVINO IR via NNCF post-training quantization, calibrated on given inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export.metadata import get_ir_metadata, int8_metadata, read_ir, set_ir_metadata
from export.openvino import save_ir
from export.quantize.calibration import batches, check_calibration

QUANTIZER = "nncf-ptq"
PRESETS = ("performance", "mixed")  # nncf.QuantizationPreset values, by name


def profile_preset(preset: str) -> str:
    """A device profile's quantization_preset name for an NNCF preset ("performance" -> "nncf-performance")."""
    return f"nncf-{preset}"


def quantize_openvino_int8(model_xml: str | Path, out_dir: str | Path, calibration: np.ndarray,
                           *, transformer: bool | None = None, preset: str | None = None) -> Path:
    """Quantize the (FP32) IR `model_xml` to out_dir/model.xml; returns that path.

    transformer: use NNCF's transformer scheme (SmoothQuant, attention-aware placement);
    None detects it from the graph (attention: a fused ScaledDotProductAttention, which
    OpenVINO's ONNX frontend makes of MatMul-Softmax-MatMul, or a MatMul of two activations).
    preset: an nncf.QuantizationPreset by name; None takes NNCF's default for the model type.
    The rt_info metadata is kept, with "precision": "int8", "quantizer" and, for a named preset,
    "preset" (as device profiles name it, see profile_preset) added.
    """
    import nncf

    if preset is not None and preset not in PRESETS:
        raise ValueError(f"NNCF preset {preset!r}: expected one of {list(PRESETS)} or None")
    model_xml = Path(model_xml)
    model = read_ir(model_xml)
    if len(model.inputs) != 1:
        raise ValueError(f"{model_xml}: expected a model with one input, got {len(model.inputs)}")
    shape = model.inputs[0].get_partial_shape()
    dims = [d.get_length() if d.is_static else None for d in shape]
    calibration = check_calibration(calibration, dims, str(model_xml))
    metadata = get_ir_metadata(model)

    _keep_dims_of_reduce_before_matmul(model)
    if transformer is None:
        transformer = _has_attention(model)
    # One dataset item per sample (or per fixed batch), so subset_size counts samples and every
    # calibration sample is used.
    step = dims[0] or 1
    items = list(batches(calibration, step))
    quantized = nncf.quantize(
        model, nncf.Dataset(items), subset_size=len(items),
        model_type=nncf.ModelType.TRANSFORMER if transformer else None,
        preset=None if preset is None else nncf.QuantizationPreset[preset.upper()],
    )
    set_ir_metadata(quantized, int8_metadata(metadata, QUANTIZER, profile_preset(preset) if preset else None))
    # The remaining float constants (biases, norms) stay FP32.
    return save_ir(quantized, Path(out_dir) / "model.xml", compress_to_fp16=False)


def _keep_dims_of_reduce_before_matmul(model) -> int:
    """Rewrite ReduceMean(keep_dims=False) -> MatMul as ReduceMean(keep_dims=True) + Squeeze.

    Works around an OpenVINO CPU plugin bug (2026.4): when NNCF's SmoothQuant puts a per-channel
    Multiply (+ FakeQuantize) between a keep_dims=False ReduceMean (mean-pooling over tokens)
    and a MatMul (the classifier head), the plugin fuses the Multiply into the reduction and
    applies the scale along the wrong axis: top-1 agreement with FP32 dropped to chance level
    on a mean-pool + Linear head. With keep_dims=True + Squeeze the result is correct. The
    rewrite itself is exact.
    """
    import openvino.opset13 as ops

    rewritten = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "ReduceMean" or node.get_attributes().get("keep_dims", True):
            continue
        consumers = node.output(0).get_target_inputs()
        if not any(c.get_node().get_type_name() == "MatMul" for c in consumers):
            continue
        axes = node.input_value(1)
        squeezed = ops.squeeze(ops.reduce_mean(node.input_value(0), axes, keep_dims=True), axes)
        squeezed.set_friendly_name(node.get_friendly_name())
        squeezed.output(0).set_names(node.output(0).get_names())
        for consumer in consumers:
            consumer.replace_source_output(squeezed.output(0))
        rewritten += 1
    if rewritten:
        model.validate_nodes_and_infer_types()
    return rewritten


def _has_attention(model) -> bool:
    """True for a ScaledDotProductAttention op, or a MatMul of two activations (Q @ K^T, attn @ V)."""
    def is_weight(value) -> bool:
        node = value.get_node()
        while node.get_type_name() in ("Convert", "Reshape", "Transpose"):  # FP16 decompression etc.
            node = node.input_value(0).get_node()
        return node.get_type_name() == "Constant"

    return any(
        op.get_type_name() == "ScaledDotProductAttention" or op.get_type_name() == "MatMul" and not any(is_weight(op.input_value(i)) for i in range(2))
        for op in model.get_ordered_ops()
    )
