"""The one table of quantization presets a device profile may name -> the quantizer that applies it.

    arm64 .. tensorrt    optimum's AutoQuantizationConfig.<preset>, static QDQ     (export/quantize/optimum.py)
    qnn-qdq-uint8        onnxruntime's QNN QDQ config, uint8 activations/weights  (export/quantize/qnn.py)
    nncf-performance     NNCF post-training quantization with that                (export/quantize/openvino.py)
    nncf-mixed           nncf.QuantizationPreset, on OpenVINO IR

A runtime whose profile names no preset of its own gets the project's default quantizer (DEFAULTS):
onnxruntime static U8S8 QDQ (export/quantize/onnx.py), NNCF with its default preset. Every quantizer keeps
the source's metadata and adds "precision", "quantizer" and "preset" (the profile's name for it).
devices/profile.py validates profiles against the same names (PRESET_NAMES).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.quantize import optimum, qnn
from export.quantize import onnx as ort_static
from export.quantize import openvino as nncf_ptq


@dataclass(frozen=True)
class Quantizer:
    runtime: str     # "onnxruntime" (ONNX in and out) or "openvino" (IR .xml in and out)
    name: str        # recorded as metadata "quantizer"
    route: str       # how it is done, in words (a device variant's "route")
    run: Callable[..., Path]  # (src, dst, calibration, per_channel) -> dst

    def __call__(self, src: str | Path, dst: str | Path, calibration: np.ndarray, per_channel: bool = True) -> Path:
        return self.run(Path(src), Path(dst), calibration, per_channel)


def _optimum(preset: str) -> Quantizer:
    return Quantizer("onnxruntime", optimum.QUANTIZER,
                     f"optimum ORTQuantizer, AutoQuantizationConfig.{preset} (static QDQ, MinMax calibration)",
                     lambda src, dst, cal, per_channel: optimum.quantize_with_optimum(src, dst, cal, preset=preset,
                                                                                        per_channel=per_channel))


def _nncf(preset: str | None) -> Quantizer:
    # NNCF has no per-channel switch: its presets fix weight granularity.
    return Quantizer("openvino", nncf_ptq.QUANTIZER,
                     f"NNCF post-training quantization (export.quantize.openvino), preset "
                     f"{(preset or 'default for the model type').upper()}",
                     lambda src, dst, cal, per_channel: nncf_ptq.quantize_openvino_int8(src, dst.parent, cal,
                                                                                        preset=preset))


PRESETS: dict[str, Quantizer] = {
    **{preset: _optimum(preset) for preset in optimum.PRESETS},
    qnn.PRESET: Quantizer("onnxruntime", qnn.QUANTIZER,
                          "onnxruntime qnn_preprocess_model + get_qnn_qdq_config(activation_type=QUInt8, "
                          "weight_type=QUInt8) + quantize",
                          lambda src, dst, cal, per_channel: qnn.quantize_for_qnn(src, dst, cal)),
    **{nncf_ptq.profile_preset(preset): _nncf(preset) for preset in nncf_ptq.PRESETS},
}
PRESET_NAMES = tuple(PRESETS)

DEFAULTS: dict[str, Quantizer] = {
    "onnxruntime": Quantizer("onnxruntime", ort_static.QUANTIZER,
                             "export.quantize.onnx (onnxruntime quantize_static, U8S8 QDQ): the profile names "
                             "no ONNX preset", ort_static.quantize_onnx_int8),
    "openvino": _nncf(None),
}


def runtime_preset(runtime: str, preset: str | None) -> str | None:
    """`preset` when it is one of `runtime`'s presets, else None (the runtime's default quantizer applies)."""
    return preset if preset in PRESETS and PRESETS[preset].runtime == runtime else None


def quantizer_for(runtime: str, preset: str | None) -> Quantizer:
    """The quantizer of `preset` for `runtime`, or that runtime's default when the preset is not one of its own."""
    if runtime not in DEFAULTS:
        raise ValueError(f"runtime {runtime!r}: expected one of {list(DEFAULTS)}")
    chosen = runtime_preset(runtime, preset)
    return PRESETS[chosen] if chosen else DEFAULTS[runtime]

