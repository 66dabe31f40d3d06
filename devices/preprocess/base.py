"""The preprocessing contract: a model's InputSpec, the registry of per-modality functions, and `preprocess`.

The modality modules (image, audio, text, video) import this module and register themselves; this
module imports none of them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devices.metadata import decode_metadata


class PreprocessError(ValueError):
    """An input that cannot be turned into model input (unreadable file, unknown modality, ...)."""


@dataclass(frozen=True)
class InputSpec:
    """The model's input contract, from its metadata (and the runtime's view of the input)."""

    modality: str | None
    shape: tuple[int | None, ...]          # None where dynamic (axis 0 is the batch axis)
    dtype: np.dtype
    preprocessing: dict = field(default_factory=dict)
    name: str = "input"
    assets_dir: Path | None = None  # the export's assets/ folder (tokenizer.json, frontend.onnx), if any

    def asset(self, name: str) -> Path:
        """A file an app needs beside the model (from the export's assets/ folder), or a clear error."""
        if self.assets_dir is not None and not (self.assets_dir / name).resolve().is_relative_to(
                self.assets_dir.resolve()):
            raise PreprocessError(f"the '{self.modality}' model names asset '{name}', which is outside "
                                  f"{self.assets_dir}")
        if self.assets_dir is None or not (self.assets_dir / name).is_file():
            where = self.assets_dir or "an assets/ folder beside the model or above it"
            raise PreprocessError(f"the '{self.modality}' model needs '{name}', not found in {where}")
        return self.assets_dir / name

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], runtime_shape=None, runtime_dtype=None,
                      runtime_name: str | None = None, assets_dir: Path | None = None) -> InputSpec:
        """Build from model metadata (string values, JSON where structured); the runtime's own view
        of the input wins for shape and dtype where it is known."""
        meta = decode_metadata(metadata)
        shape = runtime_shape
        if shape is None or not len(shape):
            declared = meta.get("input_shape")
            shape = [None if (not isinstance(d, int) or d < 0) else d for d in declared] if isinstance(declared, list) else []
        dtype = runtime_dtype if runtime_dtype is not None else np.dtype(str(meta.get("input_dtype") or "float32"))
        pre = meta.get("preprocessing")
        return cls(
            modality=str(meta["modality"]) if meta.get("modality") else None,
            shape=tuple(shape),
            dtype=np.dtype(dtype),
            preprocessing=pre if isinstance(pre, dict) else {},
            name=runtime_name or str(meta.get("input_name") or "input"),
            assets_dir=assets_dir,
        )

    def shape_text(self, batch: str = "N") -> str:
        return "[" + ",".join(batch if (i == 0 and d is None) else ("?" if d is None else str(d))
                              for i, d in enumerate(self.shape)) + "]"


Preprocessor = Callable[[Any, InputSpec], np.ndarray]
_REGISTRY: dict[str, Preprocessor] = {}


def register(modality: str) -> Callable[[Preprocessor], Preprocessor]:
    """Decorator: register the preprocessing function for a modality name."""
    def wrap(fn: Preprocessor) -> Preprocessor:
        if modality in _REGISTRY and _REGISTRY[modality] is not fn:
            raise ValueError(f"a preprocessor for modality '{modality}' is already registered")
        _REGISTRY[modality] = fn
        return fn
    return wrap


def registered_modalities() -> list[str]:
    return sorted(_REGISTRY)


def preprocessor_for(modality: str | None) -> Preprocessor:
    """The registered function for a modality; a PreprocessError naming it when there is none."""
    if not modality:
        raise PreprocessError("the model's metadata names no 'modality', so raw inputs cannot be preprocessed; "
                              "pass a model-ready numpy array instead")
    try:
        return _REGISTRY[modality]
    except KeyError:
        raise PreprocessError(
            f"no preprocessing for modality '{modality}' (registered: {', '.join(registered_modalities())}); "
            "add one with devices.preprocess.register"
        ) from None


def preprocess(item: Any, spec: InputSpec) -> np.ndarray:
    """One raw input -> one model-ready sample (1, *shape[1:]) via the modality's preprocessor."""
    sample = np.asarray(preprocessor_for(spec.modality)(item, spec))
    expected = spec.shape[1:]
    if sample.ndim != len(spec.shape) or sample.shape[0] != 1 or any(
        d is not None and d != s for d, s in zip(expected, sample.shape[1:])
    ):
        raise PreprocessError(f"the '{spec.modality}' preprocessor produced shape {list(sample.shape)}, "
                              f"but the model takes {spec.shape_text('1')}")
    return sample.astype(spec.dtype, copy=False)
