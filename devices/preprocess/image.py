"""App-side image preprocessing: an image file (or pixels) -> float [0, 1] pixels in the model's layout.

PIL is imported only when an image is read, so models of other modalities run without it.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from devices.preprocess.base import InputSpec, PreprocessError, register

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
    if len(spec.shape) == 4:  # checked before any image is opened: a size from metadata must fit the graph
        fixed = spec.shape[2:] if layout == "NCHW" else spec.shape[1:3]
        if any(f is not None and f != s for f, s in zip(fixed, size)):
            raise PreprocessError(f"preprocessing.resize {size} does not match the model's input "
                                  f"{spec.shape_text()}")

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
