"""Video clips for apps and for the prepare stage alike: decode with PyAV, sample frames, crop, resize.

One implementation, no torch: `modalities/video/readers.py` reads training clips with `read_clip`, and
the app-side preprocessor registered here reads clips with the same function, so what a deployed model
sees cannot drift from what it was trained on.

Sampling contract (the exported model's metadata says the same, under "preprocessing"):
  * `frames` sample times `1 / fps` seconds apart (fps None: every decoded frame), in a window centred
    on the clip; each sample time shows the last frame that started at or before it;
  * every frame: the largest centred square, resized (bilinear, antialiased) to size x size, converted
    to grayscale (ITU-R 601 luma) or RGB;
  * model input: uint8 / 255, laid out (1, C, T, H, W).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from devices.preprocess.base import InputSpec, PreprocessError, register

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
_PIL_MODES = {"grayscale": "L", "gray": "L", "rgb": "RGB"}
_TIME_SLACK = 1e-3  # seconds; container timestamps are rounded to their time base


class ClipReadError(PreprocessError):
    """A clip that cannot be decoded, or is too short for the frames asked for; the message names it."""


def _av():
    try:
        import av
    except ImportError as exc:
        raise PreprocessError("reading video clips needs PyAV (pip install av); "
                              "or pass decoded frames as a (T, H, W, C) uint8 array") from exc
    return av


def _image_module():
    try:
        from PIL import Image
    except ImportError as exc:
        raise PreprocessError("resizing video frames needs Pillow (pip install pillow)") from exc
    return Image


def square_resize(size: int, mode: str) -> Callable[[np.ndarray], np.ndarray]:
    """(H, W, 3) uint8 RGB -> (size, size, C): centred square crop, bilinear resize, L or RGB."""
    Image = _image_module()

    def convert(rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        image = Image.fromarray(rgb).convert(mode)
        image = image.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))
        pixels = np.asarray(image, dtype=np.uint8)
        return pixels[:, :, None] if pixels.ndim == 2 else pixels

    return convert


def short_side_resize(short_side: int, mode: str) -> Callable[[np.ndarray], np.ndarray]:
    """(H, W, 3) uint8 RGB -> the whole frame with its shorter side resized to short_side, L or RGB."""
    Image = _image_module()

    def convert(rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        scale = short_side / min(h, w)
        image = Image.fromarray(rgb).convert(mode).resize((round(w * scale), round(h * scale)), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
        return pixels[:, :, None] if pixels.ndim == 2 else pixels

    return convert


def decode_frames(path: str | Path,
                  convert: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """Every frame of the clip's first video stream: (start times in s (F,), converted frames (F, ...), end time)."""
    av = _av()
    times, frames = [], []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ClipReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            for index, frame in enumerate(container.decode(stream)):
                times.append(frame.time if frame.time is not None else index / rate)
                frames.append(convert(frame.to_ndarray(format="rgb24")))
    except ClipReadError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ClipReadError(f"{path}: cannot decode video ({exc})") from exc
    if not frames:
        raise ClipReadError(f"{path}: no decodable video frames")
    times = np.asarray(times, dtype=np.float64)
    order = np.argsort(times, kind="stable")  # presentation order; B-frames may decode out of it
    times = times[order]
    frame_step = np.median(np.diff(times)) if len(times) > 1 else 1 / rate
    return times, np.stack(frames)[order], float(times[-1] + frame_step)


def sample_indices(times: np.ndarray, end: float, frames: int, fps: float | None, name: str) -> np.ndarray:
    """Which decoded frames show the `frames` sample times of a window centred on the clip."""
    if fps is None:
        if len(times) < frames:
            raise ClipReadError(f"{name}: clip too short: {len(times)} frames, the model needs {frames}")
        start = (len(times) - frames) // 2
        return np.arange(start, start + frames)
    start, needed = float(times[0]), frames / fps
    if end - start + _TIME_SLACK < needed:
        raise ClipReadError(f"{name}: clip too short: {end - start:.2f} s, the model needs {needed:.2f} s "
                            f"({frames} frames at {fps:g} fps)")
    sample_times = start + (end - start - needed) / 2 + np.arange(frames) / fps
    return np.searchsorted(times, sample_times + _TIME_SLACK, side="right") - 1


def read_clip(path: str | Path, frames: int, fps: float | None, size: int, color: str) -> np.ndarray:
    """A clip file -> uint8 (frames, size, size, C) per the sampling contract above."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: video file not found")
    times, decoded, end = decode_frames(path, square_resize(size, _pil_mode(color)))
    return decoded[sample_indices(times, end, frames, fps, str(path))]


def conform_frames(clip: np.ndarray, frames: int, size: int, color: str) -> np.ndarray:
    """Decoded frames (T, H, W, C) uint8, already at the model's fps -> the centred window, square, resized."""
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[3] not in (1, 3):
        raise PreprocessError(f"a clip array must be uint8 frames shaped (T, H, W, 1|3), got {clip.dtype} "
                              f"{list(clip.shape)}; model-ready float arrays go straight to Predictor.predict")
    if len(clip) < frames:
        raise ClipReadError(f"<array>: clip too short: {len(clip)} frames, the model needs {frames}")
    start = (len(clip) - frames) // 2
    convert = square_resize(size, _pil_mode(color))
    rgb = clip if clip.shape[3] == 3 else np.repeat(clip, 3, axis=3)
    return np.stack([convert(frame) for frame in rgb[start : start + frames]])


def _pil_mode(color: str) -> str:
    mode = _PIL_MODES.get(str(color).lower())
    if mode is None:
        raise PreprocessError(f"video color '{color}' is not supported (grayscale or RGB)")
    return mode


def _contract(spec: InputSpec) -> tuple[int, float | None, int, str]:
    """(frames, fps, size, color) from the model's metadata, falling back to its input shape."""
    pre = spec.preprocessing
    if str(pre.get("layout", "NCTHW")).upper() != "NCTHW":
        raise PreprocessError(f"video layout '{pre.get('layout')}' is not supported (NCTHW)")
    shape = spec.shape if len(spec.shape) == 5 else (None,) * 5
    frames = pre.get("frames") or shape[2]
    size = (pre.get("resize") or [shape[3]])[0]
    color = pre.get("color") or ("grayscale" if shape[1] == 1 else "RGB")
    fps = pre.get("fps")
    if not isinstance(frames, int) or not isinstance(size, int):
        raise PreprocessError(f"cannot tell the clip's frames and size from the metadata ({pre!r})")
    if any(f is not None and f != v for f, v in zip(shape[2:], (frames, size, size))):
        raise PreprocessError(f"preprocessing frames {frames} / resize {size} do not match the model's input "
                              f"{spec.shape_text()}")
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
        raise PreprocessError(f"preprocessing.fps must be a positive number or null, got {fps!r}")
    return frames, fps, size, color


@register("video")
def preprocess_video(item: Any, spec: InputSpec) -> np.ndarray:
    """A clip file path, or decoded frames (T, H, W, C) uint8 at the model's fps -> (1, C, T, H, W) float [0, 1].

    Metadata keys used (preprocessing): "frames", "fps" (null = every frame), "resize" [S, S],
    "color" ("grayscale" | "RGB"), "layout" ("NCTHW"). Normalisation runs inside the model's graph.
    """
    frames, fps, size, color = _contract(spec)
    if isinstance(item, np.ndarray):
        clip = conform_frames(item, frames, size, color)
    elif isinstance(item, (str, Path)):
        clip = read_clip(item, frames, fps, size, color)
    else:
        raise PreprocessError(f"cannot read a video clip from {type(item).__name__}; "
                              "give a file path or a (T, H, W, C) uint8 array")
    sample = clip.transpose(3, 0, 1, 2)[None].astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(sample, dtype=spec.dtype)
