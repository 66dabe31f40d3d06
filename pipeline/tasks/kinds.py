"""The task kinds (heads) params.yaml may name, and what each declares about itself.

Light on purpose (pydantic only): the params schema is built from these specs, and every stage reads
params, so importing a head's training code here would make every stage depend on it. The
implementations are registered in pipeline/tasks/registry.py. A new head kind is a package under
pipeline/tasks/ with a `params.py` defining `SPEC`, plus one line here and one in the registry.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Literal

from pydantic import BaseModel

DataKind = Literal["classification", "detection", "anomaly"]

KINDS = {
    "classification": "pipeline.tasks.classification.params",
    "detection": "pipeline.tasks.detection.params",
    "anomaly": "pipeline.tasks.anomaly.params",
}


@dataclass(frozen=True)
class TaskSpec:
    """head: the kind's name (tasks.<task>.head); metric: the one metric it is scored by;
    modality_kinds: the modality kinds it works on (None = any); data: what its prepared splits must
    hold; settings: its own params section (tasks.<task>.<head>), or None."""

    head: str
    metric: str
    data: DataKind
    modality_kinds: tuple[str, ...] | None = None
    settings: type[BaseModel] | None = None


@cache
def task_specs() -> dict[str, TaskSpec]:
    return {head: importlib.import_module(module).SPEC for head, module in KINDS.items()}
