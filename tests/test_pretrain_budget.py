"""Equal-compute pretraining budgets: FLOPs counted per training sample, MAE given the epochs its
cheaper steps buy, and an equal-epochs run beside it, both probed."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.training.budget import equal_compute_epochs, flops_per_sample

ROOT = Path(__file__).resolve().parents[1]


class LinearObjective(torch.nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear = torch.nn.Linear(d_in, d_out, bias=False)

    def forward(self, x, y, generator):
        return self.linear(x).sum()


def test_flops_of_one_linear_layer_are_forward_plus_weight_gradient():
    objective = LinearObjective(32, 16)
    x, y = torch.randn(8, 32), torch.zeros(8, dtype=torch.long)
    # forward 2*in*out per sample; backward only the weight gradient (the input needs none): 2*in*out
    assert flops_per_sample(objective, x, y, lambda t: t, seed=0) == 4 * 32 * 16
    assert all(p.grad is None for p in objective.parameters())


def test_equal_compute_epochs_round_to_the_nearest_epoch():
    assert equal_compute_epochs(10, reference_flops=5.0, flops=1.0) == 50
    assert equal_compute_epochs(4, reference_flops=2.53, flops=1.0) == 10
    assert equal_compute_epochs(1, reference_flops=1.0, flops=10.0) == 1
    with pytest.raises(ValueError, match="positive"):
        equal_compute_epochs(1, 0.0, 1.0)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The tiny image data pretrained by mae and simclr at equal compute, then probed."""
    work = tmp_path_factory.mktemp("budget")
    for name in ("pipeline", "modalities", "devices", "export"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = (ROOT / "tests" / "params.tiny.yaml").read_text().replace("methods: [mae]", "methods: [mae, simclr]")
    (work / "params.yaml").write_text(params)
    shutil.copy(ROOT / "dvc.yaml", work / "dvc.yaml")
    env = {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1"}
    for stage in ("prepare", "pretrain", "probe"):
        subprocess.run([sys.executable, "-m", f"pipeline.stages.{stage}", "--modality", "image"], cwd=work, env=env,
                       check=True, timeout=600)
    return work


def test_mae_gets_the_epochs_that_cost_simclrs_flops(pretrained):
    mae, simclr = (json.loads((pretrained / f"metrics/pretrain/image/{m}.json").read_text()) for m in ("mae", "simclr"))
    assert simclr["epochs"] == simclr["reference_epochs"] == 1 and simclr["budget"] == "equal_compute"
    assert mae["flops_per_sample"] < simclr["flops_per_sample"] / 2  # MAE encodes a quarter of the tokens
    assert mae["epochs"] == equal_compute_epochs(1, simclr["flops_per_sample"], mae["flops_per_sample"]) > 1
    # the same FLOP total, up to rounding the epochs (half an epoch of MAE either way)
    per_epoch = mae["total_flops"] / mae["epochs"]
    assert abs(mae["total_flops"] - simclr["total_flops"]) <= per_epoch / 2 + 1
    assert mae["equal_epochs"]["epochs"] == 1
    assert mae["equal_epochs"]["total_flops"] == pytest.approx(mae["total_flops"] / mae["epochs"])
    assert (pretrained / "models/pretrain/image/mae/equal_epochs/encoder.safetensors").is_file()
    assert not (pretrained / "models/pretrain/image/simclr/equal_epochs").exists()


def test_probes_score_both_budgets_and_few_labels(pretrained):
    mae = json.loads((pretrained / "metrics/pretrain/image/mae.json").read_text())
    probe = json.loads((pretrained / "metrics/probe/image/mae.json").read_text())
    for scores in (probe, probe["equal_epochs"]):
        assert 0 <= scores["knn_test_accuracy"] <= 1 and 0 <= scores["linear_test_accuracy"] <= 1
        low = scores["low_labels"]
        assert low["label_fraction"] == 0.1 and 0 < low["train_labels"] < mae["train_samples"] / 5
    simclr_probe = json.loads((pretrained / "metrics/probe/image/simclr.json").read_text())
    assert "equal_epochs" not in simclr_probe


def test_the_report_compares_the_methods_at_both_budgets(pretrained):
    from pipeline.config.params import load
    from pipeline.report.comparison import comparison_section
    from pipeline.report.summary import cost_section

    params = load(pretrained / "params.yaml")

    def read(stage, group, method):
        path = pretrained / "metrics" / stage / group / f"{method}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    lines = comparison_section(params, read)
    rows = [line for line in lines if line.startswith("| image |")]
    # kNN and linear probe x all / few labels x equal epochs / equal compute; the digits fine-tune is not run here
    assert len([r for r in rows if "probe" in r or "kNN" in r]) == 8
    assert any("equal epochs" in r for r in rows) and any("equal compute" in r for r in rows)
    assert any("| 10% |" in r for r in rows)
    assert all(r.rstrip(" |").split("|")[-1].strip() in {"MAE", "SimCLR", "tie"} for r in rows if "fine-tune" not in r)
    cost = "\n".join(cost_section(params, read))
    assert "| image | mae | equal epochs | 1 |" in cost and "| image | simclr | equal compute | 1 |" in cost
