"""A kill at any point of a checkpoint write resumes from a complete checkpoint, and dvclive's per-step
files hold every step exactly once after a resume."""
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from dvclive import Live
from safetensors.torch import save_file

from modalities import get_modality
from pipeline.models.loading import fresh_encoder
from pipeline.models.methods import build_objective
from pipeline.training import checkpoint, loop
from pipeline.training.checkpoint import config_hash
from pipeline.training.distributed import TrainingProcess
from pipeline.training.loop import train

EPOCHS = 3
CPU = TrainingProcess(torch.device("cpu"))


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no `except Exception` handler runs."""


class Tiny(torch.nn.Module):
    """A linear model whose loss draws noise from the loop's generator, like the real objectives."""

    def __init__(self, kill_at_step: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)
        self.calls, self.kill_at_step = 0, kill_at_step

    def forward(self, x, y, generator):
        if self.calls == self.kill_at_step:
            raise Killed
        self.calls += 1
        noise = 0.1 * torch.randn(x.shape, generator=generator)
        return ((self.linear(x + noise).squeeze(1) - y) ** 2).mean()


def run_tiny(workdir: Path, model=None, resume_live=False):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 4, generator=g), torch.randn(24, generator=g)
    opt = SimpleNamespace(epochs=EPOCHS, batch_size=8, warmup_epochs=1, lr=0.05, weight_decay=0.01)
    model = model or Tiny()
    live = Live(str(workdir / "live"), save_dvc_exp=False, dvcyaml=None, resume=resume_live)
    result = train(model, x, y, lambda t: t, opt, 0, CPU, workdir / "ckpt", "h", live=live)
    live.end()
    return model, result


class KillSwitch:
    """Counts the file operations of checkpoint writes; from the `kill_at`-th on, each raises Killed
    instead of running (a killed process runs no clean-up either)."""

    OPERATIONS = [(checkpoint, "save_file"), (tempfile, "mkdtemp"), (tempfile, "mkstemp"), (os, "replace"),
                  (os, "chmod"), (shutil, "copyfile"), (shutil, "rmtree"), (Path, "write_text"),
                  (Path, "unlink"), (Path, "mkdir")]

    def __init__(self, monkeypatch, epoch: int, kill_at: int | None = None):
        self.epoch, self.kill_at, self.count, self.armed = epoch, kill_at, 0, False
        for owner, name in self.OPERATIONS:
            monkeypatch.setattr(owner, name, self.wrap(getattr(owner, name)))
        real_save = loop.save_training_state

        def save(directory, model, optimizer, state, **kwargs):
            self.armed = state["epoch"] == self.epoch
            try:
                return real_save(directory, model, optimizer, state, **kwargs)
            finally:
                self.armed = False

        monkeypatch.setattr(loop, "save_training_state", save)

    def wrap(self, operation):
        def counted(*args, **kwargs):
            if self.armed:
                self.count += 1
                if self.kill_at is not None and self.count >= self.kill_at:
                    raise Killed
            return operation(*args, **kwargs)

        return counted


def assert_same_run(reference: Path, reference_model, workdir: Path, model):
    for (name, a), (_, b) in zip(reference_model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), name
    for name in ("loss.tsv", "lr.tsv"):
        expected = (reference / "live/plots/metrics" / name).read_text()
        assert (workdir / "live/plots/metrics" / name).read_text() == expected, name
    leftovers = [p for p in workdir.rglob("*") if p.name.startswith(".")]
    assert not leftovers, leftovers
    ckpt = workdir / "ckpt"
    pointer = checkpoint.read_json(ckpt / "state.json")
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(["state.json", pointer["checkpoint"]])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    model, result = run_tiny(workdir)
    assert result.steps == 9 and len((workdir / "live/plots/metrics/loss.tsv").read_text().splitlines()) == 10
    return workdir, model


@pytest.mark.parametrize("epoch", range(1, EPOCHS + 1))
def test_kill_at_every_point_of_a_checkpoint_write_resumes_a_complete_checkpoint(reference, epoch, tmp_path,
                                                                                monkeypatch):
    with monkeypatch.context() as m:
        counter = KillSwitch(m, epoch)
        run_tiny(tmp_path / "count")
    assert counter.count >= 6  # folder, two safetensors, JSON, log copies, rename, pointer, clean-up
    resumed_from = set()
    for k in range(1, counter.count + 1):
        workdir = tmp_path / f"kill-{k}"
        with monkeypatch.context() as m:
            KillSwitch(m, epoch, kill_at=k)
            with pytest.raises(Killed):
                run_tiny(workdir)
        model, result = run_tiny(workdir)
        assert result.resumed_from_epoch in (epoch - 1, epoch), k
        resumed_from.add(result.resumed_from_epoch)
        assert_same_run(*reference, workdir, model)
    assert resumed_from == {epoch - 1, epoch}  # the sweep reaches both sides of the pointer switch


@pytest.mark.parametrize("resume_live", [False, True])
def test_kill_mid_epoch_keeps_each_logged_step_once(reference, tmp_path, resume_live):
    with pytest.raises(Killed):
        run_tiny(tmp_path, Tiny(kill_at_step=5), resume_live)  # epoch 2 of 3 partly logged
    model, result = run_tiny(tmp_path, resume_live=resume_live)
    assert result.resumed_from_epoch == 1
    assert_same_run(*reference, tmp_path, model)


def test_leftovers_of_a_killed_write_are_removed_on_the_next_start(tmp_path):
    run_tiny(tmp_path)
    ckpt = tmp_path / "ckpt"
    (ckpt / ".model.safetensors.x1.tmp.safetensors").write_bytes(b"")  # atomic_path's, from the old layout
    (ckpt / ".epoch-000004-x2.tmp").mkdir()
    (ckpt / "epoch-000002-x3").mkdir()
    (ckpt / "model.safetensors").write_bytes(b"")
    _, result = run_tiny(tmp_path)
    assert result.resumed_from_epoch == EPOCHS
    pointer = checkpoint.read_json(ckpt / "state.json")
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(["state.json", pointer["checkpoint"]])


def test_damaged_checkpoint_is_refused_with_the_file_named(tmp_path):
    run_tiny(tmp_path)
    folder = tmp_path / "ckpt" / checkpoint.read_json(tmp_path / "ckpt/state.json")["checkpoint"]
    save_file({k: torch.zeros_like(v) for k, v in Tiny().state_dict().items()}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=r"model\.safetensors: sha256 \w+ differs from \w+ recorded in .*state\.json"):
        run_tiny(tmp_path)


def test_old_flat_checkpoint_is_not_trusted(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    checkpoint.save_weights(Tiny(), ckpt / "model.safetensors")
    checkpoint.write_json(ckpt / "state.json", {"epoch": 2, "step": 6, "loss": 1.0, "config_hash": "h"})
    _, result = run_tiny(tmp_path)
    assert result.resumed_from_epoch == 0 and not (ckpt / "model.safetensors").exists()


def test_resumed_pretraining_logs_every_step_once(tiny_params, tmp_path):
    image = get_modality("image", tiny_params)
    x = (torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    opt = tiny_params.pretrain.model_copy(update={"epochs": 2, "batch_size": 32})

    def run(workdir, on_epoch_end=None):
        model = build_objective("mae", fresh_encoder(image, tiny_params), image, tiny_params)
        live = Live(str(workdir / "live"), save_dvc_exp=False, dvcyaml=None)  # as the stages open it
        result = train(model, x, torch.zeros(64, dtype=torch.long), image.to_input, opt, tiny_params.seed, CPU,
                       workdir / "ckpt", config_hash({"test": 1}), live=live, on_epoch_end=on_epoch_end)
        live.end()
        return model, result

    def stop_after_first_epoch(epoch):
        if epoch == 1:
            raise Killed

    reference, _ = run(tmp_path / "a")
    with pytest.raises(Killed):
        run(tmp_path / "b", stop_after_first_epoch)
    resumed, result = run(tmp_path / "b")
    assert result.resumed_from_epoch == 1
    rows = (tmp_path / "b/live/plots/metrics/loss.tsv").read_text().splitlines()
    assert [int(r.split("\t")[0]) for r in rows[1:]] == list(range(result.steps))
    assert_same_run(tmp_path / "a", reference, tmp_path / "b", resumed)
