"""Reading the metadata an exported model carries: ONNX ``metadata_props``, OpenVINO IR ``rt_info["model_info"]``.

Values are strings; the exporter JSON-encodes every value that is not one, so ``decode_metadata``
gives back lists, numbers and tables. No torch; onnxruntime / openvino are imported only to read a
file of their format, so a device with one runtime reads its models.

    read_metadata("exports/digits/mae/model.onnx")   # {"task": "digits", "precision": "fp32", ...}
    metadata_of(session_or_model)                     # the same, from a model already open
    validate_metadata(path, decoded, input_shape, input_dtype)  # MetadataError unless an app may trust it
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np

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


# --- validation: an app loads models it did not make, so nothing in the metadata is trusted unchecked ---

MAX_SAMPLE_VALUES = 1 << 26  # one preprocessed input sample (256 MiB as float32), far above any exported model
MAX_SAMPLE_RATE = 768_000  # Hz
MAX_FPS = 1000.0
TASK_KINDS = ("classification", "detection", "anomaly")
CLASSIFIER_OUTPUTS = ("logits", "probabilities", "probs", "softmax")
ASSET_NAME = "a file name inside the export's assets/ folder (no absolute path, no '..')"


class MetadataError(ValueError):
    """Metadata that is malformed, out of range or contradicts the model's graph; the message names the file,
    the key, the value and what was expected."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Checks:
    """The checks of one model's metadata; the first failure raises MetadataError."""

    def __init__(self, path: Path, meta: Mapping[str, Any], shape: list, dtype, assets_dir: Path | None):
        self.path, self.meta, self.shape, self.dtype, self.assets_dir = path, meta, shape, dtype, assets_dir

    def error(self, text: str):
        raise MetadataError(f"{self.path}: {text}")

    def fail(self, key: str, value: Any, expected: str):
        self.error(f"metadata '{key}' is {_show(value)}; expected {expected}")

    def has(self, key: str) -> bool:
        return self.meta.get(key) is not None

    def shape_text(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def integer(self, key: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(key, value, f"an integer in [{low}, {high}]")
        return value

    def number(self, key: str, value: Any, low: float = -math.inf, high: float = math.inf) -> float:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if not ok or not low <= value <= high:
            bounds = f" in [{low:g}, {high:g}]" if math.isfinite(low) and math.isfinite(high) else ""
            self.fail(key, value, f"a finite number{bounds}")
        return float(value)

    def choice(self, key: str, value: Any, choices: tuple[str, ...], fold: bool = False) -> str:
        folded = value.lower() if fold and isinstance(value, str) else value
        if folded not in [c.lower() if fold else c for c in choices]:
            self.fail(key, value, "one of " + ", ".join(repr(c) for c in choices))
        return folded

    def dim(self, key: str, value: Any, axis: int, size: int | None = None, describe=str):
        """`size` (default: value) must be the graph's input size on `axis` where that is fixed."""
        fixed = self.shape[axis] if axis < len(self.shape) else None
        if fixed is not None and (value if size is None else size) != fixed:
            self.fail(key, value, f"{describe(fixed)} to match the model's input shape {self.shape_text()} "
                                  f"(axis {axis})")

    def rank(self, modality: str, rank: int, layout: str):
        if self.shape and len(self.shape) != rank:
            self.fail("modality", modality, f"a model whose input is {rank}-D {layout}; its input shape is "
                                            f"{self.shape_text()}")

    def side_pair(self, key: str, value: Any) -> list[int]:
        if not (isinstance(value, list) and len(value) == 2):
            self.fail(key, value, "[height, width] in pixels")
        return [self.integer(key, v, 1, MAX_SAMPLE_VALUES) for v in value]

    def capped(self, key: str, value: Any, dims: list):
        total = math.prod(d for d in dims if d is not None)
        if total > MAX_SAMPLE_VALUES:
            self.fail(key, value, f"at most {MAX_SAMPLE_VALUES} input values per sample ({dims} makes {total})")

    def asset(self, key: str, value: Any):
        windows = PureWindowsPath(value) if isinstance(value, str) else None  # splits on both / and \
        if windows is None or not value.strip() or "\x00" in value or windows.drive or windows.root \
                or ".." in windows.parts:
            self.fail(key, value, ASSET_NAME)
        if self.assets_dir is not None:  # a link inside assets/ must not lead out of it either
            folder = self.assets_dir.resolve()
            if not (folder / value).resolve().is_relative_to(folder):
                self.fail(key, value, f"{ASSET_NAME}; it resolves outside {folder}")


def _colour_of(channels: int) -> str:
    return {1: "'grayscale'", 3: "'RGB'"}.get(channels, f"a colour of {channels} channels")


def _check_image(c: _Checks, pre: Mapping[str, Any]):
    c.rank("image", 4, "(N, C, H, W) or (N, H, W, C)")
    layout = c.choice("preprocessing.layout", pre.get("layout") or "NCHW", ("NCHW", "NHWC"), fold=True)
    c_axis, h_axis, w_axis = (1, 2, 3) if layout == "nchw" else (3, 1, 2)
    channels = c.shape[c_axis] if len(c.shape) == 4 else None
    if pre.get("color"):
        color = c.choice("preprocessing.color", pre["color"], ("grayscale", "gray", "L", "RGB"), fold=True)
        channels = 3 if color == "rgb" else 1
        c.dim("preprocessing.color", pre["color"], c_axis, channels, _colour_of)
    size = [c.shape[h_axis], c.shape[w_axis]] if len(c.shape) == 4 else [None, None]
    if pre.get("resize"):
        size = c.side_pair("preprocessing.resize", pre["resize"])
        c.dim("preprocessing.resize", pre["resize"], h_axis, size[0])
        c.dim("preprocessing.resize", pre["resize"], w_axis, size[1])
    c.capped("preprocessing.resize", pre.get("resize"), [channels, *size])
    norm = pre.get("normalize")
    if norm is not None:
        lengths = {1, channels} if channels else {1, 3}
        ok = isinstance(norm, dict) and all(isinstance(norm.get(k), list) and len(norm[k]) in lengths
                                            for k in ("mean", "std"))
        if not ok or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                             for v in [*norm["mean"], *norm["std"]]) or 0 in norm["std"]:
            c.fail("preprocessing.normalize", norm, "{\"mean\": [...], \"std\": [...]}: finite numbers, one per "
                                                    "channel (or one for all), std non-zero")


def _check_video(c: _Checks, pre: Mapping[str, Any]):
    c.rank("video", 5, "(N, C, T, H, W)")
    c.choice("preprocessing.layout", pre.get("layout") or "NCTHW", ("NCTHW",), fold=True)
    dims = list(c.shape[1:]) if len(c.shape) == 5 else [None] * 4
    if pre.get("frames") is not None:
        dims[1] = c.integer("preprocessing.frames", pre["frames"], 1, MAX_SAMPLE_VALUES)
        c.dim("preprocessing.frames", pre["frames"], 2)
    if pre.get("resize"):
        size = c.side_pair("preprocessing.resize", pre["resize"])
        if size[0] != size[1]:
            c.fail("preprocessing.resize", pre["resize"], "[S, S]: frames are cropped to a square")
        dims[2:] = size
        c.dim("preprocessing.resize", pre["resize"], 3, size[0])
        c.dim("preprocessing.resize", pre["resize"], 4, size[1])
    if pre.get("color"):
        color = c.choice("preprocessing.color", pre["color"], ("grayscale", "gray", "RGB"), fold=True)
        dims[0] = 3 if color == "rgb" else 1
        c.dim("preprocessing.color", pre["color"], 1, dims[0], _colour_of)
    if pre.get("fps") is not None:
        c.number("preprocessing.fps", pre["fps"], 1e-3, MAX_FPS)
    c.capped("preprocessing", {k: pre.get(k) for k in ("frames", "resize", "color")}, dims)


def _check_audio(c: _Checks, pre: Mapping[str, Any]):
    rate = MAX_SAMPLE_RATE
    if pre.get("sample_rate") is not None:
        rate = c.integer("preprocessing.sample_rate", pre["sample_rate"], 1, MAX_SAMPLE_RATE)
    if pre.get("clip_samples") is not None:
        c.integer("preprocessing.clip_samples", pre["clip_samples"], 1, min(MAX_SAMPLE_VALUES, rate * 3600))
    if pre.get("crop") is not None:
        c.choice("preprocessing.crop", pre["crop"], ("center", "start"))
    if pre.get("frontend") is not None:
        c.asset("preprocessing.frontend", pre["frontend"])
    log_mel = pre.get("log_mel")
    if log_mel is not None:
        if not isinstance(log_mel, dict):
            c.fail("preprocessing.log_mel", log_mel, "a JSON object (n_mels, frames, ...)")
        if len(c.shape) == 4:  # the front end's output is the model's input (N, 1, n_mels, frames)
            for key, axis in (("n_mels", 2), ("frames", 3)):
                if key in log_mel:
                    c.dim(f"preprocessing.log_mel.{key}", log_mel[key], axis)


def _check_text(c: _Checks, pre: Mapping[str, Any]):
    c.rank("text", 2, "(N, tokens)")
    if c.dtype is not None and c.dtype.kind not in "iu":
        c.fail("modality", "text", f"a model that takes integer token ids; its input is {c.dtype}")
    if pre.get("max_len") is not None:
        c.integer("preprocessing.max_len", pre["max_len"], 1, MAX_SAMPLE_VALUES)
        c.dim("preprocessing.max_len", pre["max_len"], 1)
    if pre.get("tokenizer") is not None:
        c.asset("preprocessing.tokenizer", pre["tokenizer"])


MODALITY_CHECKS = {"image": _check_image, "video": _check_video, "audio": _check_audio, "text": _check_text}


def _declared_shape(c: _Checks) -> list:
    """The metadata's input_shape (None where dynamic), checked against the graph's where both are known."""
    declared = c.meta["input_shape"]
    if not (isinstance(declared, list) and declared and all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and (d >= 1 or d == -1)) for d in declared)):
        c.fail("input_shape", declared, "a JSON list of axis sizes (-1 where dynamic)")
    dims = [d if d is not None and d >= 1 else None for d in declared]
    if c.shape and (len(dims) != len(c.shape) or any(d is not None and g is not None and d != g
                                                     for d, g in zip(dims, c.shape))):
        c.fail("input_shape", declared, f"the model's own input shape {c.shape_text()}")
    return dims


def validate_metadata(path: str | Path, metadata: Mapping[str, Any], input_shape=None, input_dtype=None,
                      assets_dir: Path | None = None) -> None:
    """Check decoded metadata before an app trusts any of it: types, ranges, asset names, and agreement with
    the graph's own input (`input_shape`: int or None per axis; `input_dtype`: numpy dtype or None).

    Raises MetadataError naming the file, the key, the value and what was expected.
    """
    from devices.postprocess.detection import POSTPROCESS_ARGS  # numpy only

    c = _Checks(Path(path), metadata, list(input_shape or []), input_dtype, assets_dir)
    if c.has("input_shape"):
        dims = _declared_shape(c)
        c.shape = c.shape or dims  # a runtime that does not know the shape: the metadata's stands
    if c.has("input_dtype"):
        try:
            declared = np.dtype(str(metadata["input_dtype"]))
        except TypeError:
            declared = None
        if declared is None or declared.kind not in "fiub":
            c.fail("input_dtype", metadata["input_dtype"], "a numeric dtype name such as float32 or int64")
        if c.dtype is not None and declared != c.dtype:
            c.fail("input_dtype", metadata["input_dtype"], f"{c.dtype}, the model's own input type")
        c.dtype = declared if c.dtype is None else c.dtype
    fixed = [d for d in c.shape[1:] if d is not None]
    if math.prod(fixed) > MAX_SAMPLE_VALUES:
        c.error(f"the model's input shape {c.shape_text()} holds {math.prod(fixed)} values per sample; "
                f"expected at most {MAX_SAMPLE_VALUES}")
    if c.has("input_range"):
        bounds = metadata["input_range"]
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(
                isinstance(b, int) and not isinstance(b, bool) for b in bounds) and bounds[0] < bounds[1]):
            c.fail("input_range", bounds, "[low, high): two integers, low < high")

    kind = c.choice("task_kind", metadata.get("task_kind") or "classification", TASK_KINDS)
    if c.has("labels"):
        labels = metadata["labels"]
        if not (isinstance(labels, list) and labels and all(
                isinstance(label, (str, int)) and not isinstance(label, bool) for label in labels)):
            c.fail("labels", labels, "a non-empty JSON list of class names")
    if kind == "classification" and c.has("output"):
        c.choice("output", metadata["output"], CLASSIFIER_OUTPUTS)
    if kind == "anomaly" and not c.has("threshold"):
        c.error("metadata 'threshold' is missing; an anomaly model needs it (a finite number: scores above it "
                "are anomalous)")
    if c.has("threshold"):
        c.number("threshold", metadata["threshold"])
    if c.has("postprocess"):
        args = metadata["postprocess"]
        known = ", ".join(POSTPROCESS_ARGS)
        if not isinstance(args, dict):
            c.fail("postprocess", args, f"a JSON object with keys among {known}")
        for key, value in args.items():
            if key not in POSTPROCESS_ARGS:
                c.error(f"metadata 'postprocess' has unknown key {key!r}; expected keys among {known}")
            kind_of, low, high = POSTPROCESS_ARGS[key]
            (c.integer if kind_of is int else c.number)(f"postprocess.{key}", value, low, high)
    if c.has("assets"):
        if not isinstance(metadata["assets"], list):
            c.fail("assets", metadata["assets"], "a JSON list of file names in the export's assets/ folder")
        for name in metadata["assets"]:
            c.asset("assets", name)

    if c.has("modality") and not isinstance(metadata["modality"], str):
        c.fail("modality", metadata["modality"], "a modality name such as image, video, audio or text")
    pre = metadata.get("preprocessing")
    if pre is not None and not isinstance(pre, dict):
        c.fail("preprocessing", pre, "a JSON object")
    check = MODALITY_CHECKS.get(metadata.get("modality"))
    if check is not None:
        check(c, pre or {})
