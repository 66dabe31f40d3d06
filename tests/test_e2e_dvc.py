"""One end-to-end `dvc repro` of the whole pipeline on the tiny profile, in a copy of the repository."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.browser import open_report, problems
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
    # the tiny profile without the keywords and motion tasks and their audio and video modalities, as each
    # task costs about two minutes here: the machines modality runs the audio kind end to end (front end,
    # spectrogram tokens, export); the video kind's stages are tested on their own (tests/test_video_modality.py,
    # tests/test_robustness.py, tests/test_task_data.py)
    tiny = yaml.safe_load((ROOT / "tests" / "params.tiny.yaml").read_text())
    for task, modality in (("keywords", "audio"), ("motion", "video")):
        del tiny["tasks"][task], tiny["modalities"][modality]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("EDGE_PARAMS", None)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"]):
        run(cmd, tmp_path, env)
    dvc = [sys.executable, "-m", "dvc"]
    run(dvc + ["repro"], tmp_path, env)

    metrics = json.loads(run(dvc + ["metrics", "show", "--json"], tmp_path, env))
    names = set(next(iter(metrics.values()))["data"])
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    for modality in params["modalities"]:
        for method in params["methods"]:
            for stage in ("pretrain", "probe"):
                assert (tmp_path / f"metrics/{stage}/{modality}/{method}.json").is_file(), f"{stage} {modality}-{method} missing"
        assert (tmp_path / f"reports/figures/{modality}-mae-reconstruction.png").stat().st_size > 0
    for task in params["tasks"]:
        for method in params["methods"]:
            for stage in ("finetune", "export", "quantize"):
                assert (tmp_path / f"metrics/{stage}/{task}/{method}.json").is_file(), f"{stage} {task}-{method} missing"
            export = json.loads((tmp_path / f"metrics/export/{task}/{method}.json").read_text())
            assert export["onnx_parity_ok"], (task, method)
            if params["tasks"][task].get("head", "classification") == "classification":
                assert export["variants"]["onnx-fp32"]["top1_agreement"] == 1.0, (task, method)
        robustness = json.loads((tmp_path / f"metrics/robustness/{task}.json").read_text())  # every variant, corrupted
        assert set(robustness["models"]) == set(params["methods"]) and robustness["corruptions"], task
        expected = ["pytorch", "onnx-fp32", "onnx-int8", "openvino-int8"]
        if params["tasks"][task].get("head", "classification") == "classification":  # and the frozen encoders
            expected += ["linear-probe", "linear-probe-equal-epochs"]
        assert all(list(variants) == expected for variants in robustness["models"].values()), task
        assert (tmp_path / f"metrics/robustness/curves/{task}.csv").is_file()
    assert names == {"metrics/summary.json"}  # the compact headline file; the detail files sit beside it
    headline = json.loads((tmp_path / "metrics/summary.json").read_text())
    assert set(headline) == set(params["tasks"])
    assert all(set(headline[t]) == {*params["methods"], "baseline"} for t in headline)
    for task in params["tasks"]:  # every task beside its simple baseline, scored on test
        baseline = json.loads((tmp_path / f"metrics/baselines/{task}.json").read_text())
        assert 0 <= baseline["test_metric"] <= 1 and list(headline[task]["baseline"].values()) == [baseline["test_metric"]]
    assert (tmp_path / "metrics/bench.json").is_file()
    assert (tmp_path / "exports/sentiment/mae/assets/tokenizer.json").is_file()  # shipped with text models
    assert (tmp_path / "exports/machine_faults/mae/assets/frontend.onnx").is_file()  # audio's exported front end
    detection = json.loads((tmp_path / "metrics/finetune/adas/mae.json").read_text())
    assert 0 <= detection["test_map_50"] <= 1 and 0 <= detection["test_map_50_95"] <= detection["test_map_50"]
    anomaly = json.loads((tmp_path / "metrics/finetune/machine_faults/mae.json").read_text())
    assert anomaly["scorer"] == "reconstruction" and 0 <= anomaly["test_auroc"] <= 1
    assert 0 <= anomaly["other_scorers"]["knn"]["test_auroc"] <= 1
    for task in ("adas", "machine_faults"):  # the task metric on the exported FP32 and INT8 models
        exported = json.loads((tmp_path / f"metrics/quantize/{task}/mae.json").read_text())["variants"]
        assert 0 <= exported["onnx-int8"]["test_metric"] <= 1 and 0 <= exported["openvino-int8"]["test_metric"] <= 1
    quantize = json.loads((tmp_path / "metrics/quantize/digits/mae.json").read_text())["variants"]
    assert "targets/qualcomm-npu/model.int8.onnx" in quantize and "error" not in str(quantize)

    latency = json.loads((tmp_path / "reports/latency/cpu-x86.json").read_text())
    runtimes = {(r["runtime"], r["precision"]) for r in latency["rows"]}
    assert runtimes == {("pytorch-eager", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                        ("openvino", "fp32"), ("openvino", "fp16"), ("openvino", "int8")}
    assert {r["task"] for r in latency["rows"]} == set(params["tasks"])
    assert {r["batch"] for r in latency["rows"]} == {1, 32}
    assert latency["compatibility"] and all(c["ok"] for c in latency["compatibility"])
    for profile in ("cpu-arm64", "jetson-orin", "intel-npu", "qualcomm-npu"):  # devices this host is not
        report = json.loads((tmp_path / f"reports/latency/{profile}.json").read_text())
        assert report["status"] == "not measured here" and not report["rows"] and report["compatibility"]
    assert "cpu-x86" in (tmp_path / "reports/latency/index.md").read_text()
    for task in params["tasks"]:  # every export packaged with its full card
        for method in params["methods"]:
            card = (tmp_path / f"dist/{task}/{method}/MODEL_CARD.md").read_text()
            assert "## Measured on devices" in card and "## Robustness" in card, (task, method)
            assert (tmp_path / f"dist/{task}/{method}/model.onnx").read_bytes() == \
                (tmp_path / f"exports/{task}/{method}/model.onnx").read_bytes()
    summary = (tmp_path / "reports/summary.md").read_text()
    for heading in ("Every task: fine-tuned, exported FP32 and INT8", "Every task against a simple baseline",
                    "Accuracy on the held-out test split",
                    "Object detection", "Anomaly detection", "Pretraining cost", "Export parity", "Latency per runtime",
                    "Robustness to corrupted inputs"):
        assert heading in summary
    for task in params["tasks"]:
        assert f"| {task} |" in summary
    page = open_report(tmp_path / "reports/index.html", ROOT / "tests/artifacts/report-tiny-run.png")  # a real browser
    assert not problems(page), page
    # a second repro has nothing to do: every stage's deps and outs are declared
    status = run(dvc + ["status"], tmp_path, env)
    assert "didn't change" in status or "up to date" in status

    # one modality's data changed: only the stages that read it are out of date
    with open(tmp_path / "data/image/manifest.json", "a") as f:
        f.write(" ")
    assert _changed_stages(dvc, tmp_path, env) == {"pretrain@image", "probe@image", "finetune@digits", "export@digits",
                                                   "baselines@digits", "robustness", "prepare@image"}
    run(dvc + ["checkout", "--force", "data/image"], tmp_path, env)
    # a module touched: exactly the stages that import it
    with open(tmp_path / "pipeline/tasks/detection/head.py", "a") as f:
        f.write("\n")
    changed = _changed_stages(dvc, tmp_path, env)
    assert {s.split("@")[0] for s in changed} == {"baselines", "finetune", "export", "robustness", "bench", "report"}, \
        changed
    assert {s for s in changed if s.startswith("finetune@")} == {f"finetune@{t}" for t in params["tasks"]}


def _changed_stages(dvc, cwd, env) -> set[str]:
    return set(json.loads(run(dvc + ["status", "--json"], cwd, env)))
