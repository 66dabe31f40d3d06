"""The latency runner travels: it works from a copy of `devices/` in a virtual environment that holds only
numpy and onnxruntime (no torch, no openvino, no DVC, not this project), as on a Jetson or an NPU laptop."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]


def pinned(package: str) -> str:
    """The version pyproject.toml pins, so the venv matches what the project tests against."""
    match = re.search(rf'"{package}==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert match, f"{package} is not pinned in pyproject.toml"
    return f"{package}=={match.group(1)}"


def tiny_classifier(path: Path) -> None:
    """A dynamic-batch MatMul+Softmax classifier with the metadata the exports carry."""
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Softmax", ["z"], ["logits"], axis=-1)],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"task": "digits", "precision": "fp32"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, path)


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("device")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    pinned("numpy"), pinned("onnxruntime")], check=True)
    shutil.copytree(ROOT / "devices", root / "app" / "devices", ignore=shutil.ignore_patterns("__pycache__"))
    return python, root


def run_in(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_runner_measures_with_only_numpy_and_onnxruntime(bare_venv):
    python, root = bare_venv
    app = root / "app"
    assert run_in(python, app, "-c", "import torch").returncode != 0, "the venv must not have torch"
    assert run_in(python, app, "-c", "import openvino").returncode != 0, "the venv must not have openvino"
    (app / "models").mkdir()
    tiny_classifier(app / "models" / "model.onnx")
    profile = (ROOT / "devices" / "profiles" / "cpu-x86.toml").read_text()
    profile = re.sub(r"\[runtimes\.openvino\]\ndevice = \"CPU\"\n", "", profile)  # this device has no OpenVINO
    profile = re.sub(r"min_iterations = \d+", "min_iterations = 20", profile)
    (app / "ort-only.toml").write_text(profile.replace("min_seconds = 1.0", "min_seconds = 0.05"))

    done = run_in(python, app, "-m", "devices.run", "--profile", "ort-only.toml", "--models", "models",
                  "--out", "report.json", "--md", "report.md")
    assert done.returncode == 0, done.stderr
    report = json.loads((app / "report.json").read_text())
    assert report["status"] == "measured"
    assert {(r["model"], r["runtime"], r["batch"]) for r in report["rows"]} == {
        ("model.onnx", "onnxruntime", 1), ("model.onnx", "onnxruntime", 32)}
    assert all(0 < r["p50_ms"] <= r["p99_ms"] for r in report["rows"])
    assert report["host"]["cpu_model"]
    assert "CPUExecutionProvider" in json.dumps(report["host"])
    assert "model.onnx" in (app / "report.md").read_text()


def test_runner_stops_when_the_profiles_runtime_is_missing(bare_venv):
    python, root = bare_venv
    app = root / "app"
    (app / "models").mkdir(exist_ok=True)
    tiny_classifier(app / "models" / "model.onnx")
    done = run_in(python, app, "-m", "devices.run", "--profile", "cpu-x86", "--models", "models", "--out", "x.json")
    assert done.returncode == 2
    assert "openvino is not importable" in done.stderr and "no fallback" in done.stderr
    assert not (app / "x.json").exists()


def test_compat_checks_onnx_and_reports_an_ir_it_cannot_read(bare_venv):
    """No openvino (and no onnx package) here: the IR is reported as not checkable, the ONNX model is checked
    by onnxruntime, and a hidden folder (a half-written export) is not walked."""
    python, root = bare_venv
    app = root / "app"
    models = app / "compat-models"
    (models / "ir").mkdir(parents=True)
    (models / ".partial").mkdir()
    tiny_classifier(models / "model.onnx")
    (models / "ir" / "model.xml").write_text('<?xml version="1.0"?>\n<net name="tiny" version="11"><layers/></net>\n')
    (models / ".partial" / "model.onnx").write_bytes(b"half a model")
    done = run_in(python, app, "-m", "devices.compat", "--profile", "cpu-x86", "--models", "compat-models",
                  "--json", "compat.json")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((app / "compat.json").read_text())
    assert [(r["model"], r["ok"]) for r in results] == [("ir/model.xml", None), ("model.onnx", True)]
    assert "openvino is not installed" in results[0]["checks"][0]["reason"]
    assert "1 ok, 0 failed" in done.stdout.splitlines()[-1]
