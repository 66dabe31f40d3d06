"""Shared pieces of the params schema: strict sections, split fractions, per-modality training overrides."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitFractions(Strict):
    val: float = Field(0.1, gt=0, lt=0.5)
    test: float = Field(0.2, gt=0, lt=0.5)


class OptimOverrides(Strict):
    """Per-modality changes to the top-level `pretrain` / `finetune` sections (null = keep)."""

    epochs: int | None = Field(None, ge=1, le=10000)
    batch_size: int | None = Field(None, ge=2, le=65536)
    lr: float | None = Field(None, gt=0, le=10)
    warmup_epochs: float | None = Field(None, ge=0, le=1000)


class ModalityBase(Strict):
    """Keys every modality section has; each modality adds its own."""

    source: str = "embedded"
    path: str | None = None  # the dataset folder or file, for every source but `embedded`
    mask_ratio: float = Field(0.75, gt=0, lt=1)
    split: SplitFractions = SplitFractions()
    max_samples: int | None = Field(None, ge=10)
    on_corrupt: Literal["error", "skip"] = "error"  # skipped files are listed in data/<modality>/manifest.json
    pretrain: OptimOverrides = OptimOverrides()
    finetune: OptimOverrides = OptimOverrides()

    @model_validator(mode="after")
    def _needs_path(self):
        if self.source != "embedded" and not self.path:
            raise ValueError(f"source '{self.source}' needs 'path' (the dataset location)")
        return self
