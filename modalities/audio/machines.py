"""Embedded machine sounds for anomaly detection: a real machine recording (normal) with injected faults.

Source: Debian's openttd-opensfx (OpenTTD's CC-licensed sound set, 71 field recordings), unpacked
with catcodec (`apt-get install openttd-opensfx catcodec`). Each entry of MACHINES is one machine
type; train one detector per type, as DCASE does. The default is "mining_machinery" (osfx_11, a lift's
winding motor): the steadiest machine recording of the set (within 3 dB of its median level after the
first 0.2 s) and, like MIMII's pumps and fans, a stationary rotating machine, so what changes in a clip
is the fault rather than a working cycle. The helicopter rotor and the chainsaw are steady too.

Normal clips: a window of the recording's steady part at a random offset, played at a slightly varying
speed (+-1.5 %, the machine's own load changes), at a random gain, over pink or brown background noise
(SNR 15-30 dB). Faults, mixed in at a fault-to-clip power ratio (dB) drawn per clip from FAULT_SNR_DB:
  click        2-6 short decaying broadband bursts (bearing knocks, electrical sparks)
  speed_drift  the speed drifts linearly by 4-8 % over the clip (a slipping belt, a failing governor)
  whine        a 1-5 kHz tone with a slow vibrato, fading in (a dry bearing)
The recordings are 2-4 s long, so clips overlap within one machine and normal test clips share material
with training clips: the task is telling the fault apart, not generalising to another machine.

Everything comes from one seeded numpy generator, so the same seed gives the same clips.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from modalities.audio.readers import ClipFormat, read_waveform, resample
from modalities.audio.speech import coloured_noise, mix_at_snr
from modalities.splits import NORMAL, AnomalySplit, DataSourceError, planned_kinds, split_planned

OPENSFX_CAT = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")
MACHINES = {"mining_machinery": "osfx_11.wav", "helicopter": "osfx_24.wav", "chainsaw": "osfx_56.wav",
            "sawmill": "osfx_40.wav"}
KINDS = (NORMAL, "click", "speed_drift", "whine")
FAULT_SNR_DB = {"click": (-42.0, -34.0), "whine": (-30.0, -22.0)}  # fault power / clip power
DRIFT = (0.03, 0.06)  # speed change over a speed_drift clip
NORMAL_SPEED = 0.015  # +- around 1
BACKGROUND_SNR_DB = (15.0, 30.0)
GAIN_DB = 3.0  # +-


class MachineSoundError(DataSourceError):
    """The OpenTTD sound set or its unpacker is missing, or a recording is unusable."""


@lru_cache(maxsize=8)
def machine_recording(machine: str) -> tuple[np.ndarray, int]:
    """The steady part of a machine's recording: (mono float32 waveform, its rate)."""
    if machine not in MACHINES:
        raise ValueError(f"unknown machine '{machine}' (known: {sorted(MACHINES)})")
    if not OPENSFX_CAT.is_file() or shutil.which("catcodec") is None:
        raise MachineSoundError(f"{OPENSFX_CAT}: the machine sounds need Debian's openttd-opensfx and catcodec "
                                "(apt-get install openttd-opensfx catcodec)")
    with tempfile.TemporaryDirectory(prefix="opensfx-") as tmp:
        (Path(tmp) / "src" / "wav").mkdir(parents=True)  # catcodec writes to the paths stored in the .cat
        shutil.copy(OPENSFX_CAT, tmp)
        subprocess.run(["catcodec", "-d", OPENSFX_CAT.name], cwd=tmp, check=True, capture_output=True)
        waveform, rate = read_waveform(Path(tmp) / "src" / "wav" / MACHINES[machine])
    return steady_part(waveform, rate), rate


def steady_part(waveform: np.ndarray, rate: int, tolerance_db: float = 6.0, frame_s: float = 0.05) -> np.ndarray:
    """The span from the first to the last 50 ms frame within tolerance_db of the median frame level
    (drops fade-ins and fade-outs)."""
    n = int(rate * frame_s)
    frames = waveform[: len(waveform) // n * n].reshape(-1, n)
    level = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-12)
    steady = np.flatnonzero(level >= np.median(level) - tolerance_db)
    return waveform[steady[0] * n:(steady[-1] + 1) * n]


def _speed_curve(kind: str, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Playback speed per output sample: constant near 1, or drifting linearly for speed_drift."""
    speed = 1 + rng.uniform(-NORMAL_SPEED, NORMAL_SPEED)
    if kind != "speed_drift":
        return np.full(samples, speed)
    return speed * (1 + rng.choice([-1, 1]) * rng.uniform(*DRIFT) * np.linspace(0, 1, samples))


def _play(recording: np.ndarray, speed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Read the recording at a varying speed from a random offset (linear interpolation; at the source
    rate, well above the clip's, so the interpolation's high-frequency loss is filtered out later)."""
    advance = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    room = len(recording) - 1 - advance[-1]
    if room < 0:
        raise MachineSoundError(f"the recording's steady part ({len(recording)} samples) is shorter than a clip")
    return np.interp(rng.uniform(0, room) + advance, np.arange(len(recording)), recording)


def _clicks(fmt: ClipFormat, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(fmt.samples)
    for _ in range(int(rng.integers(2, 7))):
        length = int(fmt.sample_rate * rng.uniform(0.003, 0.012))
        start = int(rng.integers(0, fmt.samples - length))
        out[start:start + length] += rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 5))
    return out


def _whine(fmt: ClipFormat, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(fmt.samples) / fmt.sample_rate
    freq = rng.uniform(1000, min(5000, 0.4 * fmt.sample_rate))
    vibrato = 0.005 * freq / (2 * np.pi * 3) * np.sin(2 * np.pi * rng.uniform(2, 5) * t)  # +-0.5 % at 2-5 Hz
    fade_in = np.clip(t / rng.uniform(0.05, 0.5 * t[-1]), 0, 1)
    return fade_in * np.sin(2 * np.pi * freq * t + 2 * np.pi * vibrato + rng.uniform(0, 2 * np.pi))


def _with_fault(clip: np.ndarray, kind: str, fmt: ClipFormat, rng: np.random.Generator) -> np.ndarray:
    if kind == "click":
        return mix_at_snr(clip, _clicks(fmt, rng), -rng.uniform(*FAULT_SNR_DB["click"]))
    if kind == "whine":
        return mix_at_snr(clip, _whine(fmt, rng), -rng.uniform(*FAULT_SNR_DB["whine"]))
    return clip


def machine_sound_waveforms(kinds: np.ndarray, machine: str, fmt: ClipFormat, rng: np.random.Generator) -> np.ndarray:
    """Clips of the given kinds (indices into KINDS) -> float32 waveforms (N, fmt.samples)."""
    recording, rate = machine_recording(machine)
    source_samples = int(np.ceil(fmt.samples * rate / fmt.sample_rate)) + 1
    played = np.stack([_play(recording, _speed_curve(KINDS[k], source_samples, rng), rng) for k in kinds])
    clips = resample(played.astype(np.float32), rate, fmt.sample_rate)[:, :fmt.samples]
    out = np.empty((len(kinds), fmt.samples), np.float32)
    for i, (clip, kind) in enumerate(zip(clips, kinds)):
        clip = clip * 10 ** (rng.uniform(-GAIN_DB, GAIN_DB) / 20)
        clip = mix_at_snr(clip, coloured_noise(fmt.samples, rng.choice([1.0, 2.0]), rng), rng.uniform(*BACKGROUND_SNR_DB))
        out[i] = _with_fault(clip, KINDS[kind], fmt, rng)
    return out


def machine_sound_splits(modality, train: int, val: int, test_normal: int, test_anomalous: int, seed: int,
                         machine: str = "mining_machinery") -> dict[str, AnomalySplit]:
    """Stored log-mel splits (the audio modality's front end): train / val normal only; test has
    test_normal normal clips and test_anomalous faulty ones spread evenly over the fault kinds."""
    rng = np.random.default_rng(seed)
    kinds = planned_kinds(train, val, test_normal, test_anomalous, len(KINDS), rng)
    x = modality.log_mel(machine_sound_waveforms(kinds, machine, modality.clip_format, rng))
    return split_planned(x, kinds, list(KINDS), np.full(len(kinds), machine), train, val)
