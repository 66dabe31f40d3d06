"""What every stage does first: read and validate params, seed, build the modality."""
from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from pipeline.config import params as params_mod


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


def run_methods(run, methods: list[str], workers: int) -> list:
    """[run(method) for method in methods], in up to `workers` forked processes at once.

    Each method's work must be independent and write only its own outputs, and `run` must seed
    itself, so the results do not depend on which process ran a method or in what order. torch runs
    single-threaded in the workers: a forked process cannot use the parent's OpenMP threads (it would
    hang), and the workers share the cores anyway. Fork before the stage uses OpenVINO, whose TBB
    threads do not survive a fork either."""
    workers = min(workers, len(methods))
    if workers <= 1:
        return [run(method) for method in methods]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=_single_threaded_torch) as pool:
        return list(pool.map(run, methods))


def _single_threaded_torch() -> None:
    import torch

    torch.set_num_threads(1)


def task_modality(params, task: str):
    if task not in params.tasks:
        sys.exit(f"tasks.{task}: no such task in {params_mod.PARAMS_FILE} (tasks: {sorted(params.tasks)})")
    from modalities import get_modality

    name = params.tasks[task].modality
    return name, get_modality(name, params)
