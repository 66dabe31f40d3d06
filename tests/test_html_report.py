"""reports/index.html (pipeline/report/html.py): built from synthetic metrics and reports in the formats the
pipeline writes, and from the committed real metrics; offline, well-formed, every section there, missing
inputs shown as "not run", and no latency number for a device that was not measured."""
from __future__ import annotations

import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pipeline.config.params import load, parse
from pipeline.report.html import pareto_front, write_html
from pipeline.report.results import write_results
from tests.conftest import ROOT

SECTIONS = ("answer", "tradeoffs", "curves", "reconstructions", "robustness", "verdict", "compatibility", "cost",
            "parity", "hosts")
MEASURED, ABSENT = "cpu-x86", "jetson-orin"
HOSTILE = "no <b>aarch64</b> device & no 'board' here"  # must come out escaped
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """Text per <section id>, text of each element carrying data-device, the sections that say they were
    "not run: <why>" as a whole, every src/href, and a check that every element is closed in order."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: dict[str, str] = {}
        self.devices: list[tuple[str, str]] = []  # (device, text)
        self.not_run: set[str] = set()
        self.links: list[str] = []
        self.tags: list[str] = []
        self.stack: list[str] = []
        self.section = None
        self.open_device: list[list] = []
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed elements: {self.stack}"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.links += [attrs[k] for k in ("src", "href") if attrs.get(k)]
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "section":
            self.section = attrs["id"]
            self.sections[self.section] = ""
        if "data-device" in attrs or attrs.get("class") == "notrun":
            self.open_device.append([attrs.get("data-device"), "", len(self.stack)])

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        if self.open_device and self.open_device[-1][2] == len(self.stack):
            device, text, _ = self.open_device.pop()
            if device:
                self.devices.append((device, text))
            elif text.startswith("not run:"):
                self.not_run.add(self.section)
        self.stack.pop()
        if tag == "section":
            self.section = None

    def handle_data(self, data):
        if self.section:
            self.sections[self.section] += data
        for entry in self.open_device:
            entry[1] += data


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _params():
    raw = yaml.safe_load((ROOT / "tests" / "params.tiny.yaml").read_text())
    return parse({**raw, "methods": ["mae", "simclr", "random"]})


def _row(model, runtime, precision, p50, task="digits", budget=5.0):
    return {"model": model, "runtime": runtime, "target": "CPU", "precision": precision, "task": task, "batch": 1,
            "input_shape": [1, 1, 28, 28], "p50_ms": p50, "p90_ms": p50 * 1.2, "p99_ms": p50 * 1.5, "mean_ms": p50,
            "min_ms": p50 / 2, "max_ms": p50 * 2, "iterations": 100, "throughput": 1000 / p50,
            "budget_ms": budget, "meets_budget": p50 * 1.5 <= budget}


def _compat(model, profile, failed=None):
    checks = [{"check": name, "ok": name != failed, "reason": f"{name} reason"}
              for name in ("static_shapes", "operators", "precision")]
    return {"model": model, "profile": profile, "runtime": "onnxruntime", "target": "CPU", "precision": "int8",
            "applicable": True, "ok": failed is None, "checks": checks}


HOST = {"cpu_model": "Synthetic CPU", "machine": "x86_64", "logical_cores": 2, "physical_cores": 1, "os": "Linux",
        "python": "3.11", "numpy": "2", "onnxruntime": {"available": True, "version": "1", "providers": ["CPU"]},
        "openvino": {"available": False, "reason": "not installed"}}


def _synthetic(root: Path) -> None:
    """digits (classification) and machine_faults (anomaly) for mae, simclr and random; cpu-x86 measured,
    jetson-orin not measured here; every optional input present."""
    m = root / "metrics"
    for method, (val, test, p50) in {"mae": (0.80, 0.82, 2.0), "simclr": (0.90, 0.91, 3.0),
                                     "random": (0.70, 0.72, 1.0)}.items():
        _write(m / "finetune/digits" / f"{method}.json",
               {"task": "digits", "method": method, "metric": "accuracy", "val_metric": val, "test_metric": test,
                "learning_curve": [[10, val - 0.2], [20, val - 0.05], [30, val]]})
        _write(m / "finetune/machine_faults" / f"{method}.json",
               {"task": "machine_faults", "method": method, "metric": "auroc", "test_metric": test - 0.1})
        _write(m / "export/digits" / f"{method}.json",
               {"task": "digits", "method": method, "metric": "accuracy", "torch_test_metric": test,
                "variants": {"onnx-fp32": {"size_bytes": 3_000_000, "test_metric": test, "max_abs_diff": 1e-6,
                                           "top1_agreement": 1.0}}})
        _write(m / "quantize/digits" / f"{method}.json",
               {"task": "digits", "method": method, "metric": "accuracy", "reference": "onnx-fp32", "variants": {
                   "onnx-int8": {"size_bytes": 900_000, "test_metric": test - 0.01, "max_abs_diff": 0.3,
                                 "top1_agreement": 0.99},
                   "targets/jetson-orin/model.int8.onnx": {"profile": ABSENT, "runtime": "onnxruntime",
                                                           "precision": "int8", "size_bytes": 900_000,
                                                           "test_metric": test - 0.02}}})
        _write(m / "probe/image" / f"{method}.json",
               {"modality": "image", "method": method, "knn_test_accuracy": test - 0.1,
                "linear_test_accuracy": test - 0.05})
        trained = method != "random"
        _write(m / "pretrain/image" / f"{method}.json",
               {"method": method, "modality": "image", "world_size": 1, "device": "cpu", "epochs": 2 * trained,
                "steps": 20 * trained, "train_seconds": 5.0 * trained, "samples_per_s": 100.0,
                "peak_memory_mb": 500.0, "memory_kind": "cpu_peak_rss", "flops_per_sample": 1e6,
                "total_flops": 1e9 * trained})
        live = root / "dvclive/pretrain/image" / method / "plots/metrics/loss.tsv"
        live.parent.mkdir(parents=True, exist_ok=True)
        live.write_text("step\tloss\n0\t1.0\n1\t0.8\n2\t0.7\n")
    for task, metric in (("digits", 0.85), ("machine_faults", 0.9)):
        _write(m / "baselines" / f"{task}.json", {"task": task, "model": "logistic regression", "test_metric": metric})
    _write(m / "robustness/digits.json", {
        "task": "digits", "metric": "accuracy", "severities": [1, 2, 3], "corruptions": ["noise", "blur"],
        "test_samples": 100, "models": {method: {"onnx-int8": {
            "clean": 0.9, "by_corruption": {"noise": [0.8, 0.7, 0.6], "blur": [0.85, 0.8, 0.7]},
            "mean_corrupted": 0.74, "relative_drop": 0.18, "mce": 1.0}} for method in ("mae", "simclr")}})
    _write(m / "robustness/machine_faults.json", {
        "task": "machine_faults", "metric": "auroc", "severities": [1, 2, 3], "corruptions": ["noise"],
        "test_samples": 24, "models": {"mae": {"pytorch": {
            "clean": 0.7, "by_corruption": {"noise": [0.65, 0.6, 0.55]}, "mean_corrupted": 0.6,
            "relative_drop": 0.14, "mce": None, "false_alarm_rate": {"clean": 0.1, "noise": [0.2, 0.3, 0.4]}}}}})

    latency = root / "reports/latency"
    rows = [_row(f"digits/{method}/{file}", "onnxruntime", precision, p50 * scale)
            for method, p50 in (("mae", 2.0), ("simclr", 3.0), ("random", 1.0))
            for file, precision, scale in (("model.onnx", "fp32", 1.0), ("model.int8.onnx", "int8", 0.5))]
    rows.append(_row("digits-simclr (models/finetune)", "pytorch-eager", "fp32", 4.0))
    _write(latency / f"{MEASURED}.json", {
        "profile": MEASURED, "status": "measured", "host": HOST, "measured_at": "2024-01-01T00:00:00+00:00",
        "settings": {"threads": 0, "warmup_iterations": 5, "min_iterations": 100, "min_seconds": 1.0,
                     "batch_sizes": [1]}, "rows": rows, "skipped": [],
        "compatibility": [_compat(r["model"], MEASURED) for r in rows if "(" not in r["model"]]})
    _write(latency / f"{ABSENT}.json", {
        "profile": ABSENT, "status": "not measured here", "reason": HOSTILE, "host": HOST, "measured_at": None,
        "rows": [], "compatibility": [_compat("digits/mae/model.onnx", ABSENT, failed="static_shapes"),
                                      _compat("digits/mae/targets/jetson-orin/model.int8.onnx", ABSENT)]})
    write_results([MEASURED, ABSENT], ["digits"], latency, m, root / "reports")

    png = io.BytesIO()
    Image.new("L", (8, 8)).save(png, format="PNG")
    (root / "reports/figures").mkdir(parents=True)
    (root / "reports/figures/image-mae-reconstruction.png").write_bytes(png.getvalue())


def _build(root: Path, monkeypatch, params) -> tuple[str, Page]:
    monkeypatch.chdir(root)
    target = write_html(params, root / "reports/index.html")
    text = target.read_text()
    return text, Page(text)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    _synthetic(root)
    with pytest.MonkeyPatch.context() as mp:
        return _build(root, mp, _params())


def _offline(page: Page) -> None:
    remote = [link for link in page.links if re.match(r"\s*(https?:)?//", link, re.I)]
    assert not remote, f"links that need a network: {remote}"
    assert all(link.startswith(("#", "data:image/png;base64,")) for link in page.links), page.links


def test_every_section_is_there_offline_and_filled(full):
    text, page = full
    _offline(page)
    assert set(SECTIONS) <= set(page.sections)
    assert not page.not_run and "not run" not in text
    assert page.tags.count("img") == 6  # pareto (cpu-x86 digits), val curve, loss, reconstruction, 2 robustness
    assert "10.0% → 30.0%" in page.sections["robustness"]  # anomaly false alarms: clean -> mean corrupted


def test_the_answer_ships_the_best_on_val_and_says_what_pretraining_bought(full):
    _, page = full
    answer = page.sections["answer"]
    assert "simclr (picked on val)" in answer and "0.910" in answer  # best val metric
    assert "random (picked on test)" not in answer and "simclr (picked on test)" in answer  # anomaly: on test
    assert "+0.190 (simclr)" in answer  # best pretrained minus random init: 0.91 - 0.72
    assert "+0.060 (baseline 0.850)" in answer


def test_a_device_not_measured_here_shows_why_and_no_latency_number(full):
    text, page = full
    absent = [t for d, t in page.devices if d == ABSENT]
    assert absent and all("not measured here" in t for t in absent)
    assert not any(re.search(r"\d", t.replace("aarch64", "")) for t in absent), absent
    measured = [t for d, t in page.devices if d == MEASURED]
    assert any(re.search(r"\d+\.\d\d / \d+\.\d\d", t) for t in measured), measured  # selected p50 / p99
    assert f"{ABSENT} on" not in text  # no metric-vs-latency plot for it


def test_the_pareto_plot_and_compatibility_name_what_they_show(full):
    text, page = full
    trade = page.sections["tradeoffs"]
    assert "Pareto front" in trade and "random onnx-int8" in trade  # the fastest variant is on the front
    compat = page.sections["compatibility"]
    assert "fail: static_shapes" in compat and "pass" in compat and f"{ABSENT}: 1 failing" in compat


def test_everything_is_escaped(full):
    text, page = full
    assert "no &lt;b&gt;aarch64&lt;/b&gt; device &amp; no &#39;board&#39; here" in text
    assert "b" not in page.tags


def test_missing_optional_inputs_render_as_not_run(tmp_path, monkeypatch):
    _synthetic(tmp_path)
    for path in ("metrics/robustness", "dvclive", "reports/figures", "reports/results.json",
                 "reports/selection.json"):
        target = tmp_path / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    text, page = _build(tmp_path, monkeypatch, _params())
    _offline(page)
    # curves: the pretraining loss curves are not run, the fine-tuning ones are there
    assert page.not_run == {"tradeoffs", "reconstructions", "robustness", "curves"}
    assert "validation curve of digits" in text
    assert [t for d, t in page.devices if d == MEASURED] == ["selection not run", "selection not run"]


def test_an_empty_run_renders_every_section_as_not_run(tmp_path, monkeypatch):
    _, page = _build(tmp_path, monkeypatch, _params())
    assert page.not_run == set(SECTIONS)


def test_the_committed_real_metrics_render(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "metrics", tmp_path / "metrics")
    text, page = _build(tmp_path, monkeypatch, load(ROOT / "params.yaml"))
    _offline(page)
    assert set(SECTIONS) <= set(page.sections)
    # no latency reports, figures or dvclive logs among the committed files; the robustness metrics are
    assert page.not_run == {"tradeoffs", "reconstructions", "compatibility", "hosts", "curves"}
    assert all(task in page.sections["robustness"] for task in ("digits", "sentiment", "machine_faults"))
    assert "validation curve of digits" in text and "latency not run" in page.sections["answer"]
    assert all(f"<td>{task}</td>" in text for task in ("digits", "adas", "machine_faults"))


def test_pareto_front_keeps_only_points_no_other_beats():
    points = [{"p50_ms": p50, "metric": metric} for p50, metric in ((1, 0.5), (2, 0.7), (2, 0.6), (3, 0.7), (4, 0.9))]
    pareto_front(points)
    assert [p["front"] for p in points] == [True, True, False, False, True]


def test_a_file_in_the_wrong_format_is_an_error_naming_it(tmp_path, monkeypatch):
    _write(tmp_path / "metrics/robustness/digits.json", {"task": "digits", "metric": "accuracy"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"metrics/robustness/digits\.json: not in the expected format.*models"):
        write_html(_params(), tmp_path / "index.html")
