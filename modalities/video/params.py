"""A video modality section (`kind: video`) in params.yaml: `modalities.video`, or any name with kind video."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from modalities.params import AnomalyCounts, ModalityBase, Strict


class VideoAugment(Strict):
    """SimCLR views for clips: one spatial crop and one colour change per clip (the same on every frame),
    plus a random temporal window resampled back to `frames` (ranges are sampled uniformly per view)."""

    crop_scale: tuple[float, float] = (0.4, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.33)
    max_rotation_deg: float = Field(10.0, ge=0, le=180)
    # flips mirror the motion too (leftward becomes rightward), which is what motion labels tell apart
    hflip: bool = False
    # fraction of the clip's duration a view covers (a shorter window plays slower once resampled)
    temporal_scale: tuple[float, float] = (0.6, 1.0)
    brightness: float = Field(0.4, ge=0, le=1)
    contrast: float = Field(0.4, ge=0, le=1)
    blur_prob: float = Field(0.3, ge=0, le=1)
    noise_std: float = Field(0.03, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> "VideoAugment":
        for key in ("crop_scale", "crop_ratio", "temporal_scale"):
            low, high = getattr(self, key)
            if not 0 < low <= high:
                raise ValueError(f"{key} must be (low, high) with 0 < low <= high, got ({low}, {high})")
        if self.crop_scale[1] > 1 or self.temporal_scale[1] > 1:
            raise ValueError("crop_scale and temporal_scale are fractions of the clip: at most 1")
        return self


class VideoParams(ModalityBase):
    EMBEDDED_SOURCES: ClassVar[frozenset[str]] = frozenset({"embedded", "anomaly"})
    ANOMALY_SOURCES: ClassVar[frozenset[str]] = frozenset({"anomaly", "anomaly_folder"})

    kind: Literal["video"] = "video"
    # embedded: moving digits and camera motion over real footage, built at prepare time;
    # folder: root/<class>/*.mp4 (or root/{train,val,test}/<class>/); ucf101: classInd.txt + split lists;
    # anomaly data: anomaly (embedded: digits in regular motion, and broken motion in test),
    # anomaly_folder (path = root with train/normal/, [val/normal/], test/normal/, test/<kind>/)
    source: Literal["embedded", "folder", "ucf101", "anomaly", "anomaly_folder"] = "embedded"
    anomaly: AnomalyCounts = AnomalyCounts()  # source anomaly: clips per split
    ucf101_split: Literal[1, 2, 3] = 1  # which trainlist0N.txt / testlist0N.txt
    embedded_clips: int = Field(2400, ge=16, le=100_000)
    frames: int = Field(8, ge=1, le=256)  # frames per clip (T)
    fps: float | None = Field(10.0, gt=0, le=240)  # sampling rate; null = every decoded frame
    frame_size: int = Field(32, ge=8, le=1024)  # frames are centre-cropped square, then resized
    channels: Literal[1, 3] = 1
    tubelet_frames: int = Field(2, ge=1, le=64)  # tubelet size over time
    patch_size: int = Field(8, ge=1, le=128)  # tubelet size over height and width
    mask_ratio: float = Field(0.9, gt=0, lt=1)  # of the spatial tubes (VideoMAE's tube masking)
    augment: VideoAugment = VideoAugment()

    @model_validator(mode="after")
    def _check(self) -> "VideoParams":
        if self.frames % self.tubelet_frames:
            raise ValueError(f"frames ({self.frames}) must be a multiple of tubelet_frames ({self.tubelet_frames})")
        if self.frame_size % self.patch_size:
            raise ValueError(f"frame_size ({self.frame_size}) must be a multiple of patch_size ({self.patch_size})")
        return self
