"""run_methods: the per-method work of a stage in forked processes gives what a serial loop gives."""
import os
from functools import partial

import numpy as np
import pytest
import torch

from pipeline.stages.common import run_methods, seed_everything


def seeded_work(method: str, seed: int) -> tuple:
    """What a stage's per-method function does: seed, use torch and numpy, say where it ran."""
    seed_everything(seed)
    if method == "broken":
        raise ValueError(f"method {method!r} failed")
    x = torch.randn(256, 64) @ torch.randn(64, 8)
    return method, x.sum().item(), np.random.rand(), os.getpid()


def test_forked_methods_match_serial_and_keep_order():
    methods = ["mae", "simclr", "random"]
    # the serial run first: the parent's torch thread pool is started when the workers fork
    serial = run_methods(partial(seeded_work, seed=3), methods, workers=1)
    forked = run_methods(partial(seeded_work, seed=3), methods, workers=2)
    assert [r[:3] for r in forked] == [r[:3] for r in serial]
    assert [r[0] for r in forked] == methods
    assert {r[3] for r in serial} == {os.getpid()}
    assert os.getpid() not in {r[3] for r in forked}


def test_a_failing_method_stops_the_stage_with_its_error():
    with pytest.raises(ValueError, match="'broken' failed"):
        run_methods(partial(seeded_work, seed=0), ["mae", "broken"], workers=2)
