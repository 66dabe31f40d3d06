"""`modalities.video` in params.yaml."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.params_base import ModalityBase


class VideoParams(ModalityBase):
    source: Literal["embedded"] = "embedded"
    mask_ratio: float = Field(0.9, gt=0, lt=1)
