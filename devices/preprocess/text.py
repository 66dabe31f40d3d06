"""App-side preprocessing for text models: a string (or a text file) -> (1, max_len) int64 token ids.

The export's assets/ folder holds tokenizer.json (the one prepare trained), which carries the
normaliser, the [CLS] template, truncation and padding, so `encode` here gives the ids training
stored. Needs the `tokenizers` package, no torch.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from devices.preprocess.base import InputSpec, PreprocessError, register


@lru_cache(maxsize=8)
def _load_tokenizer(path: str, mtime_ns: int):
    """Cached per file version: apps classify many texts with one model."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise PreprocessError("text models need the tokenizers package (pip install tokenizers)") from exc
    try:
        return Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises its own Exception type for a malformed file
        raise PreprocessError(f"{path}: not a readable tokenizer.json ({exc})") from exc


def tokenizer_path(spec: InputSpec) -> Path:
    """tokenizer.json from the export's assets/ folder (preprocessing["tokenizer"] names it)."""
    return spec.asset(str(spec.preprocessing.get("tokenizer", "tokenizer.json")))


def _names_file(text: str) -> bool:
    try:
        return "\n" not in text and Path(text).is_file()
    except (OSError, ValueError):  # a long sentence is too long for a file name
        return False


def read_text(item: Any) -> str:
    """A string is the text itself unless it names an existing file; a Path is always a file (UTF-8)."""
    if isinstance(item, (bytes, bytearray)):
        item = bytes(item).decode("utf-8")
    elif isinstance(item, Path) or (isinstance(item, str) and _names_file(item)):
        if not Path(item).is_file():
            raise FileNotFoundError(f"{item}: text file not found")
        item = Path(item).read_bytes().decode("utf-8-sig")
    elif not isinstance(item, str):
        raise PreprocessError(f"cannot read text from {type(item).__name__}; give a string, bytes or a file path")
    if not item.strip():
        raise PreprocessError("empty text: there is nothing to classify")
    return " ".join(item.split())  # as prepare stored it: runs of whitespace become one space


def encode(text: str, tokenizer_file: Path, max_len: int) -> np.ndarray:
    """One text -> (1, max_len) int64 ids, exactly as the training data was tokenized."""
    path = Path(tokenizer_file)
    ids = _load_tokenizer(str(path), path.stat().st_mtime_ns).encode(text).ids
    if len(ids) != max_len:
        raise PreprocessError(f"{path} gives {len(ids)} ids, but the model takes {max_len}; "
                              "the tokenizer does not belong to this model")
    return np.asarray(ids, dtype=np.int64)[None]


@register("text")
def preprocess_text(item: Any, spec: InputSpec) -> np.ndarray:
    """Text (str, bytes or a UTF-8 file) -> int64 ids (1, max_len).

    Metadata keys used (preprocessing): "tokenizer" (file name beside the model), "max_len".
    """
    try:
        text = read_text(item)
    except UnicodeDecodeError as exc:
        where = item if isinstance(item, (str, Path)) else "<bytes>"
        raise PreprocessError(f"{where}: not valid UTF-8 ({exc.reason})") from exc
    max_len = spec.preprocessing.get("max_len") or spec.shape[1]
    return encode(text, tokenizer_path(spec), int(max_len)).astype(spec.dtype, copy=False)
