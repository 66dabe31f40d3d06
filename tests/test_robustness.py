"""Robustness runs: the raw test inputs prepare keeps, the stage on tiny exported models, its JSON and curves,
mCE, the anomaly false-alarm rate, and the summary section."""
from __future__ import annotations

import contextlib
import csv
import json
import shutil
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from export.standard import export_standard, quantize_standard
from modalities import get_modality
from modalities.corruptions import Corruption, by_name
from modalities.image.modality import ImageModality
from modalities.splits import AnomalySplit, Split
from modalities.video.modality import VideoModality
from pipeline.config import params as params_mod
from pipeline.config import paths
from pipeline.config.params import parse
from pipeline.evaluation.probes import extract_features, save_linear_probe
from pipeline.evaluation.robustness import (capped_indices, corruption_error, curves_file, robustness_file,
                                            run_robustness)
from pipeline.models.loading import fresh_encoder
from pipeline.report.robustness import robustness_section
from pipeline.tasks.models import finetuned_model, run_model
from pipeline.tasks.registry import get_task
from pipeline.training.checkpoint import save_weights
from tests.conftest import ROOT

TINY_ENCODER = {"embed_dim": 16, "depth": 1, "num_heads": 2, "mlp_ratio": 2.0}
IMAGE = {"image_size": 16, "channels": 1, "patch_size": 8}
VIDEO = {"kind": "video", "source": "anomaly", "frames": 4, "fps": 10.0, "frame_size": 16, "channels": 1,
         "tubelet_frames": 2, "patch_size": 8}
VARIANTS = ["pytorch", "onnx-fp32", "onnx-int8", "openvino-int8"]
PROBES = ["linear-probe", "linear-probe-equal-epochs"]  # classification tasks: the frozen encoders too
LABELS = ["a", "b", "c"]


def write_prepared(modality, splits: dict, data_dir) -> None:
    """What prepare writes: every split through the modality's save_split, the manifest's labels."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        with open(data_dir / f"{name}.npz", "wb") as f:
            modality.save_split(split, f)
    (data_dir / "manifest.json").write_text(json.dumps({"labels": splits["train"].labels}))


# ---- raw inputs ---------------------------------------------------------------------------------------

def test_audio_raw_waveforms_encode_to_the_stored_test_spectrograms(tmp_path):
    """Both audio paths: class folders (16-bit wav) and the generated machine sounds (anomaly readers)."""
    t = np.arange(16000) / 16000
    for c, freq in enumerate((300, 900)):
        for i in range(8):
            (tmp_path / "clips" / f"c{c}").mkdir(parents=True, exist_ok=True)
            wave = 0.3 * np.sin(2 * np.pi * (freq + 40 * i) * t) * np.linspace(0.2, 1, len(t))
            sf.write(str(tmp_path / "clips" / f"c{c}" / f"{i}.wav"), wave[: 9000 + 800 * i], 16000)
    machines = {"kind": "audio", "source": "machine_sounds",
                "anomaly": {"train": 4, "val": 2, "test_normal": 3, "test_anomalous": 3}}
    params = parse({"modalities": {"audio": {"source": "folder", "path": str(tmp_path / "clips")},
                                   "machines": machines}, "tasks": {}})
    for name in ("audio", "machines"):
        modality = get_modality(name, params)
        prepared = modality.load_raw()
        data_dir = tmp_path / "data" / name
        write_prepared(modality, prepared.splits, data_dir)
        test = modality.load_split(data_dir, "test")
        raw = modality.raw_inputs(data_dir, "test")
        assert raw.dtype == np.float32 and raw.shape == (len(test), 16000) and np.abs(raw).max() <= 1
        encoded = modality.encode_raw(raw, data_dir)
        assert encoded.dtype == test.x.dtype == np.float16 and encoded.shape == test.x.shape
        np.testing.assert_allclose(encoded.astype(np.float32), test.x.astype(np.float32), atol=1e-3, rtol=2e-3)
        with np.load(data_dir / "test.npz") as arrays:  # 16-bit PCM files keep int16, generated clips float32
            assert arrays["waveform"].dtype == (np.int16 if name == "audio" else np.float32)
        with np.load(data_dir / "train.npz") as train:
            assert "waveform" not in train.files  # kept for test only
        with pytest.raises(FileNotFoundError, match=r"train\.npz: no raw inputs \(waveform\).*rerun prepare"):
            modality.raw_inputs(data_dir, "train")


def test_text_raw_texts_encode_to_the_stored_test_ids(tmp_path):
    sentences = ["a warm and funny film", "the plot makes no sense at all", "Ünïcode, \"quoted\" and\nnew lines",
                 "boring, slow and far too long", "great acting and a clever story"]
    rows = [{"text": f"{i}: {sentences[i % len(sentences)]}", "label": i % 2} for i in range(40)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = parse({"modalities": {"text": {"source": "jsonl", "path": str(tmp_path / "d.jsonl"), "vocab_size": 300,
                                            "max_len": 12}}, "tasks": {}})
    modality = get_modality("text", params)
    prepared = modality.load_raw()
    data_dir = tmp_path / "data" / "text"
    write_prepared(modality, prepared.splits, data_dir)
    for name, text in prepared.files.items():
        (data_dir / name).write_text(text, encoding="utf-8")
    test = modality.load_split(data_dir, "test")
    raw = modality.raw_inputs(data_dir, "test")
    assert isinstance(raw, list) and len(raw) == len(test) and all(isinstance(t, str) for t in raw)
    assert set(raw) <= {r["text"] for r in rows}
    np.testing.assert_array_equal(modality.encode_raw(raw, data_dir), test.x)
    assert list(prepared.files) == ["tokenizer.json"]  # nothing new beside the splits


def test_images_are_their_own_raw_inputs(tmp_path):
    modality = get_modality("image", parse({"modalities": {"image": IMAGE}, "tasks": {}}))
    x = np.random.default_rng(0).integers(0, 256, (5, 1, 16, 16), dtype=np.uint8)
    write_prepared(modality, {"train": Split(x, np.arange(5) % 2, ["a", "b"]),
                              "test": Split(x, np.arange(5) % 2, ["a", "b"])}, tmp_path)
    raw = modality.raw_inputs(tmp_path, "test")
    assert np.array_equal(raw, x) and np.array_equal(modality.encode_raw(raw, tmp_path), x)


# ---- figures ----------------------------------------------------------------------------------------------

def test_capped_indices_keep_every_class_and_are_seeded():
    y = np.array([0] * 90 + [1] * 10)
    picked = capped_indices(y, 20, seed=3)
    assert len(picked) == 20 and (np.diff(picked) > 0).all()
    assert (y[picked] == 1).sum() == 2 and np.array_equal(picked, capped_indices(y, 20, seed=3))
    assert np.array_equal(capped_indices(y, None, 0), np.arange(100))
    assert np.array_equal(capped_indices(y, 500, 0), np.arange(100))


def test_corruption_error_is_imagenet_c_mce():
    reference = {"noise": [0.5, 0.4], "blur": [0.8, 0.6]}
    model = {"noise": [0.75, 0.7], "blur": [0.8, 0.6]}
    # noise: (0.25 + 0.3) / (0.5 + 0.6) = 0.5; blur: 1.0
    assert corruption_error(model, reference) == pytest.approx(0.75)
    assert corruption_error(reference, reference) == pytest.approx(1.0)
    assert corruption_error(model, {"noise": [1.0, 1.0], "blur": [0.8, 0.6]}) is None  # nothing to divide by


# ---- the stage on tiny exports --------------------------------------------------------------------------

def _noise(x, severity, rng):
    return np.clip(x.astype(np.int16) + rng.integers(-25 * severity, 25 * severity + 1, x.shape), 0, 255).astype(
        np.uint8)


def _dim(x, severity, rng):
    return (x.astype(np.uint16) * (6 - severity) // 6).astype(np.uint8)


TINY_CORRUPTIONS = by_name(Corruption("noise", _noise), Corruption("dim", _dim))


def _tiny_params(root, methods: list[str], variants: list[str], **robustness) -> dict:
    """The tiny project's params, written to root/params.yaml (the stage reads that file)."""
    raw = {"seed": 0, "methods": methods, "encoder": TINY_ENCODER,
           "modalities": {"image": IMAGE, "surveillance": VIDEO},
           "tasks": {"digits": {"modality": "image"},
                     "odd": {"modality": "surveillance", "head": "anomaly"}},
           "export": {"opset": 17}, "robustness": {"variants": variants, "severities": [1, 3, 5], **robustness}}
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return raw


def _perturbed(model: torch.nn.Module, method: str) -> torch.nn.Module:
    """Every method starts from the same seeded encoder; the non-random ones get their own weights."""
    if method != "random":
        g = torch.Generator().manual_seed(len(method))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project after `export`: image data, a fine-tuned classifier per method with its FP32 / INT8
    exports, and video anomaly data with a kNN scorer per method (PyTorch only)."""
    from pipeline.tasks.anomaly.scorers import KnnAnomalyModel, embedding_bank, threshold_at_fpr

    root = tmp_path_factory.mktemp("project")
    methods = ["mae", "random"]
    raw = _tiny_params(root, methods, VARIANTS)
    params = parse(raw)
    rng = np.random.default_rng(0)
    with contextlib.chdir(root):
        image = get_modality("image", params)
        x = rng.integers(0, 256, (40, 1, 16, 16), dtype=np.uint8)
        y = np.arange(40) % 3
        x[y == 1, :, :8] = 255  # something a model can see
        write_prepared(image, {"train": Split(x[:24], y[:24], LABELS), "test": Split(x[24:], y[24:], LABELS)},
                       paths.data_dir("image"))
        calibration = image.to_input(torch.from_numpy(x[:16])).numpy()
        for method in methods:
            model = get_task("classification").build(fresh_encoder(image, params), image, params, {"labels": LABELS})
            model = _perturbed(model, method)
            out = paths.finetune_dir("digits", method)
            save_weights(model, out / "model.safetensors")
            (out / "config.json").write_text(json.dumps({"labels": LABELS}))
            export_dir = paths.export_dir("digits", method)
            export_standard(model, image, export_dir, {"task": "digits", "method": method}, opset=17,
                            precisions=("fp32",))
            quantize_standard(export_dir, calibration)
            # its pretrained encoder and the linear probe fitted on it; mae was also trained at equal epochs
            encoders = {False: _perturbed(fresh_encoder(image, params), method)}
            save_weights(encoders[False], paths.pretrain_dir("image", method) / "encoder.safetensors")
            if method == "mae":
                encoders[True] = _perturbed(fresh_encoder(image, params), "mae-equal-epochs")
                save_weights(encoders[True], paths.equal_epochs_encoder("image", method))
            for equal_epochs, encoder in encoders.items():
                features = extract_features(encoder, image, x[:24], 8)
                probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit(features, y[:24])
                save_linear_probe(probe, paths.linear_probe_file("image", method, equal_epochs))

        video = get_modality("surveillance", params)
        clips = rng.integers(0, 256, (20, 1, 4, 16, 16), dtype=np.uint8)
        kinds = np.array([0] * 12 + [0, 1, 0, 2, 0, 1, 0, 2])
        clips[kinds == 2, :, 2:] = clips[kinds == 2, :, 1:2]  # frozen after the second frame
        splits = {name: AnomalySplit(clips[a:b], kinds[a:b], ["normal", "dark", "frozen"])
                  for name, (a, b) in {"train": (0, 8), "val": (8, 12), "test": (12, 20)}.items()}
        write_prepared(video, splits, paths.data_dir("surveillance"))
        for method in methods:
            encoder = _perturbed(fresh_encoder(video, params), method)
            normal = video.to_input(torch.from_numpy(splits["train"].x))
            model = KnnAnomalyModel(encoder, embedding_bank(encoder, normal), k=3).eval()
            with torch.no_grad():
                val_scores = model(video.to_input(torch.from_numpy(splits["val"].x))).numpy()
            config = {"scorer": "knn", "threshold": threshold_at_fpr(val_scores, 0.1), "k": 3,
                      "bank_size": len(model.bank), "masks": 2, "labels": splits["test"].labels}
            out = paths.finetune_dir("odd", method)
            save_weights(model, out / "model.safetensors")
            (out / "config.json").write_text(json.dumps(config))
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")  # the stage reads only the params its entry declares
    return root


def _run_stage(project, monkeypatch, task: str) -> dict:
    from pipeline.stages import robustness as stage

    monkeypatch.chdir(project)
    monkeypatch.setattr(params_mod, "PARAMS_FILE", project / "params.yaml")
    monkeypatch.setattr(sys, "argv", ["robustness", "--task", task])
    monkeypatch.setattr(ImageModality, "corruptions", lambda self: TINY_CORRUPTIONS)
    monkeypatch.setattr(VideoModality, "corruptions", lambda self: {
        "noise": Corruption("noise", _noise), "dim": Corruption("dim", _dim)})
    stage.main()
    return json.loads(robustness_file(task).read_text())


def test_stage_scores_every_method_and_variant_on_every_corruption(project, monkeypatch):
    result = _run_stage(project, monkeypatch, "digits")
    assert list(result)[:7] == ["task", "metric", "severities", "corruptions", "test_samples", "seconds", "models"]
    assert (result["task"], result["metric"], result["severities"]) == ("digits", "accuracy", [1, 3, 5])
    assert result["corruptions"] == ["noise", "dim"] and result["test_samples"] == 16 and result["seconds"] > 0
    assert result["max_samples"] is None and result["chance"] == pytest.approx(6 / 16)
    assert set(result["models"]) == {"mae", "random"}
    for method, variants in result["models"].items():
        assert list(variants) == VARIANTS + PROBES
        for variant, m in variants.items():
            assert set(m) == {"clean", "by_corruption", "mean_corrupted", "relative_drop", "mce"}
            assert list(m["by_corruption"]) == ["noise", "dim"] and all(len(v) == 3 for v in m["by_corruption"].values())
            values = [v for vs in m["by_corruption"].values() for v in vs]
            assert all(0 <= v <= 1 for v in values) and m["mean_corrupted"] == pytest.approx(np.mean(values))
            assert m["relative_drop"] == pytest.approx((m["clean"] - m["mean_corrupted"]) / m["clean"])
    for variant in VARIANTS + PROBES:
        assert result["models"]["random"][variant]["mce"] == pytest.approx(1.0)
        assert result["models"]["mae"][variant]["mce"] is not None
    random = result["models"]["random"]  # one encoder at both budgets: the same figures
    assert random["linear-probe"] == random["linear-probe-equal-epochs"]
    torch_model, fp32 = result["models"]["mae"]["pytorch"], result["models"]["mae"]["onnx-fp32"]
    assert abs(torch_model["clean"] - fp32["clean"]) <= 1 / 16  # the FP32 export answers as PyTorch does
    assert np.allclose(sum(torch_model["by_corruption"].values(), []), sum(fp32["by_corruption"].values(), []),
                       atol=1 / 16)

    with open(curves_file("digits")) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["method", "variant", "corruption", "severity", "metric"]
    assert len(rows) == 2 * 6 * 2 * 4  # methods x variants x corruptions x (clean + 3 severities)
    for row in rows:
        m = result["models"][row["method"]][row["variant"]]
        expected = m["clean"] if row["severity"] == "0" else \
            m["by_corruption"][row["corruption"]][[1, 3, 5].index(int(row["severity"]))]
        assert float(row["metric"]) == pytest.approx(expected)
    assert {r["severity"] for r in rows} == {"0", "1", "3", "5"}

    again = _run_stage(project, monkeypatch, "digits")  # seeded: the same numbers on a second run
    assert again["models"] == result["models"]


def test_anomaly_stage_adds_false_alarms_at_the_shipped_threshold_and_caps_samples(project, monkeypatch):
    raw = _tiny_params(project, ["mae", "random"], ["pytorch"], max_samples=6)
    try:
        result = _run_stage(project, monkeypatch, "odd")
    finally:
        _tiny_params(project, ["mae", "random"], VARIANTS)
    assert raw["robustness"]["max_samples"] == 6
    assert result["metric"] == "auroc" and result["test_samples"] == 6 and result["max_samples"] == 6
    assert result["chance"] == 0.5
    for method in ("mae", "random"):
        m = result["models"][method]["pytorch"]
        far = m["false_alarm_rate"]
        assert list(far) == ["clean", "noise", "dim"] and all(len(far[c]) == 3 for c in ("noise", "dim"))
        assert all(0 <= v <= 1 for c in ("noise", "dim") for v in far[c]) and 0 <= far["clean"] <= 1
    assert result["models"]["random"]["pytorch"]["mce"] == pytest.approx(1.0)
    with contextlib.chdir(project):  # the clean rate is the shipped model's at its config.json threshold
        params = parse(_tiny_params(project, ["mae", "random"], VARIANTS))
        video = get_modality("surveillance", params)
        test = video.load_split(paths.data_dir("surveillance"), "test")
        model, config = finetuned_model(video, params, "odd", "mae")
    test = test.subset(capped_indices(test.y, 6, seed=0))
    scores = run_model(model, video.to_input(torch.from_numpy(test.x)).numpy())[0]
    clean = result["models"]["mae"]["pytorch"]["false_alarm_rate"]["clean"]
    assert clean == pytest.approx(np.mean(scores[test.y == 0] > config["threshold"]))


def test_library_refuses_a_corruption_that_changes_the_batch(project, monkeypatch):
    monkeypatch.chdir(project)
    params = parse(_tiny_params(project, ["random"], ["pytorch"]))
    _tiny_params(project, ["mae", "random"], VARIANTS)
    image = get_modality("image", params)
    bad = {"crop": Corruption("crop", lambda x, s, rng: x[:, :, :8])}
    with pytest.raises(ValueError, match=r"corruption 'crop' returned an array \(16, 1, 8, 16\) uint8, expected an "
                                         r"array \(16, 1, 16, 16\) uint8"):
        run_robustness(params, "digits", image, bad, log=lambda line: None)
    with pytest.raises(ValueError, match=r"modality 'image' \(kind image\) lists no corruptions.*"
                                         r"modalities/image/corruptions\.py"):
        run_robustness(params, "digits", image, {}, log=lambda line: None)


# ---- the summary section ------------------------------------------------------------------------------------

def _entry(clean, corrupted, mce=None):
    return {"clean": clean, "by_corruption": {"noise": [corrupted]}, "mean_corrupted": corrupted,
            "relative_drop": (clean - corrupted) / clean, "mce": mce}


def test_summary_section_tables_and_verdicts():
    params = parse({"modalities": {"image": {}, "machines": {"kind": "audio", "source": "machine_sounds"}},
                    "tasks": {"digits": {"modality": "image"},
                              "faults": {"modality": "machines", "head": "anomaly"}}})
    results = {
        "digits": {"task": "digits", "metric": "accuracy", "severities": [1], "corruptions": ["noise"],
                   "test_samples": 100, "seconds": 1.0, "max_samples": None, "chance": 0.1, "models": {
                       "mae": {"pytorch": _entry(0.9, 0.8, 0.5), "onnx-int8": _entry(0.9, 0.6, 0.7),
                               "linear-probe": _entry(0.7, 0.5), "linear-probe-equal-epochs": _entry(0.6, 0.4)},
                       "simclr": {"pytorch": _entry(0.85, 0.7, 0.6), "onnx-int8": _entry(0.85, 0.7, 0.6),
                                  "linear-probe": _entry(0.8, 0.5), "linear-probe-equal-epochs": _entry(0.8, 0.5)},
                       "random": {"pytorch": _entry(0.5, 0.3, 1.0)}}},
        "faults": {"task": "faults", "metric": "auroc", "severities": [1], "corruptions": ["noise"],
                   "test_samples": 50, "seconds": 1.0, "max_samples": 50, "chance": 0.5, "models": {
                       "mae": {"pytorch": {**_entry(0.52, 0.51), "false_alarm_rate": {"clean": 0.1, "noise": [0.3]}}},
                       "simclr": {"pytorch": {**_entry(0.8, 0.6), "false_alarm_rate": {"clean": 0.1, "noise": [0.5]}}}}},
    }
    lines = robustness_section(params, lambda stage, group, method: results.get(group) if stage == "robustness" else None)
    text = "\n".join(lines)
    assert lines[0] == "## Robustness to corrupted inputs (test split)"
    assert "| mae | pytorch | 0.900 | 0.800 | 11.1% | 0.50 |" in text
    assert "| simclr | pytorch | 0.800 | 0.600 | 25.0% | n/a | 10.0% -> 50.0% |" in text
    assert "a seeded pick of 50 test samples" in text and "100 test samples" in text
    assert ("- **image** (digits, fine-tuned, pytorch): MAE more robust than SimCLR (mean corrupted 0.800 vs 0.700; "
            "clean 0.900 vs 0.850). INT8 changes the answer: with onnx-int8 MAE is less robust (0.600 vs 0.700). "
            "Frozen encoders with a linear probe: at equal epochs MAE is less robust than SimCLR (0.400 vs 0.500; "
            "clean 0.600 vs 0.800); at equal compute MAE is as robust as SimCLR (0.500 vs 0.500; clean 0.700 vs "
            "0.800).") in text
    assert ("- **machines** (faults, fine-tuned, pytorch): MAE less robust than SimCLR (mean corrupted 0.510 vs 0.600; clean "
            "0.520 vs 0.800), though it keeps more of its clean metric (98.1% vs 75.0% of it). MAE is near chance (0.500) "
            "when clean, so its robustness means little.") in text



def test_summary_section_is_empty_without_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no metrics/robustness/ here
    params = parse({"modalities": {"image": {}}, "tasks": {"digits": {"modality": "image"}}})
    assert robustness_section(params, lambda *args: None) == []
