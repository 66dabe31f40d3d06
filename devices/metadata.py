"""Reading the metadata an exported model carries: ONNX ``metadata_props``, OpenVINO IR ``rt_info["model_info"]``.

Values are strings; the exporter JSON-encodes every value that is not one, so ``decode_metadata``
gives back lists, numbers and tables. No torch; onnxruntime / openvino are imported only to read a
file of their format, so a device with one runtime reads its models.

    read_metadata("exports/digits/mae/model.onnx")   # {"task": "digits", "precision": "fp32", ...}
    metadata_of(session_or_model)                     # the same, from a model already open
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devices.model_files import runtime_of

IR_SECTION = "model_info"


def metadata_of(model) -> dict[str, str]:
    """The metadata of a model in memory: an onnx.ModelProto, an onnxruntime.InferenceSession or an
    openvino.Model (an IR without the section has none)."""
    if hasattr(model, "metadata_props"):
        return {p.key: p.value for p in model.metadata_props}
    if hasattr(model, "get_modelmeta"):
        return dict(model.get_modelmeta().custom_metadata_map)
    if hasattr(model, "get_rt_info"):
        return _ir_section(model)
    raise TypeError(f"no model metadata in a {type(model).__name__}")


def _ir_section(model) -> dict[str, str]:
    try:
        if not model.has_rt_info([IR_SECTION]):
            return {}
        section = model.get_rt_info()[IR_SECTION]
    except Exception:  # rt_info of another shape than the exporter writes
        return {}
    if not isinstance(section, dict):
        return {}
    return {str(key): value.astype(str) if hasattr(value, "astype") else str(value) for key, value in section.items()}


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an .onnx file (read with onnxruntime) or an OpenVINO .xml file (read with openvino).

    A missing file raises FileNotFoundError, one the runtime cannot read a ValueError; both name it.
    """
    path = Path(path)
    runtime = runtime_of(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        model = _open_onnx_header(path) if runtime == "onnxruntime" else _read_ir(path)
    except ImportError:  # this host lacks the format's runtime: not the file's fault
        raise
    except Exception as exc:  # onnxruntime and OpenVINO raise their own exception types
        raise ValueError(f"{path}: {runtime} cannot read this model: {exc}") from exc
    return metadata_of(model)


def _open_onnx_header(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # only the header is wanted
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _read_ir(path: Path):
    import openvino as ov

    return ov.Core().read_model(str(path))


def decode_value(text: Any) -> Any:
    """A metadata value: JSON-decoded where it decodes (how the exporter stores non-strings)."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def decode_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {key: decode_value(value) for key, value in metadata.items()}
