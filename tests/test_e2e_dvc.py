"""One end-to-end `dvc repro` of the whole pipeline on the tiny profile, in a copy of the repository."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def run(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_dvc_repro_on_tiny_profile(tmp_path):
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "tests" / "params.tiny.yaml", tmp_path / "params.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("EDGE_PARAMS", None)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"]):
        run(cmd, tmp_path, env)
    dvc = [sys.executable, "-m", "dvc"]
    run(dvc + ["repro"], tmp_path, env)

    metrics = json.loads(run(dvc + ["metrics", "show", "--json"], tmp_path, env))
    files = next(iter(metrics.values()))["data"]
    names = set(files)
    for stage, name in [("pretrain", "image-mae"), ("pretrain", "image-simclr"), ("probe", "image-random"),
                        ("finetune", "digits-simclr"), ("export", "digits-mae"), ("quantize", "digits-mae")]:
        assert f"metrics/{stage}/{name}.json" in names, f"{stage}/{name} missing from dvc metrics show"
    assert "metrics/bench.json" in names
    export = json.loads((tmp_path / "metrics/export/digits-mae.json").read_text())
    assert export["variants"]["onnx-fp32"]["top1_agreement"] == 1.0
    latency = json.loads((tmp_path / "reports/latency/cpu-x86.json").read_text())
    runtimes = {(r["runtime"], r["precision"]) for r in latency["rows"]}
    assert runtimes == {("pytorch-eager", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                        ("openvino", "fp32"), ("openvino", "fp16"), ("openvino", "int8")}
    assert {r["batch"] for r in latency["rows"]} == {1, 32}
    assert latency["compatibility"] and all(c["ok"] for c in latency["compatibility"])
    for profile in ("cpu-arm64", "jetson-orin", "intel-npu", "qualcomm-npu"):  # devices this host is not
        report = json.loads((tmp_path / f"reports/latency/{profile}.json").read_text())
        assert report["status"] == "not measured here" and not report["rows"] and report["compatibility"]
    assert "cpu-x86" in (tmp_path / "reports/latency/index.md").read_text()
    summary = (tmp_path / "reports/summary.md").read_text()
    for heading in ("Accuracy on the held-out test split", "Pretraining cost", "Export parity", "Latency per runtime"):
        assert heading in summary
    assert (tmp_path / "reports/figures/image-mae-reconstruction.png").stat().st_size > 0
    # a second repro has nothing to do: every stage's deps and outs are declared
    assert "didn't change" in run(dvc + ["status"], tmp_path, env) or "up to date" in run(dvc + ["status"], tmp_path, env)
