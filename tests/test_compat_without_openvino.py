"""python -m devices.compat where only numpy and onnxruntime can be imported (no openvino, no onnx package):
OpenVINO IR files are reported as not checked, ONNX models are checked, and a check this host cannot make is
not reported as the model failing it."""
from __future__ import annotations

import json

from tests.conftest import ROOT
from tests.test_devices import make_ir, make_onnx
from tests.test_readme_example import run_with_only


def test_compat_checks_onnx_and_reports_ir_as_not_checked_without_openvino(tmp_path):
    models = tmp_path / "exports"
    meta = {"task": "digits", "precision": "fp32"}
    onnx_model = make_onnx(models / "digits" / "mae" / "model.onnx", metadata=meta)
    make_ir(onnx_model, models / "digits" / "mae" / "openvino" / "fp32" / "model.xml", meta)
    out = tmp_path / "compat.json"

    done = run_with_only(["numpy", "onnxruntime"],
                         ["-m", "devices.compat", "--profile", "cpu-x86", "--profile", "jetson-orin", "--profile",
                          "qualcomm-npu", "--models", str(models), "--json", str(out)], ROOT, also=("devices",),
                         home=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # qualcomm-npu: the dynamic fp32 model fails
    assert "Traceback" not in done.stderr, done.stderr
    results = {(r["profile"], r["model"].split("/")[-1]): r for r in json.loads(out.read_text())}
    verdicts = {key: next(line.split()[1] for line in done.stdout.splitlines()
                          if line.startswith(key[0] + " ") and line.endswith("/" + key[1]))
                for key in results}
    assert verdicts == {
        ("cpu-x86", "model.onnx"): "ok",           # checked by this host's onnxruntime
        ("cpu-x86", "model.xml"): "skip",          # openvino not installed: not checked, not failed
        ("jetson-orin", "model.onnx"): "skip",     # TensorRT not here and no onnx package to list the operators
        ("jetson-orin", "model.xml"): "n/a",
        ("qualcomm-npu", "model.onnx"): "FAIL",    # dynamic shapes and fp32 fail whatever this host lacks
        ("qualcomm-npu", "model.xml"): "n/a",
    }, done.stdout

    ir = results[("cpu-x86", "model.xml")]
    assert ir["ok"] is None and ir["checkable"] is False
    assert "cannot be checked here: openvino is not installed" in ir["checks"][0]["reason"]
    assert "model.xml" in ir["checks"][0]["reason"]

    orin = {c["check"]: c for c in results[("jetson-orin", "model.onnx")]["checks"]}
    assert orin["static_shapes"]["ok"] is True and orin["precision"]["ok"] is True
    assert orin["operators"]["ok"] is None and "not checked here: the onnx package is not installed" in \
        orin["operators"]["reason"]

    qnn = {c["check"]: c["ok"] for c in results[("qualcomm-npu", "model.onnx")]["checks"]}
    assert qnn == {"static_shapes": False, "operators": None, "precision": False}
    assert done.stdout.splitlines()[-1] == (
        "6 model checks: 1 ok, 1 failed, 2 not applicable (no runtime for the format), "
        "2 not checkable here (a package the checks need is not installed)")
