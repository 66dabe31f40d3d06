"""What every stage does first: read and validate params, seed, build the modality."""
from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.config import params as params_mod
from pipeline.config.stage_params import DVC_FILE, declared_params, restrict


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


def start(description: str, *options: str, optional: tuple[str, ...] = (), choices: dict | None = None,
          stage: str | None = None):
    """Parse the stage's --options (required) and `optional` ones, read the params and seed: (args, params).

    Stages run every method in `methods` for one modality or task; `--method` narrows that to one. The
    params returned let the stage read only what its dvc.yaml entry (`stage`, by default the running
    module's name) declares, so an undeclared read fails instead of leaving DVC's record stale."""
    ap = argparse.ArgumentParser(description=description)
    for name in options + optional:
        ap.add_argument(f"--{name}", required=name in options, choices=(choices or {}).get(name))
    args = ap.parse_args()
    params = load_params()
    seed_everything(params.seed)
    if not DVC_FILE.is_file():  # run outside a DVC project: no stage record to keep honest
        return args, params
    main_spec = getattr(sys.modules["__main__"], "__spec__", None)
    stage = stage or (main_spec.name.rsplit(".", 1)[-1] if main_spec else Path(sys.argv[0]).stem)
    key = getattr(args, "task", None) or getattr(args, "modality", None)
    return args, restrict(params, stage, declared_params(stage, key, params_mod.read_raw()))


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
