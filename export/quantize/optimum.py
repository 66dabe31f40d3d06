"""INT8 ONNX with optimum's AutoQuantizationConfig presets (arm64, avx2, avx512, avx512_vnni, ppc64le, tensorrt).

optimum's ``fit`` only iterates its "dataset" for {input name: sample} rows, so the calibration array is
passed as such a list, and the CalibrationConfig is built directly (AutoCalibrationConfig.minmax would only
copy a ``datasets.Dataset``'s name, split and size into it): the ``datasets`` package is not a dependency
of the project. As in export/quantize/onnx.py, only Conv/MatMul/Gemm are quantized. tensorrt is symmetric
int8 for activations and weights (zero points 0), with QDQ pairs on the weights, as TensorRT takes them.
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path

import numpy as np

from devices.io import scratch_dir
from export.files import move_into_place
from export.metadata import int8_metadata, read_metadata, write_metadata
from export.quantize.calibration import batch_size, check_calibration
from export.quantize.onnx import OP_TYPES, onnx_input

PRESETS = ("arm64", "avx2", "avx512", "avx512_vnni", "ppc64le", "tensorrt")
QUANTIZER = "optimum-ortquantizer"


def quantize_with_optimum(src: str | Path, dst: str | Path, calibration: np.ndarray, *, preset: str,
                          per_channel: bool = True) -> Path:
    """Static QDQ INT8 of `src` with optimum's AutoQuantizationConfig.<preset>, at `dst`; returns dst.

    Shape inference first (onnxruntime's quant_pre_process, as export/quantize/onnx.py does), then
    ORTQuantizer.fit (MinMax over the calibration array, symmetric ranges where the preset's
    activations are symmetric) and ORTQuantizer.quantize. The source metadata is kept, with
    "precision", "quantizer" and "preset" added.
    """
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig, CalibrationConfig

    if preset not in PRESETS:
        raise ValueError(f"optimum preset {preset!r}: expected one of {list(PRESETS)}")
    src, dst = Path(src), Path(dst)
    metadata = read_metadata(src)
    input_name, dims = onnx_input(src)
    calibration = check_calibration(calibration, dims, str(src))
    factory = getattr(AutoQuantizationConfig, preset)
    kwargs = {"per_channel": per_channel, "operators_to_quantize": list(OP_TYPES)}
    if "is_static" in inspect.signature(factory).parameters:  # tensorrt is static-only and takes no is_static
        kwargs["is_static"] = True
    qconfig = factory(**kwargs)
    # One row per sample; optimum's reader stacks `batch_size` rows into one run (a fixed batch: exactly it).
    rows = [{input_name: sample} for sample in calibration]
    calibration_config = CalibrationConfig(
        dataset_name="calibration array", dataset_config_name="numpy", dataset_split="calibration",
        dataset_num_samples=len(rows), method=CalibrationMethod.MinMax,
    )
    optimum_log = logging.getLogger("optimum.onnxruntime.quantization")
    with scratch_dir(dst.parent) as tmp:
        model_dir = tmp / "source"
        model_dir.mkdir()
        quant_pre_process(str(src), str(model_dir / "model.onnx"))
        level = optimum_log.level
        optimum_log.setLevel(logging.ERROR)  # "could not load the config": there is no transformers config
        try:
            quantizer = ORTQuantizer.from_pretrained(model_dir, file_name="model.onnx")
        finally:
            optimum_log.setLevel(level)
        ranges = quantizer.fit(
            dataset=rows, calibration_config=calibration_config,
            onnx_augmented_model_name=tmp / "augmented.onnx",
            operators_to_quantize=qconfig.operators_to_quantize, batch_size=min(batch_size(dims), len(rows)),
            force_symmetric_range=qconfig.activations_symmetric,
        )
        quantized = quantizer.quantize(quantization_config=qconfig, save_dir=tmp / "quantized",
                                       calibration_tensors_range=ranges) / "model_quantized.onnx"
        # replace=True: the file carries the source's metadata contract, not the tools' notes.
        write_metadata(quantized, int8_metadata(metadata, QUANTIZER, preset), replace=True)
        move_into_place(quantized, dst)
    return dst
