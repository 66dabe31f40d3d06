"""devices.run as OpenVINO's benchmark_app behaves: "k of N models" progress, a partial JSON kept after each
model, full model paths, and batch-1 latency end to end through a model's front end (frontend.onnx /
tokenizer.json). Tiny hand-made exports; no torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import devices.run as run
from devices.profile import load_profile
from devices.report import render_markdown
from tests.test_devices import make_onnx, write_profile
from tests.test_predict_hostile import tiny_model

ROOT = Path(__file__).resolve().parents[1]
PROFILE = """
description = "runner progress test"
arch = "any"
threads = 1
batch_sizes = [1, 2]
warmup_iterations = 1
precisions = ["fp32"]

[runtimes.onnxruntime]
provider = "CPUExecutionProvider"

[repetitions]
min_iterations = 3
min_seconds = 0.0

[budget_ms]
default = 1000.0
"""
CLIP = 160
AUDIO = {"modality": "audio", "precision": "fp32",
         "preprocessing": {"sample_rate": 16000, "clip_samples": CLIP, "crop": "center", "frontend": "frontend.onnx",
                           "log_mel": {"n_mels": 2, "frames": 3}}}
TEXT = {"modality": "text", "precision": "fp32", "input_range": [0, 100],
        "preprocessing": {"tokenizer": "tokenizer.json", "max_len": 4}}


@pytest.fixture
def profile(tmp_path):
    return load_profile(write_profile(tmp_path, PROFILE, "progress-device"))


def _assets(export: Path, files: dict[str, bytes | None]) -> None:
    (export / "assets").mkdir(parents=True, exist_ok=True)
    (export / "assets" / "manifest.json").write_text(json.dumps({"files": sorted(files)}))
    for name, data in files.items():
        if data is not None:
            (export / "assets" / name).write_bytes(data)


def frontend_bytes() -> bytes:
    """A stand-in log-mel front end: waveform [N, CLIP] -> its first 6 samples as [N, 1, 2, 3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    consts = [numpy_helper.from_array(np.array(v, dtype=np.int64), n)
              for n, v in (("starts", [0]), ("ends", [6]), ("axes", [1]), ("shape", [-1, 1, 2, 3]))]
    graph = helper.make_graph(
        [helper.make_node("Slice", ["waveform", "starts", "ends", "axes"], ["head"]),
         helper.make_node("Reshape", ["head", "shape"], ["features"])],
        "frontend", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, [None, CLIP])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 1, 2, 3])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def tokenizer_bytes() -> bytes:
    from modalities.text.tokenizer import train_tokenizer

    texts = ["the quick brown fox", "jumps over the lazy dog", "a river bank"]
    return train_tokenizer(texts, vocab_size=300, min_frequency=1, max_len=4, lowercase=True).to_str().encode()


def audio_export(root: Path, frontend: bytes | None = None) -> Path:
    model = tiny_model(root / "sounds" / "mae" / "model.onnx", AUDIO, shape=(None, 1, 2, 3))
    _assets(model.parent, {"frontend.onnx": frontend if frontend is not None else frontend_bytes()})
    return model


def text_export(root: Path) -> Path:
    model = tiny_model(root / "reviews" / "mae" / "model.onnx", TEXT, shape=(None, 4), dtype="int64")
    _assets(model.parent, {"tokenizer.json": tokenizer_bytes()})
    return model


def plain_export(root: Path, name: str = "digits/mae/model.onnx") -> Path:
    return make_onnx(root / name, metadata={"precision": "fp32"})


def two_input_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Add", ["x", "y"], ["z"])], "two",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 4]) for n in "xy"],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# --- progress and full paths ----------------------------------------------------------------------


def test_progress_says_k_of_n_models_with_the_time_left(tmp_path, profile):
    models = tmp_path / "exports"
    for name in ("a/mae/model.onnx", "b/mae/model.onnx", "c/mae/model.onnx"):
        plain_export(models, name)
    make_onnx(models / "d" / "mae" / "model_fp16.onnx", metadata={"precision": "fp16"})  # skipped: still counted
    lines: list[str] = []
    run.measure_models(profile, models, log=lines.append)
    progress = [line for line in lines if " of 4 models" in line]
    assert [line.split(" of ")[0] for line in progress] == ["1", "2", "3", "4"]
    assert all("left" in line for line in progress[:3]) and "left" not in progress[3]
    assert str(models.resolve() / "d" / "mae" / "model_fp16.onnx") in progress[3]
    assert len(lines) <= 4 * 4  # a few lines per model, never a redrawn bar


def test_rows_and_skipped_carry_the_full_path_and_logs_name_it(tmp_path, profile, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain_export(tmp_path / "exports", "digits/mae/model.onnx")
    make_onnx(tmp_path / "exports" / "digits" / "mae" / "fixed_fp32.onnx", shape=(1, 4))
    lines: list[str] = []
    report = run.measure_models(profile, "exports", log=lines.append)  # a relative --models, as DVC gives it
    full = {rel: str(tmp_path.resolve() / "exports" / rel)
            for rel in ("digits/mae/model.onnx", "digits/mae/fixed_fp32.onnx")}
    assert {(r["model"], r["path"], r["batch"]) for r in report["rows"]} == {
        ("digits/mae/fixed_fp32.onnx", full["digits/mae/fixed_fp32.onnx"], 1),
        ("digits/mae/model.onnx", full["digits/mae/model.onnx"], 1),
        ("digits/mae/model.onnx", full["digits/mae/model.onnx"], 2)}
    assert report["skipped"] == [{"model": "digits/mae/fixed_fp32.onnx", "path": full["digits/mae/fixed_fp32.onnx"],
                                  "batch": 2, "reason": "input batch axis is fixed to 1"}]
    assert f"skip {full['digits/mae/fixed_fp32.onnx']} batch 2: input batch axis is fixed to 1" in lines
    assert any(line.startswith(f"{full['digits/mae/model.onnx']} [onnxruntime fp32] batch 1: p50 ") for line in lines)


# --- JSON as it goes ------------------------------------------------------------------------------


def test_on_model_gets_a_partial_report_after_each_model(tmp_path, profile):
    plain_export(tmp_path / "m", "a/model.onnx")
    plain_export(tmp_path / "m", "b/model.onnx")
    partials: list[dict] = []
    report = run.measure_models(profile, tmp_path / "m", log=lambda m: None, on_model=partials.append)
    assert [(p["status"], p["models_done"], p["models_total"]) for p in partials] == [("partial", 1, 2),
                                                                                      ("partial", 2, 2)]
    assert {r["model"] for r in partials[0]["rows"]} == {"a/model.onnx"}
    assert report["status"] == "measured" and "models_done" not in report
    assert report["rows"] == partials[1]["rows"]


def _main(tmp_path, models: Path) -> tuple[int, Path]:
    out = tmp_path / "out" / "device.json"
    rc = run.main(["--profile", str(write_profile(tmp_path, PROFILE, "progress-device")),
                   "--models", str(models), "--out", str(out), "--md", str(tmp_path / "out" / "device.md")])
    return rc, out


def test_ctrl_c_after_the_first_model_keeps_a_partial_json(tmp_path, monkeypatch, capsys):
    plain_export(tmp_path / "m", "a/model.onnx")
    plain_export(tmp_path / "m", "b/model.onnx")
    measure_one, calls = run._measure_one, []

    def interrupted_on_the_second(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return measure_one(*args, **kwargs)

    monkeypatch.setattr(run, "_measure_one", interrupted_on_the_second)
    rc, out = _main(tmp_path, tmp_path / "m")
    assert rc == 130
    err = capsys.readouterr().err
    assert f"interrupted: {out} keeps the 1 of 2 models measured (status 'partial')" in err
    report = json.loads(out.read_text())
    assert (report["status"], report["models_done"], report["models_total"]) == ("partial", 1, 2)
    assert {(r["model"], r["batch"]) for r in report["rows"]} == {("a/model.onnx", 1), ("a/model.onnx", 2)}
    assert not (tmp_path / "out" / "device.md").exists()
    assert "**Partial run:** 1 of 2 models were done" in render_markdown(report)


def test_ctrl_c_before_any_model_finished_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    plain_export(tmp_path / "m", "a/model.onnx")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "_measure_one", interrupted)
    rc, out = _main(tmp_path, tmp_path / "m")
    assert rc == 130 and not out.exists()
    assert f"interrupted: no model was finished, {out} was not written" in capsys.readouterr().err


def test_a_model_that_raises_leaves_the_models_before_it(tmp_path, capsys):
    plain_export(tmp_path / "m", "a/model.onnx")
    bad = two_input_model(tmp_path / "m" / "b" / "model.onnx")
    rc, out = _main(tmp_path, tmp_path / "m")
    assert rc == 2
    err = capsys.readouterr().err
    assert f"error: {bad.resolve()}: has 2 inputs" in err and "keeps the 1 of 2 models measured" in err
    report = json.loads(out.read_text())
    assert report["status"] == "partial" and {r["model"] for r in report["rows"]} == {"a/model.onnx"}


def test_a_finished_run_writes_status_measured(tmp_path, capsys):
    plain_export(tmp_path / "m", "a/model.onnx")
    rc, out = _main(tmp_path, tmp_path / "m")
    assert rc == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["status"] == "measured" and "models_done" not in report
    assert "1 of 1 models" in capsys.readouterr().err


# --- end to end through a front end ---------------------------------------------------------------


def test_front_ends_are_measured_end_to_end_at_batch_1(tmp_path, profile):
    models = tmp_path / "exports"
    audio, text, plain = audio_export(models), text_export(models), plain_export(models)
    lines: list[str] = []
    report = run.measure_models(profile, models, log=lines.append)
    rows = {(r["model"], r["batch"]): r for r in report["rows"]}
    assert set(rows) == {(m, b) for m in ("sounds/mae/model.onnx", "reviews/mae/model.onnx", "digits/mae/model.onnx")
                         for b in (1, 2)}
    for model, front_end in (("sounds/mae/model.onnx", "frontend.onnx"), ("reviews/mae/model.onnx", "tokenizer.json")):
        row = rows[(model, 1)]
        assert row["e2e_front_end"] == front_end and "e2e_error" not in row
        assert row["e2e_p50_ms"] > 0 and row["e2e_p99_ms"] >= row["e2e_p50_ms"] and row["e2e_iterations"] >= 3
        assert not any(key.startswith("e2e") for key in rows[(model, 2)])
    assert not any(key.startswith("e2e") for r in report["rows"] if r["model"] == "digits/mae/model.onnx" for key in r)
    assert any(line.startswith(f"{audio.resolve()} end to end with frontend.onnx batch 1: p50 ") for line in lines)
    assert any(line.startswith(f"{text.resolve()} end to end with tokenizer.json batch 1: p50 ") for line in lines)
    md = render_markdown(report)
    assert "End to end (front end + model), batch 1" in md
    table = md.split("End to end (front end + model), batch 1")[1]
    assert "| `sounds/mae/model.onnx` | onnxruntime | fp32 | `frontend.onnx` |" in table
    assert "| `reviews/mae/model.onnx` | onnxruntime | fp32 | `tokenizer.json` |" in table
    assert "digits/mae/model.onnx" not in table and plain.is_file()


def test_the_end_to_end_input_goes_through_the_predictors_preprocessing(tmp_path, profile, monkeypatch):
    from devices import end_to_end
    from devices.predict import Predictor

    model = audio_export(tmp_path / "exports")
    seen: list[np.ndarray] = []
    preprocess = end_to_end.preprocess
    monkeypatch.setattr(end_to_end, "preprocess", lambda raw, spec: seen.append(preprocess(raw, spec)) or seen[-1])
    run.measure_models(profile, tmp_path / "exports", log=lambda m: None)
    waveform = np.random.default_rng(0).uniform(-0.5, 0.5, CLIP).astype(np.float32)
    assert seen and np.array_equal(seen[0], Predictor(model).preprocess(waveform))
    assert np.array_equal(seen[0].reshape(-1), waveform[:6])


def test_a_front_end_that_cannot_load_is_recorded_and_the_run_goes_on(tmp_path, profile):
    audio_export(tmp_path / "exports", frontend=b"\x08\x01not an onnx model")
    plain_export(tmp_path / "exports")
    report = run.measure_models(profile, tmp_path / "exports", log=lambda m: None)
    row = next(r for r in report["rows"] if r["model"] == "sounds/mae/model.onnx" and r["batch"] == 1)
    assert row["e2e_front_end"] == "frontend.onnx" and "e2e_p50_ms" not in row
    assert "frontend.onnx" in row["e2e_error"]
    assert {r["model"] for r in report["rows"]} == {"sounds/mae/model.onnx", "digits/mae/model.onnx"}
    md = render_markdown(report)
    assert "| `sounds/mae/model.onnx` | onnxruntime | fp32 | `frontend.onnx` | — | — |" in md
    assert "not measured: " in md


def test_the_runner_imports_no_torch():
    code = "import sys, devices.run, devices.end_to_end; sys.exit('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr or "devices.run imported torch"
