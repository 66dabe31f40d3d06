"""Checkpoints as safetensors (no pickle) plus a small JSON of state; resumable training."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from devices.io import atomic_path, read_json, write_json


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_weights(module: torch.nn.Module, path: str | Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


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


def save_training_state(directory: Path, model, optimizer, state: dict) -> None:
    """Write weights, optimizer and state; the JSON goes last, so it only names a complete checkpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(model, directory / "model.safetensors")
    tensors, rest = _optimizer_tensors(optimizer)
    with atomic_path(directory / "optimizer.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(directory / "optimizer.json", rest)
    write_json(directory / "state.json", state)


def load_training_state(directory: Path, model, optimizer, expected_hash: str) -> dict | None:
    """Restore the last checkpoint if it was made with the same config; else None (start fresh)."""
    state_path = directory / "state.json"
    if not state_path.is_file():
        return None
    state = read_json(state_path)
    if state.get("config_hash") != expected_hash:
        return None
    load_weights(model, directory / "model.safetensors")
    tensors = load_file(str(directory / "optimizer.safetensors"))
    rest = read_json(directory / "optimizer.json")
    slots: dict[int, dict] = {}
    for key, value in {**tensors, **rest["scalars"]}.items():
        idx, name = key.split(".", 1)
        slots.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": rest["param_groups"]})
    return state
