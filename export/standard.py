"""The standard exports of one task model, beside which every device variant lives:

    model.onnx                  FP32, dynamic batch, metadata           (export_standard)
    openvino/{fp32,fp16}/       OpenVINO IR of it
    model.int8.onnx             onnxruntime static QDQ INT8               (quantize_standard)
    openvino-int8/model.xml     NNCF INT8
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.openvino import PRECISIONS, export_openvino
from export.quantize.onnx import quantize_onnx_int8
from export.quantize.openvino import quantize_openvino_int8

ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
IR_FILES = {"fp32": "openvino/fp32/model.xml", "fp16": "openvino/fp16/model.xml", "int8": "openvino-int8/model.xml"}


def export_standard(model, modality, out: str | Path, metadata: Mapping[str, Any], *, opset: int,
                    precisions: Sequence[str] = PRECISIONS) -> dict[str, Path]:
    """model.onnx (`model` with the modality's input contract and `metadata`) and its OpenVINO IR per
    precision under `out`; returns {variant name ("onnx-fp32", "openvino-fp16", ...): path}."""
    from export.onnx import export_onnx  # the one module that needs torch

    out = Path(out)
    spec = modality.input_spec()
    onnx_path = export_onnx(model, modality.example_input(2), out / ONNX_FILES["fp32"], metadata,
                            input_name=spec["name"], output_names=list(model.output_names), opset=opset)
    irs = export_openvino(onnx_path, out / Path(IR_FILES["fp32"]).parents[1], precisions)
    return {"onnx-fp32": onnx_path, **{f"openvino-{p}": xml for p, xml in irs.items()}}


def quantize_standard(out: str | Path, calibration: np.ndarray, *, per_channel: bool = True,
                      nncf_preset: str | None = None) -> dict[str, Path]:
    """INT8 of the standard FP32 exports under `out`: {"onnx-int8": path, "openvino-int8": path}."""
    out = Path(out)
    onnx_int8 = quantize_onnx_int8(out / ONNX_FILES["fp32"], out / ONNX_FILES["int8"], calibration,
                                   per_channel=per_channel)
    ov_int8 = quantize_openvino_int8(out / IR_FILES["fp32"], (out / IR_FILES["int8"]).parent, calibration,
                                     preset=nncf_preset)
    return {"onnx-int8": onnx_int8, "openvino-int8": ov_int8}
