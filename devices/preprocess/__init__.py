"""App-side preprocessing: turn a raw input (an image file, ...) into what an exported model takes.

Each exported model says in its metadata which modality it serves ("modality") and how its input
is prepared ("preprocessing", "input_shape", "input_dtype"). Preprocessing functions are looked
up by that modality in a registry, so a new modality (video clip, audio, text) is one function
registered here, and devices/predict.py does not change:

    @register("audio")
    def preprocess_audio(item, spec: InputSpec) -> np.ndarray: ...   # one sample, batch axis of 1

A preprocessing function gets one raw input and the model's InputSpec and returns one sample
shaped (1, *spec.shape[1:]) with spec.dtype.

No torch here; PIL is imported only inside the image function (it is what reads image files).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class PreprocessError(ValueError):
    """An input that cannot be turned into model input (unreadable file, unknown modality, ...)."""


@dataclass(frozen=True)
class InputSpec:
    """The model's input contract, from its metadata (and the runtime's view of the input)."""

    modality: str | None
    shape: tuple[int | None, ...]          # None where dynamic (axis 0 is the batch axis)
    dtype: np.dtype
    preprocessing: dict = field(default_factory=dict)
    name: str = "input"
    assets_dir: Path | None = None  # the export's assets/ folder (tokenizer.json, frontend.onnx), if any

    def asset(self, name: str) -> Path:
        """A file an app needs beside the model (from the export's assets/ folder), or a clear error."""
        if self.assets_dir is None or not (self.assets_dir / name).is_file():
            where = self.assets_dir or "an assets/ folder beside the model or above it"
            raise PreprocessError(f"the '{self.modality}' model needs '{name}', not found in {where}")
        return self.assets_dir / name

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], runtime_shape=None, runtime_dtype=None,
                      runtime_name: str | None = None, assets_dir: Path | None = None) -> InputSpec:
        """Build from model metadata (string values, JSON where structured); the runtime's own view
        of the input wins for shape and dtype where it is known."""
        meta = {k: decode_value(v) for k, v in metadata.items()}
        shape = runtime_shape
        if shape is None or not len(shape):
            declared = meta.get("input_shape")
            shape = [None if (not isinstance(d, int) or d < 0) else d for d in declared] if isinstance(declared, list) else []
        dtype = runtime_dtype if runtime_dtype is not None else np.dtype(str(meta.get("input_dtype") or "float32"))
        pre = meta.get("preprocessing")
        return cls(
            modality=str(meta["modality"]) if meta.get("modality") else None,
            shape=tuple(shape),
            dtype=np.dtype(dtype),
            preprocessing=pre if isinstance(pre, dict) else {},
            name=runtime_name or str(meta.get("input_name") or "input"),
            assets_dir=assets_dir,
        )

    def shape_text(self, batch: str = "N") -> str:
        return "[" + ",".join(batch if (i == 0 and d is None) else ("?" if d is None else str(d))
                              for i, d in enumerate(self.shape)) + "]"


def decode_value(text: Any) -> Any:
    """A metadata value: JSON-decoded where it decodes (how the exporter stores non-strings)."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


Preprocessor = Callable[[Any, InputSpec], np.ndarray]
_REGISTRY: dict[str, Preprocessor] = {}


def register(modality: str) -> Callable[[Preprocessor], Preprocessor]:
    """Decorator: register the preprocessing function for a modality name."""
    def wrap(fn: Preprocessor) -> Preprocessor:
        if modality in _REGISTRY and _REGISTRY[modality] is not fn:
            raise ValueError(f"a preprocessor for modality '{modality}' is already registered")
        _REGISTRY[modality] = fn
        return fn
    return wrap


def registered_modalities() -> list[str]:
    return sorted(_REGISTRY)


def preprocessor_for(modality: str | None) -> Preprocessor:
    """The registered function for a modality; a PreprocessError naming it when there is none."""
    if not modality:
        raise PreprocessError("the model's metadata names no 'modality', so raw inputs cannot be preprocessed; "
                              "pass a model-ready numpy array instead")
    try:
        return _REGISTRY[modality]
    except KeyError:
        raise PreprocessError(
            f"no preprocessing for modality '{modality}' (registered: {', '.join(registered_modalities())}); "
            "add one with devices.preprocess.register"
        ) from None


def preprocess(item: Any, spec: InputSpec) -> np.ndarray:
    """One raw input -> one model-ready sample (1, *shape[1:]) via the modality's preprocessor."""
    sample = np.asarray(preprocessor_for(spec.modality)(item, spec))
    expected = spec.shape[1:]
    if sample.ndim != len(spec.shape) or sample.shape[0] != 1 or any(
        d is not None and d != s for d, s in zip(expected, sample.shape[1:])
    ):
        raise PreprocessError(f"the '{spec.modality}' preprocessor produced shape {list(sample.shape)}, "
                              f"but the model takes {spec.shape_text('1')}")
    return sample.astype(spec.dtype, copy=False)


# --- image ------------------------------------------------------------------------------------------

_PIL_MODES = {"grayscale": "L", "gray": "L", "l": "L", "rgb": "RGB"}


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError as exc:
        raise PreprocessError("reading images needs Pillow (pip install pillow); "
                              "or pass model-ready numpy arrays instead") from exc
    return Image, ImageOps


def _open_image(item: Any):
    Image, ImageOps = _pil()
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] not in (1, 3, 4)):
            raise PreprocessError(
                f"an image array must be uint8 pixels shaped (H, W) or (H, W, 1|3|4), got {item.dtype} "
                f"{list(item.shape)}; model-ready float arrays go straight to Predictor.predict"
            )
        return Image.fromarray(item[..., 0] if item.ndim == 3 and item.shape[2] == 1 else item)
    if isinstance(item, (bytes, bytearray)):
        import io

        item = io.BytesIO(item)
        name = "<bytes>"
    elif isinstance(item, (str, Path)):
        name = str(item)
        if not Path(item).is_file():
            raise FileNotFoundError(f"{item}: image file not found")
    else:
        raise PreprocessError(f"cannot read an image from {type(item).__name__}; "
                              "give a file path, bytes, a PIL image or a uint8 array")
    try:
        image = Image.open(item)
        image.load()
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise PreprocessError(f"{name}: not a readable image ({exc})") from exc
    return ImageOps.exif_transpose(image)  # photos from phones carry their rotation in EXIF


def _to_mode(image, mode: str):
    """Convert to L or RGB. 16-bit and 32-bit grey images are scaled to 8 bits first (PIL's own
    conversion clips them); alpha is dropped."""
    Image, _ = _pil()
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        peak = arr.max(initial=0)
        top = 65535.0 if image.mode.startswith("I;16") or peak > 255 else (1.0 if image.mode == "F" and peak <= 1 else 255.0)
        image = Image.fromarray(np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    return image if image.mode == mode else image.convert(mode)


@register("image")
def preprocess_image(item: Any, spec: InputSpec) -> np.ndarray:
    """Image -> float [0, 1] pixels in the model's layout: colour per metadata, bilinear resize.

    Metadata keys used (preprocessing): "color" ("grayscale" | "RGB"), "resize" [H, W],
    "layout" ("NCHW" | "NHWC"); "normalize" {"mean", "std"} is applied only when the model does
    not normalise in its graph ("normalize_in_graph").
    """
    Image, _ = _pil()
    pre = spec.preprocessing
    layout = str(pre.get("layout", "NCHW")).upper()
    if layout not in ("NCHW", "NHWC"):
        raise PreprocessError(f"image layout '{layout}' is not supported (NCHW or NHWC)")
    channel_axis = 1 if layout == "NCHW" else 3
    color = str(pre.get("color") or "").lower()
    if color:
        if color not in _PIL_MODES:
            raise PreprocessError(f"image color '{pre.get('color')}' is not supported (grayscale or RGB)")
        mode = _PIL_MODES[color]
    else:  # no colour in the metadata: from the channel count of the input
        channels = spec.shape[channel_axis] if len(spec.shape) == 4 else None
        mode = "L" if channels == 1 else "RGB"
    size = pre.get("resize")
    if not size and len(spec.shape) == 4:
        size = [spec.shape[2], spec.shape[3]] if layout == "NCHW" else [spec.shape[1], spec.shape[2]]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise PreprocessError(f"cannot tell the image size from the metadata (preprocessing.resize = {size!r})")
    height, width = size

    image = _to_mode(_open_image(item), mode)
    if image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)  # (H, W) or (H, W, 3)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    norm = pre.get("normalize")
    if isinstance(norm, dict) and "mean" in norm and "std" in norm:
        mean = np.asarray(norm["mean"], dtype=np.float32)
        std = np.asarray(norm["std"], dtype=np.float32)
        pixels = (pixels - mean) / std
    sample = pixels[None]  # (1, H, W, C)
    if layout == "NCHW":
        sample = sample.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(sample, dtype=spec.dtype)


# The other modalities register themselves on import (each module imports `register` from here).
import devices.preprocess.audio  # noqa: E402,F401
import devices.preprocess.text  # noqa: E402,F401
import devices.preprocess.video  # noqa: E402,F401
