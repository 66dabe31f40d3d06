"""A stage reads only the params its dvc.yaml entry declares.

DVC reruns a stage when a declared param changes; a value the stage read without declaring it would
leave `dvc repro` reporting "up to date" over outputs made with the old value. So each stage gets a
view of the params that raises on anything else, naming the key and the stage's declared list.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

DVC_FILE = Path("dvc.yaml")


class UndeclaredParamError(RuntimeError):
    """Not a KeyError or AttributeError on purpose: `mapping.get` and `getattr(..., default)` would swallow it."""


def declared_params(stage: str, key: str | None, raw_params: dict, dvc_file: Path = DVC_FILE) -> list[str]:
    """The `params:` entries of dvc.yaml's `stage` (for a foreach stage, the expansion for `key`), with
    ${key} and ${item.<field>} filled in from the raw params."""
    spec = (yaml.safe_load(dvc_file.read_text()).get("stages") or {}).get(stage)
    if spec is None:
        raise UndeclaredParamError(f"{dvc_file}: no stage '{stage}'")
    if "foreach" in spec:
        source = spec["foreach"].strip("${} ")
        item = (raw_params.get(source) or {}).get(key) or {}
        entries = spec["do"].get("params", [])
    else:
        item, entries = {}, spec.get("params", [])

    def fill(entry: str) -> str:
        return re.sub(r"\$\{(key|item\.(\w+))\}", lambda m: key if m.group(1) == "key" else str(item[m.group(2)]), entry)

    return [fill(e) for e in entries if isinstance(e, str)]


class _Declared:
    """Which dotted paths may be read: a path is readable when a declared entry is its prefix, and
    passable (a view of it is returned) when it is a prefix of a declared entry."""

    def __init__(self, stage: str, entries: list[str]):
        self.stage, self.entries = stage, entries
        self.paths = [tuple(e.split(".")) for e in entries]

    def whole(self, path: tuple) -> bool:
        return any(path[:len(p)] == p for p in self.paths)

    def part(self, path: tuple) -> bool:
        return any(p[:len(path)] == path for p in self.paths)

    def refuse(self, path: tuple) -> UndeclaredParamError:
        return UndeclaredParamError(
            f"stage '{self.stage}' reads params key '{'.'.join(path)}', which its dvc.yaml entry does not declare "
            f"(declared: {', '.join(self.entries) or 'none'}); add it to stages.{self.stage}.params in dvc.yaml")


def _view(value, path: tuple, declared: _Declared):
    if declared.whole(path):
        return value
    if declared.part(path):
        return MappingView(value, path, declared) if isinstance(value, Mapping) else ModelView(value, path, declared)
    raise declared.refuse(path)


class ModelView:
    """A params section (pydantic model) of which only declared keys can be read; its methods run on the view."""

    def __init__(self, model, path: tuple, declared: _Declared):
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_declared", declared)

    def __getattr__(self, name: str):
        if name.startswith("_"):  # private and protocol names (pickling looks some up before the state is set)
            raise AttributeError(name)
        attr = getattr(type(self._model), name, None)
        if callable(attr):  # a method of the section (Params.optim, Params.modality): reads through the view
            return attr.__get__(self)
        return _view(getattr(self._model, name), (*self._path, name), self._declared)


class MappingView(Mapping):
    """A params mapping (modalities, tasks) of which only declared keys can be read. Membership is free:
    it says whether a key exists, not what it holds."""

    def __init__(self, mapping: Mapping, path: tuple, declared: _Declared):
        self._mapping, self._path, self._declared = mapping, path, declared

    def __getitem__(self, key):
        return _view(self._mapping[key], (*self._path, key), self._declared)

    def __contains__(self, key) -> bool:
        return key in self._mapping

    def __iter__(self):
        raise self._declared.refuse(self._path)  # listing every entry reads the whole mapping

    def __len__(self) -> int:
        return len(self._mapping)


def restrict(params, stage: str, entries: list[str]) -> ModelView:
    """`params` as the stage may read it: the declared entries and everything below them."""
    return ModelView(params, (), _Declared(stage, entries))
