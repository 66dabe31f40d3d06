"""Video corruptions on uint8 (N, C, T, H, W) clips, C = 1 or 3: per-frame image corruptions, broken
timing (a stalled camera, duplicated or reordered frames) and low-bitrate re-encoding.

Frame counts per severity are fractions of the T - 1 frames after the first, so an 8-frame clip loses
1..5 frames; each table holds the severity 1..5 values in order.
"""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from modalities.corruptions import Corruption, by_name
from modalities.image import corruptions as image

FRAME_FRACTION = (0.15, 0.3, 0.45, 0.6, 0.75)  # of the T - 1 later frames: dropped, or duplicated
JITTER_SPREAD = (2.0, 2.5, 3.0, 4.0, 5.0)  # a frame moves fewer than this many places
# Re-encoding at constant quality, each step a lower bitrate: a bitrate target cannot be met on clips this
# small (x264's stream headers alone are ~800 bytes a clip), so its rate control pins every low target to
# one quality. CRF 30-50 runs from visible to heavy blocking; mpeg4 (the fallback) tops out at quantiser
# 31, which is milder than CRF 50.
X264_CRF = (30, 35, 40, 45, 50)
MPEG4_QSCALE = (4, 8, 14, 22, 31)
RATE = 10  # nominal frame rate of the re-encoded stream
CODECS = (("libx264", "h264"), ("mpeg4", "mpeg4"))  # (encoder, decoder), the first one PyAV has


def check_clips(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 5 or x.shape[1] not in (1, 3):
        raise ValueError(f"video batch: got {x.dtype} {x.shape}, expected uint8 (N, C, T, H, W) with C = 1 or 3")
    return x


def _per_frame(corrupt):
    """An image corruption applied to every frame of every clip at once."""

    def apply(x, severity: int, rng: np.random.Generator) -> np.ndarray:
        x = check_clips(x)
        n, c, t, h, w = x.shape
        frames = x.transpose(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        return np.ascontiguousarray(corrupt(frames, severity, rng).reshape(n, t, c, h, w).transpose(0, 2, 1, 3, 4))

    return apply


def _frame_count(frames: int, severity: int) -> int:
    return min(max(round(FRAME_FRACTION[severity - 1] * (frames - 1)), 1), frames - 1)


def _chosen_later_frames(n: int, frames: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(n, frames) bool: k distinct random frames of each clip among 1..frames-1."""
    order = np.argsort(rng.random((n, frames - 1)), axis=1)
    chosen = np.zeros((n, frames), dtype=bool)
    np.put_along_axis(chosen[:, 1:], order[:, :k], True, axis=1)
    return chosen


def _gather(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Clip i's output frame j is its input frame index[i, j]."""
    return np.take_along_axis(x, index[:, None, :, None, None], axis=2)


def dropped_frames(x, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A stalled camera: random later frames replaced by the last kept frame before them."""
    x = check_clips(x)
    n, t = x.shape[0], x.shape[2]
    if t < 2:
        return x.copy()
    dropped = _chosen_later_frames(n, t, _frame_count(t, severity), rng)
    index = np.maximum.accumulate(np.where(dropped, 0, np.arange(t)), axis=1)
    return _gather(x, index)


def duplicated_frames(x, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Random later frames repeat the one before, the rest of the clip shifted later and its end cut:
    a stretched timeline."""
    x = check_clips(x)
    n, t = x.shape[0], x.shape[2]
    if t < 2:
        return x.copy()
    repeats = _chosen_later_frames(n, t, _frame_count(t, severity), rng)  # output frames showing the one before
    return _gather(x, np.arange(t) - np.cumsum(repeats, axis=1))


def temporal_jitter(x, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Frames out of order: sorted by their time plus uniform noise in [0, spread), so a frame moves
    fewer than `spread` places and every frame is kept once."""
    x = check_clips(x)
    n, t = x.shape[0], x.shape[2]
    index = np.argsort(np.arange(t) + rng.uniform(0, JITTER_SPREAD[severity - 1], (n, t)), axis=1, kind="stable")
    return _gather(x, index)


def video_codec() -> tuple[str, str]:
    """(encoder, decoder): libx264 where PyAV has it, else mpeg4."""
    for encoder, decoder in CODECS:
        if encoder in av.codecs_available and decoder in av.codecs_available:
            return encoder, decoder
    raise RuntimeError(f"video corruption 'compression': PyAV {av.__version__} has none of the encoders "
                       f"{[e for e, _ in CODECS]} (av.codecs_available)")


def _reencode(clip: np.ndarray, severity: int, encoder: str, decoder: str) -> np.ndarray:
    """(C, T, H, W) -> the same after a round trip through the codec at the severity's quality. Greyscale
    goes in as the luma plane with flat chroma and comes back as the luma plane; RGB through PyAV's
    yuv420p conversion."""
    c, t, h, w = clip.shape
    ph, pw = h + h % 2, w + w % 2  # yuv420p needs even sides: pad by edge repetition, crop after
    frames = np.pad(clip, ((0, 0), (0, 0), (0, ph - h), (0, pw - w)), mode="edge")
    enc = av.CodecContext.create(encoder, "w")
    enc.width, enc.height, enc.pix_fmt = pw, ph, "yuv420p"
    enc.time_base, enc.framerate, enc.thread_count = Fraction(1, RATE), RATE, 1
    if encoder == "libx264":
        # macroblock-tree rate control made repeated encodes of one small clip differ within a process
        enc.options = {"crf": str(X264_CRF[severity - 1]), "x264-params": "mbtree=0"}
    else:
        enc.qmin = enc.qmax = MPEG4_QSCALE[severity - 1]
    dec = av.CodecContext.create(decoder, "r")
    dec.thread_count = 1
    flat_chroma = np.full((ph // 2, pw), 128, dtype=np.uint8)
    packets = []
    for i in range(t):
        if c == 1:
            frame = av.VideoFrame.from_ndarray(np.concatenate([frames[0, i], flat_chroma]), format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[:, i].transpose(1, 2, 0)), format="rgb24")
        frame.pts = i
        packets += enc.encode(frame)
    packets += enc.encode(None)
    decoded = [f for p in [*packets, None] for f in dec.decode(p)]
    if len(decoded) != t:
        raise RuntimeError(f"video corruption 'compression': {encoder} gave back {len(decoded)} of {t} frames")
    if c == 1:
        out = np.stack([f.to_ndarray()[:ph] for f in decoded])[None]
    else:
        out = np.stack([f.to_ndarray(format="rgb24") for f in decoded]).transpose(3, 0, 1, 2)
    return out[..., :h, :w]


def compression(x, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Each clip re-encoded at a falling quality and bitrate and decoded back (frame count, size and
    channels kept)."""
    x = check_clips(x)
    encoder, decoder = video_codec()
    out = np.empty_like(x)
    for i, clip in enumerate(x):
        out[i] = _reencode(clip, severity, encoder, decoder)
    return out


def corruptions(params=None) -> dict[str, Corruption]:
    """The video corruptions by name; they read channels, frames and size from the batch, not from params."""
    return by_name(
        Corruption("frame_noise", _per_frame(image.gaussian_noise), "the image gaussian_noise on every frame"),
        Corruption("frame_blur", _per_frame(image.blur), "the image blur on every frame"),
        Corruption("dropped_frames", dropped_frames,
                   f"{FRAME_FRACTION} of the later frames frozen on the last kept one (a stalled camera)"),
        Corruption("duplicated_frames", duplicated_frames,
                   f"{FRAME_FRACTION} of the later frames repeat the one before, the clip shifted and cut"),
        Corruption("temporal_jitter", temporal_jitter, f"frames reordered, each by fewer than {JITTER_SPREAD} places"),
        Corruption("compression", compression,
                   f"re-encoded with libx264 at CRF {X264_CRF}, else mpeg4 at quantiser {MPEG4_QSCALE}"),
    )
