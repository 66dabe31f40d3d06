"""One module per kind of data; `get_modality` is the registry the pipeline uses."""
from __future__ import annotations

from modalities.base import Modality

# kind -> implementation; params.yaml may declare several modalities (instances) of one kind
_REGISTRY: dict[str, str] = {
    "image": "modalities.image.modality:ImageModality",
    "video": "modalities.video.modality:VideoModality",
    "audio": "modalities.audio.modality:AudioModality",
    "text": "modalities.text.modality:TextModality",
}


def get_modality(name: str, params) -> Modality:
    """Build the modality instance `name` (a key of params.modalities) with the class of its section's kind."""
    import importlib

    section = params.modality(name)  # KeyError naming modalities.<name> when it is not configured
    if section.kind not in _REGISTRY:
        raise KeyError(f"modalities.{name}.kind: unknown kind '{section.kind}' (known: {sorted(_REGISTRY)})")
    module, cls_name = _REGISTRY[section.kind].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    modality = cls.__new__(cls)
    modality.name = name  # before __init__: a modality may place files by its name there (text's tokenizer)
    modality.__init__(section, seed=params.seed)
    return modality
