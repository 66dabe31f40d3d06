"""INT8 ONNX for onnxruntime's QNN execution provider (Qualcomm HTP): the "qnn-qdq-uint8" preset.

onnxruntime's ``qnn_preprocess_model`` + ``get_qnn_qdq_config`` (uint8 activations and weights, every op
quantized as the HTP needs) on a static-shape model. Per-tensor weights: QNN takes per-channel weights
only as signed symmetric int8.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from devices.io import scratch_dir
from export.files import move_into_place
from export.metadata import int8_metadata, read_metadata, write_metadata
from export.quantize.calibration import check_calibration, onnxruntime_reader
from export.quantize.onnx import onnx_input

PRESET = "qnn-qdq-uint8"
QUANTIZER = "onnxruntime-qnn-qdq"


def quantize_for_qnn(src: str | Path, dst: str | Path, calibration: np.ndarray) -> Path:
    """QDQ INT8 of `src` (static shapes: QNN needs them) at `dst`; returns dst.

    qnn_preprocess_model first (Erf sequence -> Gelu, ReduceMean sequence -> LayerNormalization), then
    get_qnn_qdq_config + quantize. The source metadata is kept, with "precision", "quantizer" and
    "preset" added.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

    src, dst = Path(src), Path(dst)
    metadata = read_metadata(src)
    input_name, dims = onnx_input(src)
    calibration = check_calibration(calibration, dims, str(src))
    with scratch_dir(dst.parent) as tmp:
        # onnxruntime 1.32's qnn_preprocess_model fails on any model with metadata_props (it dict.update()s
        # the protobuf entries): preprocess a copy without them; the metadata is set again afterwards.
        bare = onnx.load(str(src))
        del bare.metadata_props[:]
        preprocessed = tmp / "preprocessed.onnx"
        if qnn_preprocess_model(bare, str(preprocessed), fuse_layernorm=True):
            model = preprocessed
        else:
            model = tmp / "bare.onnx"
            onnx.save(bare, str(model))
        config = get_qnn_qdq_config(str(model), onnxruntime_reader(calibration, input_name, dims),
                                    activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8)
        quantized = tmp / "int8.onnx"
        quantize(str(model), str(quantized), config)
        write_metadata(quantized, int8_metadata(metadata, QUANTIZER, PRESET), replace=True)
        move_into_place(quantized, dst)
    return dst
