"""INT8 ONNX via onnxruntime static quantization (QDQ), calibrated on given inputs: the default ONNX quantizer.

Settings, for x86 CPUs (the latency targets here):
  * QUInt8 activations x QInt8 weights ("U8S8"): the native x86 int8 GEMM path (VPDPBUSD on
    VNNI, VPMADDUBSW before it multiplies unsigned by signed bytes). S8S8 makes MLAS shift the
    activations to u8 first; on a 2-core AVX-512 VNNI box it ran ~1.5x slower with the same
    accuracy. reduce_range stays off: it only helps on pre-VNNI CPUs, at a cost in accuracy.
  * Only Conv/MatMul/Gemm are quantized: those are the ops with int8 kernels. Quantizing
    LayerNormalization, Softmax, Add... only wraps float kernels in Q/DQ pairs, adding error
    and time (measured: slower and lower top-1 agreement on a timm-Block model).
  * Per-channel weights by default: ViT linear layers have very different per-output ranges.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from devices.io import scratch_dir
from export.files import move_into_place
from export.metadata import int8_metadata, read_metadata, write_metadata
from export.quantize.calibration import check_calibration, onnxruntime_reader

OP_TYPES = ["Conv", "MatMul", "Gemm"]
QUANTIZER = "onnxruntime-static-qdq"


def quantize_onnx_int8(onnx_path: str | Path, out_path: str | Path, calibration: np.ndarray,
                       per_channel: bool = True) -> Path:
    """Quantize `onnx_path` to INT8 QDQ at `out_path` (written atomically); returns out_path.

    The source metadata is kept, with "precision": "int8" and "quantizer" added.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if out_path.suffix != ".onnx":
        raise ValueError(f"{out_path}: ONNX output path must end in .onnx")
    metadata = read_metadata(onnx_path)  # rejects a missing or unreadable file, naming it
    input_name, input_shape = onnx_input(onnx_path)
    calibration = check_calibration(calibration, input_shape, str(onnx_path))

    with scratch_dir(out_path.parent) as tmp:
        # Shape inference + graph cleanup first: the quantizer needs shapes on every tensor,
        # and without it onnxruntime logs a warning and may quantize less.
        prepared = tmp / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared))
        quantized = tmp / "int8.onnx"
        quantize_static(
            str(prepared), str(quantized), onnxruntime_reader(calibration, input_name, input_shape),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=False,
            op_types_to_quantize=OP_TYPES,
        )
        # replace=True drops the provenance notes quant_pre_process adds ("onnx.infer", ...), so
        # the file carries exactly the source's metadata contract.
        write_metadata(quantized, int8_metadata(metadata, QUANTIZER), replace=True)
        move_into_place(quantized, out_path)
    return out_path


def graph_input(model) -> tuple[str, list[int | None]]:
    """Name and dims (None where symbolic) of an onnx.ModelProto's one real graph input."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"expected a model with one input, got {[i.name for i in inputs]}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    return inputs[0].name, dims


def onnx_input(path: str | Path) -> tuple[str, list[int | None]]:
    """graph_input of the ONNX file at `path` (weights not loaded)."""
    import onnx

    return graph_input(onnx.load(str(path), load_external_data=False))
