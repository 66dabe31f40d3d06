"""Checkpoints as safetensors (no pickle) plus a small JSON of state; resumable training.

A checkpoint folder holds one training state, all-or-nothing:

    <directory>/state.json              the pointer: the state, the folder it names and the sha256 of its files
    <directory>/epoch-000006-<id>/      model.safetensors, optimizer.safetensors, optimizer.json, logs/

Its files are written into a hidden temporary folder, which is renamed once complete; only then does
state.json (replaced atomically) switch to it. A kill at any point leaves state.json naming the previous
complete checkpoint or the new one; whatever it does not name is a leftover, removed on the next start.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from devices.io import atomic_path, file_sha256, read_json, write_json

POINTER = "state.json"
CHECKPOINT_PREFIX = "epoch-"
LOGS = "logs"
BEST_WEIGHTS = "best.safetensors"  # early stopping: the best validation epoch's weights
LEGACY_FILES = ("model.safetensors", "optimizer.safetensors", "optimizer.json")  # the old flat layout


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_weights(module: torch.nn.Module, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        save_file(_weights(module), str(tmp))


def _weights(module: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def load_weights(module: torch.nn.Module, path: str | Path, strict: bool = True) -> None:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights not found")
    state = load_file(str(path))
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch: the weights come from other params
        raise ValueError(f"{path}: weights do not fit the model built from the current params: {exc}") from None
    if strict and (missing or unexpected):
        raise ValueError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split the optimizer state into tensors (for safetensors) and plain JSON."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, slots in state["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_training_state(directory: Path, model, optimizer, state: dict, logs: dict[str, Path] | None = None,
                        best: dict[str, torch.Tensor] | None = None) -> None:
    """Write a new checkpoint of `state` (its "epoch" names the folder) and switch state.json to it.

    `logs` maps names to files copied into the checkpoint as they are now (the per-step metric files),
    so a resume can restore them to exactly the steps the weights have seen. `best`: the weights of the
    best validation epoch so far (early stopping), restored by a resume as state["best_weights"]."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".{CHECKPOINT_PREFIX}{state['epoch']:06d}-", suffix=".tmp"))
    save_file(_weights(model), str(tmp / "model.safetensors"))
    if best is not None:
        save_file(best, str(tmp / BEST_WEIGHTS))
    tensors, rest = _optimizer_tensors(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps(rest))
    for name, source in (logs or {}).items():
        if Path(source).is_file():
            (tmp / LOGS).mkdir(exist_ok=True)
            shutil.copyfile(source, tmp / LOGS / name)
    files = {p.relative_to(tmp).as_posix(): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    folder = tmp.name[1 : -len(".tmp")]  # unique, so no complete checkpoint is ever overwritten
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide it from other users, like the rest of the outputs
    os.replace(tmp, directory / folder)
    write_json(directory / POINTER, {**state, "checkpoint": folder, "files": files})
    remove_leftovers(directory)


def remove_leftovers(directory: Path) -> None:
    """Remove what state.json does not name: older checkpoints, temporary files and folders of a killed
    write, the files of the old flat layout. Only the main process calls this."""
    if not directory.is_dir():
        return
    pointer = directory / POINTER
    keep = read_json(pointer).get("checkpoint") if pointer.is_file() else None
    for entry in directory.iterdir():
        name = entry.name
        stale = (name.startswith(CHECKPOINT_PREFIX) and name != keep) or name in LEGACY_FILES \
            or (name.startswith(".") and ".tmp" in name)
        if stale and entry.is_dir():
            shutil.rmtree(entry)
        elif stale:
            entry.unlink()


def load_training_state(directory: Path, model, optimizer, expected_hash: str) -> dict | None:
    """Restore the checkpoint state.json names if it was made with the same config; else None (start fresh).

    The returned state carries "checkpoint_path", the folder it was read from (see `checkpoint_logs`)."""
    pointer = directory / POINTER
    if not pointer.is_file():
        return None
    state = read_json(pointer)
    if state.get("config_hash") != expected_hash or "checkpoint" not in state:
        return None  # another config, a stage's note (epoch 0, nothing trained) or the old unverifiable layout
    folder = directory / state["checkpoint"]
    for name, expected in state["files"].items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing from the checkpoint that {pointer} names; "
                                    f"delete {directory} to train from scratch")
        if (actual := file_sha256(path)) != expected:
            raise ValueError(f"{path}: sha256 {actual} differs from {expected} recorded in {pointer}; "
                             f"the checkpoint is damaged, delete {directory} to train from scratch")
    load_weights(model, folder / "model.safetensors")
    tensors = load_file(str(folder / "optimizer.safetensors"))
    rest = read_json(folder / "optimizer.json")
    slots: dict[int, dict] = {}
    for key, value in {**tensors, **rest["scalars"]}.items():
        idx, name = key.split(".", 1)
        slots.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": rest["param_groups"]})
    best = load_file(str(folder / BEST_WEIGHTS)) if BEST_WEIGHTS in state["files"] else None
    return {**state, "checkpoint_path": str(folder), "best_weights": best}


def checkpoint_logs(state: dict) -> Path:
    """The folder of log files saved with the checkpoint `state` was loaded from (may not exist)."""
    return Path(state["checkpoint_path"]) / LOGS
