"""Anomaly detection: scorers fitted on normal data only; scored by AUROC."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from modalities.params import Strict
from pipeline.tasks.kinds import TaskSpec


class AnomalySettings(Strict):
    """tasks.<task>.anomaly"""

    knn_k: int = Field(5, ge=1, le=1000)  # score = mean distance to the k nearest normal training embeddings
    target_false_alarm_rate: float = Field(0.1, gt=0, lt=1)  # the threshold flags this share of normal val samples
    max_fpr: float = Field(0.1, gt=0, le=1)  # partial AUROC up to this false-positive rate
    # the exported scorer: knn (pooled embeddings) | temporal_knn (token differences along time; video and
    # audio) for every method | reconstruction (MAE only; the other methods then use knn)
    scorer: Literal["knn", "temporal_knn", "reconstruction"] = "knn"
    reconstruction_masks: int = Field(4, ge=1, le=64)  # fixed masks averaged by the reconstruction scorer


SPEC = TaskSpec(head="anomaly", metric="auroc", data="anomaly", modality_kinds=("video", "audio"),
                settings=AnomalySettings)
