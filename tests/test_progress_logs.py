"""Training progress in a log stays a few lines: a tqdm bar on a terminal, at most PROGRESS_LINES whole lines
per training run when stderr is a pipe (dvc repro > log), in forked workers (finetune.workers) too."""
from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

# 6 epochs x 16 steps: a redraw per step would be ~100 lines a run.
TRAINING = textwrap.dedent("""
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    from pathlib import Path
    from types import SimpleNamespace

    import torch

    from pipeline.training.distributed import TrainingProcess
    from pipeline.training.loop import train

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 1)

        def forward(self, x, y, generator):
            return torch.nn.functional.mse_loss(self.linear(x).squeeze(1), y)

    def run(name):
        torch.manual_seed(0)
        x, y = torch.randn(64, 8), torch.randn(64)
        opt = SimpleNamespace(epochs=6, batch_size=4, lr=1e-2, warmup_epochs=0, weight_decay=0.0)
        train(Regression(), x, y, lambda t: t, opt, 0, TrainingProcess(torch.device("cpu")),
              Path(sys.argv[1]) / name, "h", desc=f"train {name}")
        return name

    if __name__ == "__main__":
        run("single")
        with ProcessPoolExecutor(2, mp_context=get_context("fork")) as pool:  # as finetune.workers does
            assert sorted(pool.map(run, ["worker-a", "worker-b"])) == ["worker-a", "worker-b"]
""")


def test_training_progress_piped_to_a_log_is_a_few_lines_per_run(tmp_path):
    from pipeline.training.loop import PROGRESS_LINES

    script = tmp_path / "train_three.py"
    script.write_text(TRAINING)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr, "a progress bar redrew itself in a log: " + done.stderr[:500]
    lines = done.stderr.splitlines()
    line = re.compile(r"train (single|worker-a|worker-b): step \d+/96 \(\d+%\), epoch [1-6]/6, loss \d+\.\d{4}, \d+ s")
    mangled = [text for text in lines if not line.fullmatch(text)]
    assert not mangled, "lines that are not one whole progress line (interleaved workers?):\n" + "\n".join(mangled)
    for run in ("single", "worker-a", "worker-b"):
        own = [text for text in lines if text.startswith(f"train {run}: ")]
        assert 1 <= len(own) <= PROGRESS_LINES, f"{run}: {len(own)} progress lines:\n" + "\n".join(own)
        assert own[-1].startswith(f"train {run}: step 96/96 (100%), epoch 6/6, loss "), own[-1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_and_a_resumed_run_logs_only_what_is_left():
    from pipeline.training.loop import Progress

    screen = Terminal()
    bar = Progress("pretrain", total_steps=20, start_step=0, enabled=True, stream=screen)
    for step, _ in enumerate(bar.epoch(range(20), 0, 1), start=1):
        bar.step(step, 0.5)
    assert "pretrain epoch 1/1" in screen.getvalue() and "\r" in screen.getvalue()

    log = io.StringIO()
    resumed = Progress("pretrain", total_steps=20, start_step=10, enabled=True, stream=log)
    for step, _ in enumerate(resumed.epoch(range(10), 1, 2), start=11):
        resumed.step(step, 0.25)
    assert [line.split(",")[0] for line in log.getvalue().splitlines()] == [
        f"pretrain: step {s}/20 ({s * 5}%)" for s in (12, 14, 16, 18, 20)]

    quiet = io.StringIO()
    other_rank = Progress("pretrain", total_steps=20, start_step=0, enabled=False, stream=quiet)
    for step, _ in enumerate(other_rank.epoch(range(20), 0, 1), start=1):
        other_rank.step(step, 0.5)
    assert quiet.getvalue() == ""
