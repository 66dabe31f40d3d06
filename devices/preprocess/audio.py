"""App-side audio preprocessing: a sound file (or waveform) -> the log-mel spectrogram an audio model takes.

The steps follow the model's "preprocessing" metadata: read with soundfile, average the channels,
resample to the model's rate, cut or zero-pad to its clip length, then run the exported front end
(`frontend.onnx`, the very module training used) on the waveform. No torch: the resampler is
numpy, a windowed-sinc filter built exactly as torchaudio.functional.resample builds its default one
(Hann window, 6 zero crossings, rolloff 0.99), so a file at another rate gives the model the same
input here as in training.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from devices.preprocess.base import InputSpec, PreprocessError, register

LOWPASS_WIDTH = 6  # zero crossings of the sinc on each side
ROLLOFF = 0.99  # cut-off as a fraction of the lower Nyquist frequency
MAX_FILTER_VALUES = 1 << 22  # new x orig after dividing by their gcd: 44101 -> 16000 Hz would need a 5 GB filter


def sinc_kernel(orig_rate: int, new_rate: int) -> tuple[np.ndarray, int]:
    """(new / gcd, 2 * width + orig / gcd) polyphase filters and the padding width, in float64."""
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_WIDTH * orig / base)
    t = (np.arange(0, -new, -1)[:, None] / new + np.arange(-width, width + orig)[None] / orig) * base
    t = np.clip(t, -LOWPASS_WIDTH, LOWPASS_WIDTH)
    window = np.cos(t * math.pi / LOWPASS_WIDTH / 2) ** 2
    t = t * math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.where(t == 0, 1.0, np.sin(t) / t)
    return sinc * window * base / orig, width


def resample(waveform: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling of a 1-D float waveform (torchaudio's default algorithm, in numpy)."""
    if orig_rate == new_rate:
        return waveform
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    if new * orig > MAX_FILTER_VALUES:
        raise PreprocessError(f"cannot resample {orig_rate} Hz to {new_rate} Hz: the rates share only a factor "
                              f"of {gcd}, which needs a {new} x {orig} filter; convert the file to {new_rate} Hz")
    kernel, width = sinc_kernel(orig_rate, new_rate)
    padded = np.pad(waveform.astype(np.float32), (width, width + orig))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig]
    out = (frames @ kernel.T.astype(np.float32)).reshape(-1)  # each input step yields `new` output samples
    return out[: math.ceil(new * len(waveform) / orig)]


def fit_length(waveform: np.ndarray, samples: int, crop: str) -> np.ndarray:
    """Keep the middle (crop "center") or the start of a longer clip; zero-pad a shorter one likewise."""
    excess = len(waveform) - samples
    if excess > 0:
        start = excess // 2 if crop == "center" else 0
        return waveform[start:start + samples]
    before = -excess // 2 if crop == "center" else 0
    return np.pad(waveform, (before, -excess - before))


def read_mono(item: Any, rate: int) -> tuple[np.ndarray, int]:
    """A file path (WAV/FLAC/OGG), or a float waveform (samples,) / (samples, channels) at the model's rate."""
    if isinstance(item, np.ndarray):
        if item.dtype.kind != "f" or item.ndim not in (1, 2):
            raise PreprocessError(f"a waveform array must be float, shaped (samples,) or (samples, channels); "
                                  f"got {item.dtype} {list(item.shape)}")
        return (item if item.ndim == 1 else item.mean(axis=1)).astype(np.float32), rate
    if not isinstance(item, (str, Path)):
        raise PreprocessError(f"cannot read audio from {type(item).__name__}; give a file path or a float waveform")
    if not Path(item).is_file():
        raise FileNotFoundError(f"{item}: audio file not found")
    import soundfile as sf

    try:
        data, file_rate = sf.read(str(item), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises its own error types
        raise PreprocessError(f"{item}: not a readable audio file ({exc})") from exc
    if len(data) == 0:
        raise PreprocessError(f"{item}: audio file has no samples")
    return data.mean(axis=1), file_rate


@lru_cache(maxsize=4)
def _frontend(path: Path):
    from devices.runtimes import OnnxRuntimeSession

    return OnnxRuntimeSession(path)


def frontend_path(spec: InputSpec) -> Path:
    """frontend.onnx from the export's assets/ folder (preprocessing["frontend"] names it)."""
    name = spec.preprocessing.get("frontend")
    if not name:
        raise PreprocessError("the model's preprocessing names no 'frontend' (the exported log-mel front end)")
    return spec.asset(str(name))


@register("audio")
def preprocess_audio(item: Any, spec: InputSpec) -> np.ndarray:
    """Sound file or waveform -> (1, 1, n_mels, frames) float32 via the model's frontend.onnx.

    Metadata keys used (preprocessing): "sample_rate", "clip_samples", "crop" ("center" | "start"),
    "frontend" (file name in the export's assets/ folder).
    """
    pre = spec.preprocessing
    try:
        rate, samples, crop = int(pre["sample_rate"]), int(pre["clip_samples"]), str(pre.get("crop", "center"))
    except (KeyError, TypeError, ValueError) as exc:
        raise PreprocessError(f"the model's preprocessing lacks sample_rate / clip_samples ({exc})") from exc
    frontend_file = frontend_path(spec)
    frontend = _frontend(frontend_file)
    if len(frontend.input_shape) != 2 or frontend.input_shape[1] not in (None, samples):
        raise PreprocessError(f"{frontend_file} takes waveforms {frontend.input_shape}, but the model's "
                              f"preprocessing.clip_samples is {samples}")
    waveform, file_rate = read_mono(item, rate)
    try:
        clip = fit_length(resample(waveform, file_rate, rate), samples, crop)
    except PreprocessError as exc:
        raise PreprocessError(f"{item if isinstance(item, (str, Path)) else '<waveform>'}: {exc}") from exc
    features = frontend.run(np.ascontiguousarray(clip[None], dtype=np.float32))
    return np.asarray(features, dtype=np.float32)
