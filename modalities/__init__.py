"""One module per kind of data; `get_modality` is the registry the pipeline uses."""
from __future__ import annotations

from modalities.base import Modality

_REGISTRY: dict[str, str] = {
    "image": "modalities.image:ImageModality",
    "video": "modalities.video:VideoModality",
    "audio": "modalities.audio:AudioModality",
    "text": "modalities.text:TextModality",
}


def get_modality(name: str, params) -> Modality:
    """Build the modality `name` from the validated params."""
    import importlib

    if name not in _REGISTRY:
        raise KeyError(f"unknown modality '{name}' (known: {sorted(_REGISTRY)})")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)(params.modality(name), seed=params.seed)
