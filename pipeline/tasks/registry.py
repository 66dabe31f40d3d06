"""Head kind -> its Task implementation (build, fit, score, describe, report). Each entry is imported
only when a stage asks for that head. Its light spec (metric, modality kinds, settings) is in
pipeline/tasks/kinds.py, which params validation reads."""
from __future__ import annotations

import importlib

from pipeline.tasks.base import Task

IMPLEMENTATIONS = {
    "classification": "pipeline.tasks.classification.task:ClassificationTask",
    "detection": "pipeline.tasks.detection.task:DetectionTask",
    "anomaly": "pipeline.tasks.anomaly.task:AnomalyTask",
}


def get_task(head: str) -> Task:
    if head not in IMPLEMENTATIONS:
        raise KeyError(f"no task implementation for head '{head}' (known: {sorted(IMPLEMENTATIONS)})")
    module, name = IMPLEMENTATIONS[head].split(":")
    return getattr(importlib.import_module(module), name)()
