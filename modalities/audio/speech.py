"""The embedded audio default: spoken keywords synthesised at prepare time, with background noise.

Three text-to-speech engines (Debian packages espeak-ng, flite, festival + voices) speak every
word with many voices, speeds and pitches. Each engine sounds very different (formant synthesis,
diphone concatenation, HMM), so every class gets the same number of clips from each engine: a
classifier cannot learn "engine" instead of "word", and the splits are stratified by engine x word.
After synthesis every clip gets a small playback-rate change (pitch and tempo together), a random
place inside the clip, a random level and background noise at a random SNR: coloured noise, mains
hum, or babble made of other synthesised words played backwards.

Everything is drawn from one seeded numpy generator, and the engines are deterministic, so the
same seed gives the same clips: each clip depends on its own utterance only (one engine process per
utterance, the words passed as a text file). Synthesis runs in parallel subprocesses in a temporary folder.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modalities.audio.readers import UNKNOWN, ClipFormat, fit_length, read_waveform, resample

ENGINES = ("espeak-ng", "flite", "festival")
# Words for the "unknown" class: Speech Commands' auxiliary words (keywords are removed from it).
OTHER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "bed", "bird",
               "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "learn", "follow", "forward",
               "backward", "visual"]
ESPEAK_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd"]
ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "croak", "edward", "linda", "robert", "steph", "iven", "david", "anika"]
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
FESTIVAL_VOICES = ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"]
FESTIVAL_DIPHONE = {"kal_diphone", "ked_diphone"}  # their pitch follows int_lr_params; the HTS voice's does not
NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")
FESTIVAL_HEAP = 1_000_000  # Lisp cells (festival's default is 10M)


class SynthesisError(RuntimeError):
    """A speech engine is missing or failed."""


@dataclass(frozen=True)
class Utterance:
    engine: str
    word: str
    label: int
    voice: str
    stretch: float  # duration stretch (>1 slower)
    pitch: float  # espeak-ng: 0-99; flite / festival: target F0 mean in Hz


def word_lists(keywords: list[str]) -> tuple[list[str], list[str]]:
    """(class labels = keywords + 'unknown', the words spoken for 'unknown')."""
    return [*keywords, UNKNOWN], [w for w in OTHER_WORDS if w not in keywords]


def plan(keywords: list[str], per_class: int, rng: np.random.Generator) -> list[Utterance]:
    """per_class utterances of every class from every engine, voices and prosody drawn at random."""
    labels, others = word_lists(keywords)
    utterances = []
    for engine in ENGINES:
        for label, name in enumerate(labels):
            for i in range(per_class):
                word = others[rng.integers(len(others))] if name == UNKNOWN else name
                utterances.append(_utterance(engine, word, label, i, rng))
    return utterances


def _utterance(engine: str, word: str, label: int, i: int, rng: np.random.Generator) -> Utterance:
    stretch = float(rng.uniform(0.75, 1.35))
    if engine == "espeak-ng":  # cycle voices so every class hears all of them
        voice = f"{ESPEAK_VOICES[i % len(ESPEAK_VOICES)]}+{ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]}"
        return Utterance(engine, word, label, voice, stretch, float(rng.integers(10, 90)))
    voices = FLITE_VOICES if engine == "flite" else FESTIVAL_VOICES
    female = voices[i % len(voices)] in ("slt", "cmu_us_slt_arctic_hts")
    pitch = float(rng.uniform(150, 240) if female else rng.uniform(75, 150))
    return Utterance(engine, word, label, voices[i % len(voices)], stretch, pitch)


# ---- running the engines ------------------------------------------------------------------------

def _require(program: str) -> None:
    if shutil.which(program) is None:
        raise SynthesisError(f"'{program}' not found: the embedded audio data needs the Debian packages "
                             "espeak-ng, flite, festival, festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts")


def _run(cmd: list[str], folder: Path) -> None:
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if done.returncode:
        raise SynthesisError(f"{' '.join(cmd[:3])} ... failed ({done.returncode}): {done.stderr.strip()[:300]}")


# Every engine reads the words from a text file (data, never program text or options) and runs in its own
# process: festival's output depends on what the same process did before (earlier words, even the length
# of file names). Names are relative to the work folder and of fixed length, so nothing about the run but
# the utterance reaches the engine.

def _espeak(u: Utterance, text: str, wav: str, folder: Path) -> None:
    wpm = int(round(175 / u.stretch))
    _run(["espeak-ng", "-v", u.voice, "-s", str(wpm), "-p", str(int(u.pitch)), "-f", text, "-w", wav], folder)


def _flite(u: Utterance, text: str, wav: str, folder: Path) -> None:
    _run(["flite", "-voice", u.voice, "--setf", f"duration_stretch={u.stretch:.3f}",
          "--setf", f"int_f0_target_mean={u.pitch:.0f}", "-f", text, "-o", wav], folder)


def _festival(u: Utterance, text: str, wav: str, folder: Path) -> None:
    """A fixed Scheme driver (voice name from FESTIVAL_VOICES, numbers, file names) that speaks the text file."""
    if u.voice not in FESTIVAL_VOICES:
        raise SynthesisError(f"festival voice '{u.voice}' is not one of {FESTIVAL_VOICES}")
    lines = [f"(voice_{u.voice})", f"(Parameter.set 'Duration_Stretch {u.stretch:.3f})"]
    if u.voice in FESTIVAL_DIPHONE:
        lines.append(f"(set! int_lr_params '((target_f0_mean {u.pitch:.0f}) (target_f0_std 15) "
                     "(model_f0_mean 170) (model_f0_std 34)))")
    lines += ["(defvar speech nil)",  # text may split into several utterances: join their waves
              "(set! tts_hooks (list utt.synth (lambda (utt) (set! speech (if speech "
              "(wave.append speech (utt.wave utt)) (utt.wave utt))))))",
              f'(tts_file "{text}" nil)', f'(wave.save speech "{wav}" \'riff)']
    script = Path(text).with_suffix(".scm").name
    (folder / script).write_text("\n".join(lines) + "\n")
    # a small Lisp heap: the default 10M cells take 0.3-0.5 s to set up, more than a word takes to speak
    _run(["festival", "--heap", str(FESTIVAL_HEAP), "--batch", script], folder)


SYNTHESISERS = {"espeak-ng": _espeak, "flite": _flite, "festival": _festival}


def synthesise(utterances: list[Utterance], workers: int | None) -> list[tuple[np.ndarray, int]]:
    """Run the engines in parallel subprocesses -> (mono waveform, its sample rate) per utterance."""
    for engine in sorted({u.engine for u in utterances}):
        _require(engine)
    with tempfile.TemporaryDirectory(prefix="speech-synth-") as tmp:
        folder = Path(tmp)
        names = [f"{i:06d}" for i in range(len(utterances))]
        for u, name in zip(utterances, names):
            (folder / f"{name}.txt").write_text(u.word + "\n", encoding="utf-8")
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:  # threads wait on processes
            futures = [pool.submit(SYNTHESISERS[u.engine], u, f"{name}.txt", f"{name}.wav", folder)
                       for u, name in zip(utterances, names)]
            for future in futures:
                future.result()
        return [read_waveform(folder / f"{name}.wav") for name in names]


# ---- clips --------------------------------------------------------------------------------------

def trim_silence(waveform: np.ndarray, rate: int, threshold_db: float = -35.0) -> np.ndarray:
    """Cut leading/trailing stretches quieter than threshold_db below the peak (10 ms frames)."""
    frame = max(1, rate // 100)
    n = len(waveform) // frame
    if n == 0:
        return waveform
    energy = np.sqrt((waveform[: n * frame].reshape(n, frame) ** 2).mean(axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(energy / energy.max()) > threshold_db)
    return waveform[loud[0] * frame:(loud[-1] + 1) * frame]


def speak_into_clip(waveform: np.ndarray, rate: int, fmt: ClipFormat, rng: np.random.Generator) -> np.ndarray:
    """Playback-rate jitter (+-10 %, pitch and tempo), trimmed, placed at random, peak level 0.1-0.9."""
    # multiples of 400 Hz: few distinct rate pairs (cached resampling filters), each with a short filter
    rate_heard = int(round(rate * rng.uniform(0.9, 1.1) / 400)) * 400
    speech = trim_silence(resample(waveform.astype(np.float32), rate_heard, fmt.sample_rate), fmt.sample_rate)
    speech = fit_length(speech, fmt.samples, "center") if len(speech) > fmt.samples else speech
    clip = np.zeros(fmt.samples, np.float32)
    start = rng.integers(0, fmt.samples - len(speech) + 1)
    clip[start:start + len(speech)] = speech
    return clip * np.float32(rng.uniform(0.1, 0.9) / max(np.abs(clip).max(), 1e-6))


def coloured_noise(samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1 / f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.maximum(np.fft.rfftfreq(samples), 1.0 / samples)
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=samples)
    return noise / (noise.std() + 1e-12)


def mains_hum(fmt: ClipFormat, rng: np.random.Generator) -> np.ndarray:
    """50 or 60 Hz and decaying odd/even harmonics with random phases, over faint white noise, unit RMS."""
    t = np.arange(fmt.samples) / fmt.sample_rate
    base = 50.0 if rng.random() < 0.5 else 60.0
    hum = sum(np.sin(2 * math.pi * base * k * t + rng.uniform(0, 2 * math.pi)) / k for k in range(1, 8))
    hum = hum + 0.05 * rng.standard_normal(fmt.samples)
    return hum / hum.std()


def babble(speech: list[np.ndarray], fmt: ClipFormat, rng: np.random.Generator) -> np.ndarray:
    """3-6 spoken clips, reversed (speech-like but no words) and rolled at random, summed; unit RMS."""
    picks = rng.choice(len(speech), size=min(len(speech), int(rng.integers(3, 7))), replace=False)
    mix = sum(np.roll(speech[i][::-1], int(rng.integers(fmt.samples))) for i in picks)
    return mix / (mix.std() + 1e-12)


def noise_clip(kind: str, fmt: ClipFormat, rng: np.random.Generator, speech: list[np.ndarray]) -> np.ndarray:
    if kind == "hum":
        return mains_hum(fmt, rng)
    if kind == "babble" and speech:
        return babble(speech, fmt, rng)
    return coloured_noise(fmt.samples, {"white": 0.0, "pink": 1.0, "brown": 2.0}.get(kind, 1.0), rng)


def noise_bank(count: int, fmt: ClipFormat, rng: np.random.Generator, speech: list[np.ndarray] = ()) -> np.ndarray:
    """count unit-RMS background clips cycling through the noise kinds, float32 (count, samples)."""
    kinds = NOISE_KINDS if len(speech) else NOISE_KINDS[:-1]
    return np.stack([noise_clip(kinds[i % len(kinds)], fmt, rng, list(speech)) for i in range(count)]).astype(np.float32)


def mix_at_snr(clip: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    scale = np.sqrt((clip ** 2).mean() / ((noise ** 2).mean() + 1e-12) / 10 ** (snr_db / 10))
    mixed = clip + scale * noise
    return (mixed / max(1.0, np.abs(mixed).max())).astype(np.float32)  # never clip


@dataclass
class SpokenKeywords:
    x: np.ndarray  # float32 (N, samples)
    y: np.ndarray  # int64 (N,)
    engine: np.ndarray  # int64 (N,): index into ENGINES
    labels: list[str]
    noise: np.ndarray  # float32 (K, samples): background noise for augmentation (not used in the clips)


def spoken_keywords(keywords: list[str], per_class: int, fmt: ClipFormat, snr_db: tuple[float, float], seed: int,
                    workers: int | None = None, engines: tuple[str, ...] = ENGINES,
                    bank_size: int = 64) -> SpokenKeywords:
    """The embedded dataset: per_class clips of every class from every engine, noisy, deterministic per seed."""
    rng = np.random.default_rng(seed)
    utterances = [u for u in plan(keywords, per_class, rng) if u.engine in engines]
    spoken = [speak_into_clip(w, rate, fmt, rng) for w, rate in synthesise(utterances, workers)]
    clips = [mix_at_snr(c, noise_clip(NOISE_KINDS[rng.integers(len(NOISE_KINDS))], fmt, rng, spoken),
                        rng.uniform(*snr_db)) for c in spoken]
    return SpokenKeywords(
        x=np.stack(clips), y=np.asarray([u.label for u in utterances], dtype=np.int64),
        engine=np.asarray([ENGINES.index(u.engine) for u in utterances], dtype=np.int64),
        labels=word_lists(keywords)[0], noise=noise_bank(bank_size, fmt, rng, spoken),
    )
