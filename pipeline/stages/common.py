"""What every stage does first: read and validate params, seed, build the modality."""
from __future__ import annotations

import argparse
import random
import sys

import numpy as np

from pipeline import params as params_mod


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_params():
    """Validated params, or exit with the validation message (names every bad key)."""
    try:
        return params_mod.load()
    except params_mod.ParamsError as exc:
        sys.exit(str(exc))


def start(description: str, *options: str, optional: tuple[str, ...] = (), choices: dict | None = None):
    """Parse the stage's --options (required) and `optional` ones, read the params and seed: (args, params).

    Stages run every method in `methods` for one modality or task; `--method` narrows that to one."""
    ap = argparse.ArgumentParser(description=description)
    for name in options + optional:
        ap.add_argument(f"--{name}", required=name in options, choices=(choices or {}).get(name))
    args = ap.parse_args()
    params = load_params()
    seed_everything(params.seed)
    return args, params


def selected_methods(args, params) -> list[str]:
    """The methods this run covers: --method when given, else every entry of `methods`."""
    if getattr(args, "method", None):
        return [args.method]
    return list(params.methods)


def task_modality(params, task: str):
    if task not in params.tasks:
        sys.exit(f"tasks.{task}: no such task in {params_mod.PARAMS_FILE} (tasks: {sorted(params.tasks)})")
    from modalities import get_modality

    name = params.tasks[task].modality
    return name, get_modality(name, params)
