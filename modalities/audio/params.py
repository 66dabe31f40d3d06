"""An audio modality section (`kind: audio`) in params.yaml: `modalities.audio`, or any name with kind audio."""
from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from modalities.params import AnomalyCounts, ModalityBase, Strict

SPEECH_COMMANDS_KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
# a keyword is spoken by the synthesisers and names a class folder: a letter or digit, then letters, digits,
# spaces, apostrophes and hyphens only
KEYWORD = re.compile(r"[^\W_](?:[^\W_]|[ '-])*")


class AudioAugment(Strict):
    """SimCLR views on the log-mel spectrogram (ranges sampled uniformly per view)."""

    max_shift_s: float = Field(0.15, ge=0, le=10)  # time shift; vacated frames get the clip's floor
    gain_db: float = Field(6.0, ge=0, le=40)  # +- this many dB
    noise_prob: float = Field(0.8, ge=0, le=1)  # chance a view gets background noise mixed in
    snr_db: tuple[float, float] = (0.0, 20.0)
    time_masks: int = Field(2, ge=0, le=10)  # SpecAugment: bands of frames set to the fill value
    time_mask_frames: int = Field(12, ge=0, le=1000)  # widest band
    freq_masks: int = Field(2, ge=0, le=10)
    freq_mask_mels: int = Field(8, ge=0, le=256)

    @model_validator(mode="after")
    def _check(self) -> "AudioAugment":
        if self.snr_db[0] > self.snr_db[1]:
            raise ValueError(f"snr_db must be (low, high), got {self.snr_db}")
        return self


class KeywordSynth(Strict):
    """The embedded default: spoken keywords from espeak-ng, flite and festival, with background noise."""

    clips_per_class_per_engine: int = Field(64, ge=2, le=10000)  # x 3 engines x (keywords + unknown)
    snr_db: tuple[float, float] = (5.0, 30.0)  # background noise mixed into every clip
    workers: int | None = Field(None, ge=1, le=256)  # parallel synthesiser processes (null = CPU count)


DEFAULT_MACHINE = "mining_machinery"


class AudioParams(ModalityBase):
    EMBEDDED_SOURCES: ClassVar[frozenset[str]] = frozenset({"embedded", "machine_sounds"})
    ANOMALY_SOURCES: ClassVar[frozenset[str]] = frozenset({"machine_sounds", "mimii", "dcase", "anomaly_folder"})

    kind: Literal["audio"] = "audio"
    # embedded: spoken keywords; speech_commands / esc50 / folder: labelled clips at path;
    # anomaly data: machine_sounds (embedded: OpenTTD machine recordings with injected faults), mimii
    # (path = MIMII root, + machine_type), dcase (path = DCASE task 2 root, + machine), anomaly_folder
    # (path = root with train/normal/, [val/normal/], test/normal/, test/<kind>/)
    source: Literal["embedded", "speech_commands", "esc50", "folder", "machine_sounds", "mimii", "dcase",
                    "anomaly_folder"] = "embedded"
    # machine_sounds: which recording (modalities.audio.machines.MACHINES); dcase: the machine folder (e.g. fan)
    machine: str = Field(DEFAULT_MACHINE, min_length=1)
    machine_type: str | None = Field(None, min_length=1)  # mimii: the machine type folder (fan, pump, slider, valve)
    anomaly: AnomalyCounts = AnomalyCounts(train=600, val=150, test_normal=150, test_anomalous=150)
    mask_ratio: float = Field(0.8, gt=0, lt=1)  # Audio-MAE's ratio
    sample_rate: int = Field(16000, ge=4000, le=96000)
    clip_seconds: float = Field(1.0, gt=0, le=30)
    # longer clips are cut to clip_seconds, shorter ones zero-padded: around the centre, or from the start
    crop: Literal["center", "start"] = "center"
    n_fft: int = Field(400, ge=16, le=8192)  # also the (Hann) window length
    hop_length: int = Field(160, ge=1, le=8192)
    n_mels: int = Field(64, ge=8, le=512)
    f_min: float = Field(0.0, ge=0)
    f_max: float | None = Field(None, gt=0)  # null = sample_rate / 2
    # the front end outputs (ln(mel power + 1e-6) - logmel_mean) / logmel_std
    logmel_mean: float = -6.0  # measured on the embedded keywords
    logmel_std: float = Field(4.4, gt=0)
    patch_mels: int = Field(16, ge=1, le=512)
    patch_frames: int = Field(10, ge=1, le=1000)
    keywords: list[str] = Field(default_factory=lambda: list(SPEECH_COMMANDS_KEYWORDS), min_length=1)
    unknown_share: float | None = Field(1.0, ge=0)  # speech_commands: "unknown" clips per keyword clip (null = all)
    esc50_test_fold: int = Field(5, ge=1, le=5)
    esc50_val_fold: int = Field(4, ge=1, le=5)
    synth: KeywordSynth = KeywordSynth()
    augment: AudioAugment = AudioAugment()

    @field_validator("keywords", mode="before")
    @classmethod
    def _no_yaml_booleans(cls, value):
        if isinstance(value, list) and any(isinstance(v, bool) for v in value):
            raise ValueError("YAML reads unquoted yes/no/on/off as true/false; quote those keywords, e.g. \"yes\"")
        return value

    @field_validator("keywords")
    @classmethod
    def _plain_words(cls, value: list[str]) -> list[str]:
        bad = [word for word in value if not KEYWORD.fullmatch(word)]
        if bad:
            raise ValueError(f"keywords {bad} must start with a letter or digit and contain only letters, digits, "
                             "spaces, apostrophes and hyphens (they are spoken by the speech synthesisers)")
        return value

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def frames(self) -> int:
        """Spectrogram frames per clip: one per hop (the centred STFT's extra last frame is dropped)."""
        return self.clip_samples // self.hop_length

    @model_validator(mode="after")
    def _check(self) -> "AudioParams":
        if self.n_mels % self.patch_mels:
            raise ValueError(f"n_mels ({self.n_mels}) must be a multiple of patch_mels ({self.patch_mels})")
        if self.frames < 1 or self.frames % self.patch_frames:
            raise ValueError(
                f"frames per clip (clip_seconds * sample_rate // hop_length = {self.frames}) must be a positive "
                f"multiple of patch_frames ({self.patch_frames})"
            )
        if self.n_fft > self.clip_samples:
            raise ValueError(f"n_fft ({self.n_fft}) is longer than a clip ({self.clip_samples} samples)")
        nyquist = self.sample_rate / 2
        if (self.f_max or nyquist) > nyquist or self.f_min >= (self.f_max or nyquist):
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2 ({nyquist}), got {self.f_min}, {self.f_max}")
        if self.esc50_test_fold == self.esc50_val_fold:
            raise ValueError(f"esc50_val_fold and esc50_test_fold must differ (both {self.esc50_val_fold})")
        if "unknown" in self.keywords or len(set(self.keywords)) != len(self.keywords):
            raise ValueError(f"keywords must be distinct and not 'unknown', got {self.keywords}")
        if self.source == "machine_sounds":
            from modalities.audio.machines import MACHINES  # imported only here: it pulls in the audio readers

            if self.machine not in MACHINES:
                raise ValueError(f"machine '{self.machine}' is not an embedded machine sound (allowed: {sorted(MACHINES)})")
        if self.source == "dcase" and "machine" not in self.model_fields_set:
            raise ValueError("source 'dcase' needs 'machine' (the DCASE machine folder, e.g. fan or valve)")
        if self.source == "mimii" and not self.machine_type:
            raise ValueError("source 'mimii' needs 'machine_type' (the MIMII machine folder: fan, pump, slider or valve)")
        if self.source != "mimii" and self.machine_type is not None:
            raise ValueError(f"'machine_type' is only for source 'mimii', not '{self.source}'")
        return self
