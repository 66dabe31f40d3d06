"""Detection: a dense head on the patch grid of an image encoder; scored by COCO mAP@0.5."""
from __future__ import annotations

from pydantic import Field

from modalities.params import Strict
from pipeline.tasks.kinds import TaskSpec


class DetectionSettings(Strict):
    """tasks.<task>.detection"""

    score_threshold: float = Field(0.05, ge=0, le=1)  # the app's default, stored in the export metadata
    eval_score_threshold: float = Field(0.001, ge=0, le=1)  # detections kept when computing mAP
    iou_threshold: float = Field(0.5, gt=0, le=1)  # NMS, and a match for mAP
    max_detections: int = Field(100, ge=1, le=10000)  # per image, after NMS


SPEC = TaskSpec(head="detection", metric="map", data="detection", modality_kinds=("image",),
                settings=DetectionSettings)
