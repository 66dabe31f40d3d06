"""`modalities.image` in params.yaml."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.params_base import ModalityBase, Strict


class ImageAugment(Strict):
    """SimCLR views for images (all ranges are sampled uniformly per view)."""

    crop_scale: tuple[float, float] = (0.35, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.33)
    max_rotation_deg: float = Field(15.0, ge=0, le=180)
    hflip: bool = False  # digits and text are not mirror-symmetric
    brightness: float = Field(0.4, ge=0, le=1)
    contrast: float = Field(0.4, ge=0, le=1)
    blur_prob: float = Field(0.5, ge=0, le=1)
    noise_std: float = Field(0.05, ge=0, le=1)
    invert_prob: float = Field(0.0, ge=0, le=1)


class ImageParams(ModalityBase):
    source: Literal["embedded", "folder", "cifar10"] = "embedded"
    image_size: int = Field(28, ge=8, le=1024)
    channels: Literal[1, 3] = 1
    patch_size: int = Field(4, ge=1, le=64)
    augment: ImageAugment = ImageAugment()

    @model_validator(mode="after")
    def _check(self) -> "ImageParams":
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})"
            )
        return self
