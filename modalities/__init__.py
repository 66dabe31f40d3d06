"""One package per kind of data (modalities/<kind>/); `KINDS` is the one place a kind is registered.

A kind's package holds its params schema (params.py, pydantic only) and its implementation
(modality.py); both are named here as "module:attribute" and imported only when asked for, so
reading params.yaml does not load torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from modalities.base import Modality


class Kind(NamedTuple):
    modality: str  # the Modality subclass
    params: str  # its params.yaml section's schema


KINDS: dict[str, Kind] = {
    "image": Kind("modalities.image.modality:ImageModality", "modalities.image.params:ImageParams"),
    "video": Kind("modalities.video.modality:VideoModality", "modalities.video.params:VideoParams"),
    "audio": Kind("modalities.audio.modality:AudioModality", "modalities.audio.params:AudioParams"),
    "text": Kind("modalities.text.modality:TextModality", "modalities.text.params:TextParams"),
}


def _load(target: str):
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


def params_schemas() -> dict[str, type]:
    """kind -> its params schema (a ModalityBase subclass whose `kind` field is Literal[kind])."""
    return {kind: _load(entry.params) for kind, entry in KINDS.items()}


def get_modality(name: str, params) -> Modality:
    """Build the modality instance `name` (a key of params.modalities) with the class of its section's kind;
    params.yaml may declare several instances of one kind."""
    section = params.modality(name)  # KeyError naming modalities.<name> when it is not configured
    if section.kind not in KINDS:
        raise KeyError(f"modalities.{name}.kind: unknown kind '{section.kind}' (known: {sorted(KINDS)})")
    modality = _load(KINDS[section.kind].modality)(section, seed=params.seed)
    modality.name = name
    return modality
