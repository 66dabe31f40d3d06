"""Audio: a log-mel front end, 2-D spectrogram patches as tokens, SpecAugment/noise SimCLR views, patch MAE targets.

Prepare stores what the deployable model takes: normalised log-mel spectrograms (float16), computed
once by `LogMelFrontEnd`, the same module that is exported as the app's `frontend.onnx`. Storing
spectrograms rather than int16 waveforms halves the data (64 x 100 x 2 bytes vs 16,000 x 2 per
second), keeps the STFT out of every training step, and loses nothing the model could use: every
augmentation works on the model input, the spectrogram, anyway. float16 rounds the normalised values
(|x| < ~8) by at most 2^-9, well inside the augmentations' noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from modalities.audio import anomaly_readers
from modalities.audio import readers as audio_formats
from modalities.audio import speech as speech_synth
from modalities.audio.readers import ClipFormat, Clips
from modalities.base import Modality, PreparedData
from modalities.sincos import sincos_2d
from modalities.splits import Split, check_anomaly_splits, stratified_split

LOG_FLOOR = 1e-6  # added to the mel power before the log
NOISE_BANK_SIZE = 64  # background clips kept with the train split for noise-mixing views
RAW_KEY = "waveform"  # the test split's waveforms, stored beside its spectrograms for robustness runs
INT16_SCALE = 32768.0  # as 16-bit PCM files are read: int16 k <-> float k / 32768


def compact_waveforms(waveforms: np.ndarray) -> np.ndarray:
    """Waveforms to store losslessly: int16 when every sample is a 16-bit PCM value (a PCM file read at the
    model's rate, half the bytes), else float32 (generated, resampled or lossy-coded clips)."""
    waveforms = np.asarray(waveforms, dtype=np.float32)
    pcm = np.clip(np.rint(waveforms.astype(np.float64) * INT16_SCALE), -32768, 32767).astype(np.int16)
    return pcm if np.array_equal(expand_waveforms(pcm), waveforms) else waveforms


def expand_waveforms(stored: np.ndarray) -> np.ndarray:
    """Stored waveforms (int16 or float32) -> float32 in [-1, 1]."""
    if stored.dtype == np.int16:
        return (stored.astype(np.float32) / np.float32(INT16_SCALE)).astype(np.float32)
    return np.asarray(stored, dtype=np.float32)


class LogMelFrontEnd(nn.Module):
    """waveform (B, samples) float32 -> normalised log-mel (B, 1, n_mels, frames), ONNX-exportable.

    Equal to torchaudio.transforms.MelSpectrogram (Hann window, centred reflect-padded STFT, power 2,
    HTK mel filters from torchaudio.functional.melscale_fbanks), then ln(. + 1e-6), then (. - mean) / std.
    The STFT is a strided conv1d with cos/sin kernels because torch.stft returns complex tensors,
    which the ONNX exporter cannot express; a conv also runs everywhere (onnxruntime, OpenVINO, NPUs).
    """

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, f_min: float,
                 f_max: float | None, frames: int, mean: float, std: float):
        super().__init__()
        n_freqs = n_fft // 2 + 1
        angle = 2 * math.pi * torch.outer(torch.arange(n_freqs, dtype=torch.float64),
                                          torch.arange(n_fft, dtype=torch.float64)) / n_fft
        window = torch.hann_window(n_fft, dtype=torch.float64)  # MelSpectrogram's default window_fn
        dft = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
        self.register_buffer("dft", dft.float().unsqueeze(1))  # (2 * n_freqs, 1, n_fft)
        fbanks = torchaudio.functional.melscale_fbanks(n_freqs, f_min, f_max or sample_rate / 2, n_mels, sample_rate)
        self.register_buffer("fbanks", fbanks.T.contiguous())  # (n_mels, n_freqs)
        self.hop_length, self.pad, self.frames = hop_length, n_fft // 2, frames
        self.mean, self.std = mean, std

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        padded = F.pad(waveform.unsqueeze(1), (self.pad, self.pad), mode="reflect")
        re, im = F.conv1d(padded, self.dft, stride=self.hop_length).chunk(2, dim=1)
        mel = torch.matmul(self.fbanks, re * re + im * im)[..., : self.frames]  # drop the centred STFT's extra frame
        return ((torch.log(mel + LOG_FLOOR) - self.mean) / self.std).unsqueeze(1)


@dataclass
class AudioSplit(Split):
    """A split of spectrograms; the train split also carries background-noise spectrograms for the views,
    the test split its waveforms (`waveform`, the raw inputs of robustness runs)."""

    noise: np.ndarray | None = None
    waveform: np.ndarray | None = None


class _WaveformsOnly:
    """The modality as the anomaly readers see it, but with log_mel left out: their splits then hold
    waveforms, from which `AudioModality._encode` computes spectrograms and keeps the test split's raw."""

    def __init__(self, modality: "AudioModality"):
        self._modality = modality

    def __getattr__(self, name: str):
        return getattr(self._modality, name)

    def log_mel(self, waveforms: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return np.asarray(waveforms, dtype=np.float32)


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def band_mask(batch: int, size: int, count: int, max_width: int, g: torch.Generator) -> torch.Tensor:
    """(batch, size) bool: `count` bands per row, each of width 0..max_width at a random start."""
    width = torch.randint(0, max_width + 1, (batch, count), generator=g)
    start = (torch.rand(batch, count, generator=g) * (size - width + 1)).floor()
    pos = torch.arange(size).view(1, 1, -1)
    return ((pos >= start.unsqueeze(-1)) & (pos < (start + width).unsqueeze(-1))).any(dim=1)


class AudioModality(Modality):
    kind = "audio"
    name = kind  # the default; get_modality sets the instance's name from params.yaml
    SPEC_AUGMENT_FILL = 0.0  # the normalised dataset mean

    def __init__(self, params, seed: int = 0):
        super().__init__(params, seed)
        self.noise: torch.Tensor | None = None  # background spectrograms (K, 1, mels, frames)

    @property
    def clip_format(self) -> ClipFormat:
        return ClipFormat(self.params.sample_rate, self.params.clip_samples, self.params.crop)

    # ---- front end --------------------------------------------------------
    def frontend_module(self) -> LogMelFrontEnd:
        p = self.params
        return LogMelFrontEnd(p.sample_rate, p.n_fft, p.hop_length, p.n_mels, p.f_min, p.f_max, p.frames,
                              p.logmel_mean, p.logmel_std).eval()

    def frontend(self) -> tuple[nn.Module, dict]:
        return self.frontend_module(), {"name": "waveform", "shape": [-1, self.params.clip_samples],
                                        "dtype": "float32"}

    def log_mel(self, waveforms: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """float32 (N, samples) -> float16 (N, 1, mels, frames): what prepare stores."""
        module = self.frontend_module()
        out = np.zeros((len(waveforms), 1, self.params.n_mels, self.params.frames), np.float16)
        with torch.inference_mode():
            for i in range(0, len(waveforms), batch_size):
                out[i:i + batch_size] = module(torch.from_numpy(waveforms[i:i + batch_size])).numpy()
        return out

    # ---- data -------------------------------------------------------------
    def load_raw(self) -> PreparedData:
        if self.params.source in self.params.ANOMALY_SOURCES:
            return self._load_anomaly()
        skipped: list[str] = []
        readers = {"embedded": self._read_embedded, "speech_commands": self._read_speech_commands,
                   "esc50": self._read_esc50, "folder": self._read_folder}
        clips, labels, noise, source = readers[self.params.source](skipped)
        for name, part in clips.items():
            if len(part.y) == 0:
                raise ValueError(f"{source}: split '{name}' has no readable clips")
        splits = {name: self._encode(AudioSplit(c.x, c.y, labels), name) for name, c in clips.items()}
        splits["train"].noise = self.log_mel(noise)
        return PreparedData(splits=splits, source=source, skipped=skipped)

    def _load_anomaly(self) -> PreparedData:
        """machine_sounds (embedded) / mimii / dcase / anomaly_folder -> AnomalySplits of log-mel spectrograms:
        train and val normal clips, test both. The train split carries generated background noise for the
        SimCLR views (these sources have no noise recordings of their own)."""
        p, skipped, reader = self.params, [], _WaveformsOnly(self)
        root = Path(p.path) if p.path else None
        if p.source == "machine_sounds":
            from modalities.audio.machines import machine_sound_splits  # needs openttd-opensfx: only when used

            n = p.anomaly.scaled(p.max_samples)
            splits = machine_sound_splits(reader, n.train, n.val, n.test_normal, n.test_anomalous, self.seed, p.machine)
            source = f"OpenTTD '{p.machine}' recording with injected faults (embedded)"
        elif p.source == "mimii":
            splits = anomaly_readers.read_mimii(root, p.machine_type, reader, p.on_corrupt, skipped, p.split.val,
                                                self.seed)
            source = f"MIMII {p.machine_type} at {root}"
        elif p.source == "dcase":
            splits = anomaly_readers.read_dcase(root, p.machine, reader, p.on_corrupt, skipped, p.split.val, self.seed)
            source = f"DCASE task 2 {p.machine} at {root}"
        else:
            splits = anomaly_readers.read_anomaly_folder(root, reader, p.on_corrupt, skipped, p.split.val, self.seed)
            source = f"anomaly clip folders at {root}"
        check_anomaly_splits(splits, source)
        splits = {name: self._encode(split, name) for name, split in splits.items()}
        splits["train"].noise = self.log_mel(self._generated_noise())
        return PreparedData(splits=splits, source=source, skipped=skipped)

    def _encode(self, split: Split, name: str) -> Split:
        """A split of waveforms -> of stored spectrograms; the test split also keeps its waveforms (`waveform`,
        losslessly: compact_waveforms), so encode_raw(raw_inputs(test)) gives its spectrograms again."""
        if name == "test":
            split.waveform = compact_waveforms(split.x)
        split.x = self.log_mel(split.x)
        return split

    def _read_embedded(self, skipped):
        p = self.params
        classes = len(p.keywords) + 1
        per_class = p.synth.clips_per_class_per_engine
        if p.max_samples:
            per_class = max(2, min(per_class, p.max_samples // (classes * len(speech_synth.ENGINES))))
        data = speech_synth.spoken_keywords(p.keywords, per_class, self.clip_format, p.synth.snr_db, self.seed,
                                            p.synth.workers, bank_size=NOISE_BANK_SIZE)
        parts = stratified_split(data.engine * classes + data.y, p.split.val, p.split.test, self.seed)
        clips = {name: Clips(data.x[idx], data.y[idx]) for name, idx in parts.items()}
        return clips, data.labels, data.noise, "spoken keywords from espeak-ng, flite and festival (embedded)"

    def _read_files(self, files: dict[str, list], skipped: list[str]) -> dict[str, Clips]:
        """Read per-split file lists, first cut to max_samples in all (a seeded random choice)."""
        tagged = [(split, f) for split, fs in files.items() for f in fs]
        tagged = audio_formats.seeded_subset(tagged, self.params.max_samples, self.seed)
        return {split: audio_formats.read_clips([f for s, f in tagged if s == split], self.clip_format,
                                                self.params.on_corrupt, skipped) for split in files}

    def _generated_noise(self) -> np.ndarray:
        return speech_synth.noise_bank(NOISE_BANK_SIZE, self.clip_format, np.random.default_rng(self.seed))

    def _read_speech_commands(self, skipped):
        p, root = self.params, Path(self.params.path)
        files, labels = audio_formats.speech_commands_files(root, p.keywords)
        unknown = labels.index(audio_formats.UNKNOWN)
        files = {s: audio_formats.cap_unknown(fs, unknown, p.unknown_share, self.seed) for s, fs in files.items()}
        clips = self._read_files(files, skipped)
        noise = audio_formats.background_noise(root, self.clip_format, NOISE_BANK_SIZE, p.on_corrupt, skipped)
        return clips, labels, noise if len(noise) else self._generated_noise(), f"Speech Commands at {root}"

    def _read_esc50(self, skipped):
        p, root = self.params, Path(self.params.path)
        files, labels = audio_formats.esc50_files(root, p.esc50_val_fold, p.esc50_test_fold)
        return self._read_files(files, skipped), labels, self._generated_noise(), f"ESC-50 at {root}"

    def _read_folder(self, skipped):
        p, root = self.params, Path(self.params.path)
        files, labels = audio_formats.class_folder_files(root)
        clips = self._read_files({"all": files}, skipped)["all"]
        parts = stratified_split(clips.y, p.split.val, p.split.test, self.seed)
        clips = {name: Clips(clips.x[idx], clips.y[idx]) for name, idx in parts.items()}
        return clips, labels, self._generated_noise(), f"class folders at {root}"

    def save_split(self, split: Split, path) -> None:
        extras = {key: getattr(split, key, None) for key in ("noise", RAW_KEY)}
        np.savez(path, **split.arrays(), **{key: value for key, value in extras.items() if value is not None})

    def load_split(self, data_dir: str | Path, split: str) -> Split:
        """As the base class; loading the train split also keeps its background noise for the views."""
        loaded = super().load_split(data_dir, split)
        with np.load(Path(data_dir) / f"{split}.npz", allow_pickle=False) as arrays:
            if "noise" in arrays.files:
                self.noise = torch.from_numpy(arrays["noise"]).float()
        return loaded

    def raw_inputs(self, data_dir: str | Path, split: str) -> np.ndarray:
        """The split's float32 waveforms (N, clip_samples) in [-1, 1]; prepare keeps them for test only."""
        (kept,) = self.kept_raw_arrays(data_dir, split, (RAW_KEY,))
        return expand_waveforms(kept)

    def encode_raw(self, raw, data_dir: str | Path) -> np.ndarray:
        """Waveforms -> stored log-mel spectrograms (float16), the front end prepare runs."""
        return self.log_mel(np.ascontiguousarray(raw, dtype=np.float32))

    def corruptions(self) -> dict:
        from modalities.audio.corruptions import corruptions

        return corruptions(self.params)

    def background(self) -> torch.Tensor:
        """Noise spectrograms for the views: the prepared train split's, else generated ones (seeded)."""
        if self.noise is None:
            self.noise = torch.from_numpy(self.log_mel(self._generated_noise())).float()
        return self.noise

    # ---- model input ------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int]:
        p = self.params
        return p.n_mels // p.patch_mels, p.frames // p.patch_frames

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def token_embedding(self, embed_dim: int) -> nn.Module:
        from timm.layers import PatchEmbed  # timm is slow to import; stages that build no model skip it

        p = self.params
        return PatchEmbed(img_size=(p.n_mels, p.frames), patch_size=(p.patch_mels, p.patch_frames), in_chans=1,
                          embed_dim=embed_dim)

    def position_embedding(self, embed_dim: int) -> torch.Tensor:
        return sincos_2d(*self.grid, embed_dim)

    # ---- SimCLR -----------------------------------------------------------
    def _power(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel -> mel power (the front end's steps undone)."""
        return torch.exp(x * self.params.logmel_std + self.params.logmel_mean)

    def _from_power(self, power: torch.Tensor) -> torch.Tensor:
        return (torch.log(power) - self.params.logmel_mean) / self.params.logmel_std

    def _shift(self, x: torch.Tensor, g: torch.Generator, max_frames: int) -> torch.Tensor:
        """Move each clip in time by up to max_frames; vacated frames get the clip's quietest value."""
        b, _, mels, frames = x.shape
        shift = torch.randint(-max_frames, max_frames + 1, (b, 1), generator=g).to(x.device)
        source = torch.arange(frames, device=x.device).unsqueeze(0) - shift
        inside = ((source >= 0) & (source < frames)).view(b, 1, 1, frames)
        moved = torch.gather(x, 3, source.clamp(0, frames - 1).view(b, 1, 1, frames).expand_as(x))
        return torch.where(inside, moved, x.amin(dim=(2, 3), keepdim=True))

    def _gain(self, x: torch.Tensor, g: torch.Generator, max_db: float) -> torch.Tensor:
        db = _uniform(x.shape[0], -max_db, max_db, g).view(-1, 1, 1, 1).to(x.device)
        return x + db * math.log(10) / 10 / self.params.logmel_std  # power x 10^(dB/10) in the log domain

    def _add_noise(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Mix a random background clip (rolled in time) at a random SNR, adding mel powers."""
        a, b, frames = self.params.augment, x.shape[0], x.shape[-1]
        bank = self.background()
        pick, roll = torch.randint(len(bank), (b,), generator=g), torch.randint(frames, (b, 1), generator=g)
        cols = (torch.arange(frames).unsqueeze(0) - roll) % frames
        noise = torch.gather(bank[pick], 3, cols.view(b, 1, 1, frames).expand(-1, 1, bank.shape[2], -1)).to(x.device)
        snr = _uniform(b, *a.snr_db, g).view(-1, 1, 1, 1).to(x.device)
        signal, noise = self._power(x), self._power(noise)
        scale = signal.mean(dim=(2, 3), keepdim=True) / noise.mean(dim=(2, 3), keepdim=True) * 10 ** (-snr / 10)
        use = (torch.rand(b, generator=g) < a.noise_prob).view(-1, 1, 1, 1).to(x.device)
        return torch.where(use, self._from_power(signal + scale * noise), x)

    def _spec_augment(self, x, g, time_masks, time_width, freq_masks, freq_width) -> torch.Tensor:
        b, _, mels, frames = x.shape
        times = band_mask(b, frames, time_masks, time_width, g).view(b, 1, 1, frames)
        freqs = band_mask(b, mels, freq_masks, freq_width, g).view(b, 1, mels, 1)
        return x.masked_fill((times | freqs).to(x.device), self.SPEC_AUGMENT_FILL)

    def _view(self, x, g):
        a, p = self.params.augment, self.params
        x = self._shift(x, g, int(a.max_shift_s * p.sample_rate / p.hop_length))
        x = self._add_noise(self._gain(x, g, a.gain_db), g)
        return self._spec_augment(x, g, a.time_masks, a.time_mask_frames, a.freq_masks, a.freq_mask_mels)

    def simclr_views(self, x, generator):
        return self._view(x, generator), self._view(x, generator)

    def finetune_augment(self, x, generator):
        """Light: a shift of up to a third of the SimCLR range, +-3 dB, one narrow time and frequency mask."""
        a, p = self.params.augment, self.params
        x = self._shift(x, generator, int(a.max_shift_s / 3 * p.sample_rate / p.hop_length))
        x = self._gain(x, generator, min(a.gain_db, 3.0))
        return self._spec_augment(x, generator, 1, a.time_mask_frames // 2, 1, a.freq_mask_mels // 2)

    # ---- MAE --------------------------------------------------------------
    @property
    def target_dim(self) -> int:
        return self.params.patch_mels * self.params.patch_frames

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, mels, frames) -> (B, N, patch_mels * patch_frames), row-major over the (mel, time) grid."""
        (gm, gt), pm, pt = self.grid, self.params.patch_mels, self.params.patch_frames
        x = x.reshape(x.shape[0], gm, pm, gt, pt)
        return torch.einsum("bmptq->bmtpq", x).reshape(x.shape[0], gm * gt, pm * pt)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        (gm, gt), pm, pt = self.grid, self.params.patch_mels, self.params.patch_frames
        x = tokens.reshape(tokens.shape[0], gm, gt, pm, pt)
        return torch.einsum("bmtpq->bmptq", x).reshape(tokens.shape[0], 1, gm * pm, gt * pt)

    def reconstruction_figure(self, x: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, normalized: bool):
        """One row per clip: original | masked (hidden patches dark) | reconstruction with visible patches
        pasted; low frequencies at the bottom, grey levels spanning each clip's own range."""
        target = self.patchify(x)
        if normalized:  # undo the per-patch normalisation with the true patch statistics
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            pred = pred * (var + 1e-6) ** 0.5 + mean
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        high = x.amax(dim=(1, 2, 3), keepdim=True)
        m = mask.unsqueeze(-1)
        masked = self.unpatchify(target * (1 - m) + low.view(-1, 1, 1) * m)
        pasted = self.unpatchify(target * (1 - m) + pred * m)
        panels = [(p - low) / (high - low).clamp(min=1e-6) for p in (x, masked, pasted)]
        rows = torch.cat(panels, dim=3)[:, 0].flip(1)  # (B, mels, 3 * frames), low mels at the bottom
        picture = rows.reshape(-1, rows.shape[-1])
        return (picture.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

    # ---- deployment -------------------------------------------------------
    def input_spec(self) -> dict:
        p = self.params
        return {"name": "spectrogram", "shape": [-1, 1, p.n_mels, p.frames], "dtype": "float32"}

    baseline_features_name = "log-mel band mean, std and max, and band means over 4 time segments"

    def baseline_features(self, x: np.ndarray) -> np.ndarray:
        mel = self.to_input(torch.from_numpy(x))[:, 0]  # (N, mels, frames)
        segments = [part.mean(2) for part in mel.chunk(4, dim=2)]
        return torch.cat([mel.mean(2), mel.std(2), mel.amax(2), *segments], 1).numpy()

    def preprocessing(self) -> dict:
        p = self.params
        return {
            "sample_rate": p.sample_rate,
            "resample": "windowed sinc as torchaudio.functional.resample's defaults (Hann, 6 zero crossings, "
                        "rolloff 0.99), when a file's rate differs",
            "mono": "average of the channels",
            "clip_samples": p.clip_samples,
            "crop": p.crop,
            "length": ("longer clips: keep the middle clip_samples; shorter: zero-pad both sides, the odd sample "
                       "at the end" if p.crop == "center" else
                       "longer clips: keep the first clip_samples; shorter: zero-pad at the end"),
            "frontend": "frontend.onnx",
            "frontend_io": "waveform float32 [N, clip_samples] in [-1, 1] -> model input [N, 1, n_mels, frames]",
            "log_mel": {"n_fft": p.n_fft, "win_length": p.n_fft, "window": "hann", "hop_length": p.hop_length,
                        "n_mels": p.n_mels, "f_min": p.f_min, "f_max": p.f_max or p.sample_rate / 2,
                        "mel_scale": "htk", "power": 2.0, "center": True, "pad_mode": "reflect",
                        "log": f"ln(mel + {LOG_FLOOR})", "mean": p.logmel_mean, "std": p.logmel_std,
                        "frames": p.frames},
        }
