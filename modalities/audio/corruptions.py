"""Audio corruptions on raw waveforms, float32 (N, samples) in [-1, 1] at params.sample_rate.

noise        real recorded machine noise (OpenTTD's opensfx, see machines.py) at SNR 20/10/5/0/-5 dB
white_noise  Gaussian white noise at the same SNRs
telephone    4th-order Butterworth band-pass, 100-7000 Hz (severity 1) down to 300-3400 Hz (severity 5)
clipping     driven to 1.5x-10x full scale (relative to the clip's peak), hard-clipped at +-1
gain         attenuation by 6-30 dB (a quiet microphone)
time_shift   shifted earlier or later by 10-50 % of the clip, zero-filled
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torchaudio

from modalities.corruptions import Corruption, by_name

SNR_DB = {1: 20.0, 2: 10.0, 3: 5.0, 4: 0.0, 5: -5.0}
BANDS_HZ = {1: (100.0, 7000.0), 2: (150.0, 6000.0), 3: (200.0, 5000.0), 4: (250.0, 4000.0), 5: (300.0, 3400.0)}
BUTTERWORTH_Q = (0.5412, 1.3066)  # two cascaded biquads with these Qs make a 4th-order Butterworth filter
DRIVE = {1: 1.5, 2: 2.0, 3: 3.0, 4: 5.0, 5: 10.0}  # clip peak / full scale before clipping
ATTENUATION_DB = {1: 6.0, 2: 12.0, 3: 18.0, 4: 24.0, 5: 30.0}
SHIFT_FRACTION = {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4, 5: 0.5}


def _waveforms(raw) -> np.ndarray:
    x = np.asarray(raw, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"audio corruption: expected float32 waveforms (N, samples), got shape {x.shape}")
    return x


@lru_cache(maxsize=4)
def machine_noise(sample_rate: int) -> tuple[np.ndarray, ...]:
    """Every machine recording's steady part, resampled to sample_rate, mean removed (float32)."""
    from modalities.audio.machines import MACHINES, MachineSoundError, machine_recording

    out = []
    for machine in MACHINES:
        try:
            recording, rate = machine_recording(machine)
        except MachineSoundError as e:
            raise MachineSoundError(f"audio corruption 'noise' mixes in the recorded machine noise, "
                                    f"which is missing: {e}") from e
        wave = torchaudio.functional.resample(torch.from_numpy(recording).float(), rate, sample_rate).numpy()
        out.append((wave - wave.mean()).astype(np.float32))
    return tuple(out)


def _segments(recordings: tuple[np.ndarray, ...], n: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(n, samples): per row a random recording from a random offset (looped when shorter than a clip)."""
    pick = rng.integers(len(recordings), size=n)
    offset = rng.random(n)
    out = np.empty((n, samples), np.float32)
    for k, rec in enumerate(recordings):
        rows = np.flatnonzero(pick == k)
        if not len(rows):
            continue
        length = len(rec)
        # offsets that keep the window inside the recording (no splice), unless it is shorter than a clip
        starts = (offset[rows] * (length - samples + 1 if length >= samples else length)).astype(np.int64)
        looped = np.tile(rec, -(-(length + samples) // length))
        out[rows] = np.lib.stride_tricks.sliding_window_view(looped, samples)[starts]
    return out


def _power(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)[:, None] / x.shape[1]


def mix_batch_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Each row plus its noise row scaled to snr_db below the row's power; a silent row stays silent.
    A mix that would pass +-1 is scaled down whole (never clipped), which keeps the SNR."""
    scale = np.sqrt(_power(clean) / np.maximum(_power(noise), 1e-20) / 10 ** (snr_db / 10))
    mixed = clean + scale.astype(np.float32) * noise
    mixed /= np.maximum(1.0, np.abs(mixed).max(axis=1, keepdims=True))
    return mixed


@lru_cache(maxsize=32)
def band_response(rate: int, severity: int, samples: int) -> np.ndarray:
    """The telephone band-pass's impulse response over `samples`: torchaudio's high- and low-pass
    biquads (Butterworth pairs) run on a unit impulse. Filtering a clip from rest is the convolution
    with it, which the FFT does far faster than running the biquads sample by sample over a batch."""
    low, high = BANDS_HZ[severity]
    h = torch.zeros(samples, dtype=torch.float64)
    h[0] = 1e-3  # small, so that the biquads' clamp to [-1, 1] never acts
    for q in BUTTERWORTH_Q:
        h = torchaudio.functional.highpass_biquad(h, rate, low, q)
        if high < 0.45 * rate:  # at low sample rates the band already ends below `high`
            h = torchaudio.functional.lowpass_biquad(h, rate, high, q)
    return (h * 1e3).float().numpy()


def _convolve(x: torch.Tensor, h: torch.Tensor, rows: int = 256) -> torch.Tensor:
    """Each row of x causally convolved with h (same length), by FFT in chunks of rows."""
    n = x.shape[1]
    size = 1 << (2 * n - 1).bit_length()  # no wrap-around
    spectrum = torch.fft.rfft(h, n=size)
    return torch.cat([torch.fft.irfft(torch.fft.rfft(part, n=size) * spectrum, n=size)[:, :n]
                      for part in x.split(rows)])


def corruptions(params) -> dict[str, Corruption]:
    rate = int(params.sample_rate)  # the clip length comes from each batch

    def noise(raw, severity, rng):
        x = _waveforms(raw)
        return mix_batch_at_snr(x, _segments(machine_noise(rate), len(x), x.shape[1], rng), SNR_DB[severity])

    def white_noise(raw, severity, rng):
        x = _waveforms(raw)
        return mix_batch_at_snr(x, rng.standard_normal(x.shape, dtype=np.float32), SNR_DB[severity])

    def telephone(raw, severity, rng):
        x = _waveforms(raw)
        if not len(x):
            return x.copy()
        h = torch.from_numpy(band_response(rate, severity, x.shape[1]))
        return np.clip(_convolve(torch.from_numpy(x), h).numpy(), -1.0, 1.0)

    def clipping(raw, severity, rng):
        x = _waveforms(raw)
        peak = np.abs(x).max(axis=1, keepdims=True)
        gain = np.where(peak > 0, DRIVE[severity] / np.maximum(peak, 1e-12), 1.0).astype(np.float32)
        return np.clip(x * gain, -1.0, 1.0)

    def gain(raw, severity, rng):
        return _waveforms(raw) * np.float32(10 ** (-ATTENUATION_DB[severity] / 20))

    def time_shift(raw, severity, rng):
        x = _waveforms(raw)
        n, length = x.shape
        shift = int(round(SHIFT_FRACTION[severity] * length)) * rng.choice([-1, 1], size=n)
        out = np.zeros_like(x)
        for i, s in enumerate(shift):
            if s >= 0:
                out[i, s:] = x[i, :length - s]
            else:
                out[i, :length + s] = x[i, -s:]
        return out

    return by_name(
        Corruption("noise", noise, "recorded machine noise (OpenTTD opensfx) at SNR 20/10/5/0/-5 dB"),
        Corruption("white_noise", white_noise, "Gaussian white noise at SNR 20/10/5/0/-5 dB"),
        Corruption("telephone", telephone, "band-pass 100-7000 Hz (1) narrowing to 300-3400 Hz (5)"),
        Corruption("clipping", clipping, "driven to 1.5/2/3/5/10 x full scale, hard-clipped at +-1"),
        Corruption("gain", gain, "attenuated by 6/12/18/24/30 dB"),
        Corruption("time_shift", time_shift, "shifted by 10-50 % of the clip, zero-filled"),
    )
