"""Shared pieces of the params schema: strict sections, split fractions, per-modality training overrides."""
from __future__ import annotations

from typing import ClassVar, Literal

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
    layer_decay: float | None = Field(None, gt=0, le=1)
    min_epochs: int | None = Field(None, ge=0, le=10000)


class AnomalyCounts(Strict):
    """How many samples an embedded anomaly generator makes per split (train and val: normal only)."""

    train: int = Field(800, ge=1, le=1_000_000)
    val: int = Field(200, ge=1, le=1_000_000)
    test_normal: int = Field(200, ge=1, le=1_000_000)
    test_anomalous: int = Field(200, ge=1, le=1_000_000)

    @property
    def total(self) -> int:
        return self.train + self.val + self.test_normal + self.test_anomalous

    def scaled(self, limit: int | None) -> "AnomalyCounts":
        """The counts cut in proportion to at most `limit` samples in all (max_samples), at least 1 each."""
        if not limit or limit >= self.total:
            return self
        share = limit / self.total
        return AnomalyCounts(**{k: max(1, int(v * share)) for k, v in self.model_dump().items()})


class ModalityBase(Strict):
    """Keys every modality section has; each modality adds its own (and its `kind`, image | video | audio |
    text, which picks the implementation; it defaults to the section's name for those four names)."""

    # sources built on this machine, without a dataset on disk (no `path`)
    EMBEDDED_SOURCES: ClassVar[frozenset[str]] = frozenset({"embedded"})
    # sources whose splits are AnomalySplits (train / val normal only) or DetectionSplits (boxes per image)
    ANOMALY_SOURCES: ClassVar[frozenset[str]] = frozenset()
    DETECTION_SOURCES: ClassVar[frozenset[str]] = frozenset()

    source: str = "embedded"
    path: str | None = None  # the dataset folder or file, for every source but `embedded`
    mask_ratio: float = Field(0.75, gt=0, lt=1)
    split: SplitFractions = SplitFractions()
    max_samples: int | None = Field(None, ge=10)
    on_corrupt: Literal["error", "skip"] = "error"  # skipped files are listed in data/<modality>/manifest.json
    pretrain: OptimOverrides = OptimOverrides()
    finetune: OptimOverrides = OptimOverrides()

    @property
    def data_kind(self) -> Literal["classification", "detection", "anomaly"]:
        """What the prepared splits hold: class labels, boxes per image (DetectionSplit) or normal /
        anomalous samples (AnomalySplit); which task heads fit the modality."""
        if self.source in self.DETECTION_SOURCES:
            return "detection"
        return "anomaly" if self.source in self.ANOMALY_SOURCES else "classification"

    @model_validator(mode="after")
    def _needs_path(self):
        if self.source not in self.EMBEDDED_SOURCES and not self.path:
            raise ValueError(f"source '{self.source}' needs 'path' (the dataset location)")
        return self
