"""Export chain on a tiny timm-Block classifier: ONNX, OpenVINO FP32/FP16, INT8 (ORT, NNCF)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import Block
from torch import nn

from devices.runtimes import open_session
from export.metadata import read_ir_metadata, read_metadata, write_metadata
from export.onnx import export_onnx
from export.openvino import export_openvino
from export.scoring import accuracy, compare_outputs, file_size_bytes
from export.quantize.onnx import quantize_onnx_int8
from export.quantize.openvino import quantize_openvino_int8

IMAGE, PATCH, DIM, CLASSES = 16, 4, 32, 10
METADATA = {"labels": [f"class{i}" for i in range(CLASSES)], "image_size": IMAGE, "mean": [0.5, 0.5, 0.5],
            "task": "tiny", "precision": "fp32"}


class TinyViT(nn.Module):
    """Conv patch embedding + 2 timm Blocks + LayerNorm + mean pool + Linear head."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, DIM, PATCH, PATCH)
        self.pos = nn.Parameter(torch.randn(1, (IMAGE // PATCH) ** 2, DIM) * 0.02)
        self.blocks = nn.Sequential(*[Block(DIM, num_heads=4, mlp_ratio=2.0, qkv_bias=True) for _ in range(2)])
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, CLASSES)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.norm(self.blocks(tokens)).mean(dim=1))


def _inputs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, IMAGE, IMAGE)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TinyViT()  # left in train mode on purpose: export must switch to eval and back


@pytest.fixture(scope="module")
def calibration():
    return _inputs(64, seed=1)


@pytest.fixture(scope="module")
def eval_x():
    return _inputs(200, seed=2)  # held out from calibration


@pytest.fixture(scope="module")
def reference(model, eval_x):
    with torch.no_grad():
        return model.eval()(torch.from_numpy(eval_x)).numpy()


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(model.train(), torch.from_numpy(_inputs(1, seed=3)), path, METADATA, "pixels", ["logits"])
    return path


@pytest.fixture(scope="module")
def ir_paths(onnx_path, tmp_path_factory):
    return export_openvino(onnx_path, tmp_path_factory.mktemp("openvino"))


# ---- ONNX -------------------------------------------------------------------

def test_onnx_is_single_file_with_restored_mode(onnx_path, model):
    assert model.training  # the caller's train/eval mode is restored after export
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == ["model.onnx"]  # no external data, no temp left


def test_onnx_dynamic_batch_and_parity(onnx_path, model, eval_x, reference):
    session = open_session(onnx_path)
    assert session.input_name == "pixels"
    for batch in (1, 7):
        assert session.run(eval_x[:batch]).shape == (batch, CLASSES)
    stats = compare_outputs(reference, session.predict(eval_x, batch_size=64))
    assert stats["max_abs_diff"] < 1e-4
    assert stats["top1_agreement"] == 1.0


def test_metadata_round_trip(onnx_path, tmp_path):
    assert read_metadata(onnx_path) == METADATA
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(onnx_path.read_bytes())
    write_metadata(copy, {"task": "renamed", "threshold": 0.25})
    assert read_metadata(copy) == {**METADATA, "task": "renamed", "threshold": 0.25}
    with pytest.raises(ValueError, match="'bad'.*JSON"):
        write_metadata(copy, {"bad": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.onnx"]


def test_opset_18_takes_the_dynamo_exporter_with_the_same_contract(model, calibration, tmp_path, eval_x, reference):
    """Dynamic batch, names, metadata, parity, INT8; the file self-contained and the same on every export."""
    import onnx

    from export.onnx import DYNAMO, TORCHSCRIPT, exporter_for

    assert exporter_for(model, 17)[0] == TORCHSCRIPT and exporter_for(model, 18)[0] == DYNAMO
    paths = [export_onnx(model, torch.from_numpy(eval_x[:2]), tmp_path / name / "m.onnx", METADATA, "pixels",
                         ["logits"], 18) for name in ("a", "b")]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["m.onnx"]
    proto = onnx.load(str(paths[0]))
    assert [o.version for o in proto.opset_import if o.domain == ""] == [18]
    assert not any(n.metadata_props for n in proto.graph.node)  # no stack traces with this checkout's paths
    session = open_session(paths[0])
    assert session.input_name == "pixels" and session.run(eval_x[:1]).shape == (1, CLASSES)
    stats = compare_outputs(reference, session.predict(eval_x, batch_size=7))
    assert stats["max_abs_diff"] < 1e-4 and stats["top1_agreement"] == 1.0
    assert read_metadata(paths[0]) == METADATA
    _check_int8(quantize_onnx_int8(paths[0], tmp_path / "int8.onnx", calibration), reference, eval_x)


def test_models_kept_on_the_torchscript_exporter_say_why():
    from export.onnx import LEGACY_MODELS, TORCHSCRIPT, exporter_for
    from pipeline.tasks.anomaly.scorers import KnnAnomalyModel

    knn = KnnAnomalyModel.__new__(KnnAnomalyModel)  # the exporter looks at the class only
    assert exporter_for(knn, 18) == (TORCHSCRIPT, LEGACY_MODELS["KnnAnomalyModel"])


def test_export_rejects_wrong_output_names(model, tmp_path):
    with pytest.raises(ValueError, match="output_names"):
        export_onnx(model, torch.zeros(1, 3, IMAGE, IMAGE), tmp_path / "m.onnx", {}, "pixels", ["logits", "extra"])
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("content", [b"not an onnx model at all", "truncated"])
def test_broken_onnx_gives_clear_error(onnx_path, tmp_path, content):
    data = onnx_path.read_bytes()
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(data[: len(data) // 2] if content == "truncated" else content)
    with pytest.raises(ValueError, match="broken.onnx"):
        open_session(bad)
    with pytest.raises(ValueError, match="broken.onnx"):
        read_metadata(bad)


# ---- OpenVINO -----------------------------------------------------------------

def test_openvino_fp32_parity_and_dynamic_batch(ir_paths, eval_x, reference):
    assert set(ir_paths) == {"fp32", "fp16"}
    session = open_session(ir_paths["fp32"])
    for batch in (1, 7):
        assert session.run(eval_x[:batch]).shape == (batch, CLASSES)
    stats = compare_outputs(reference, session.predict(eval_x, batch_size=64))
    assert stats["max_abs_diff"] < 1e-4
    assert stats["top1_agreement"] == 1.0


def test_openvino_fp16_close(ir_paths, eval_x, reference):
    stats = compare_outputs(reference, open_session(ir_paths["fp16"]).predict(eval_x, batch_size=64))
    assert 0 < stats["max_abs_diff"] < 1e-2  # really FP16 weights, yet close
    assert stats["top1_agreement"] >= 0.95
    bins = {p: xml.with_suffix(".bin").stat().st_size for p, xml in ir_paths.items()}
    assert bins["fp16"] < 0.6 * bins["fp32"]  # (the .xml dominates file_size_bytes for a model this tiny)
    assert file_size_bytes(ir_paths["fp32"]) == bins["fp32"] + ir_paths["fp32"].stat().st_size


def test_openvino_metadata(ir_paths):
    for precision, xml in ir_paths.items():
        assert read_ir_metadata(xml) == {**METADATA, "precision": precision}
        assert xml == xml.parent.parent / precision / "model.xml" and xml.with_suffix(".bin").is_file()


def test_export_openvino_rejects_unknown_precision(onnx_path, tmp_path):
    with pytest.raises(ValueError, match="int4"):
        export_openvino(onnx_path, tmp_path, precisions=("fp32", "int4"))


# ---- INT8 ---------------------------------------------------------------------

def _check_int8(path, reference, eval_x):
    """INT8 must track FP32: chance agreement is 1/CLASSES, and these random logits have small
    margins (top-1 vs top-2 gap ~0.1), so a broken quantization fails this clearly."""
    stats = compare_outputs(reference, open_session(path).predict(eval_x, batch_size=64))
    assert stats["top1_agreement"] >= 0.85, stats
    assert stats["mean_abs_diff"] < 0.25 * reference.std(), stats
    return stats


def test_onnxruntime_int8(onnx_path, calibration, eval_x, reference, tmp_path):
    out = quantize_onnx_int8(onnx_path, tmp_path / "int8" / "model.onnx", calibration)
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx"]  # temp files cleaned up
    _check_int8(out, reference, eval_x)
    assert read_metadata(out) == {**METADATA, "precision": "int8", "quantizer": "onnxruntime-static-qdq"}
    session = open_session(out)
    ops = {n.op_type for n in __import__("onnx").load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert session.run(eval_x[:1]).shape == (1, CLASSES)


def test_nncf_int8(ir_paths, calibration, eval_x, reference, tmp_path):
    out = quantize_openvino_int8(ir_paths["fp32"], tmp_path / "nncf", calibration)
    assert out == tmp_path / "nncf" / "model.xml"
    _check_int8(out, reference, eval_x)
    meta = read_ir_metadata(out)
    assert meta == {**METADATA, "precision": "int8", "quantizer": "nncf-ptq"}
    assert out.with_suffix(".bin").stat().st_size < 0.6 * ir_paths["fp32"].with_suffix(".bin").stat().st_size


def test_quantizers_reject_mismatched_calibration(onnx_path, ir_paths, tmp_path):
    wrong = np.zeros((4, 3, IMAGE + 1, IMAGE), np.float32)
    with pytest.raises(ValueError, match=r"model\.onnx.*calibration shape"):
        quantize_onnx_int8(onnx_path, tmp_path / "q.onnx", wrong)
    with pytest.raises(ValueError, match=r"model\.xml.*calibration shape"):
        quantize_openvino_int8(ir_paths["fp32"], tmp_path / "nncf", wrong)
    assert not list(tmp_path.iterdir())


# ---- parity helpers -------------------------------------------------------------

def test_parity_helpers():
    ref = np.array([[0.0, 1.0], [2.0, 0.0]], np.float32)
    stats = compare_outputs(ref, np.array([[0.0, 0.5], [2.0, 3.0]], np.float32))
    assert stats == {"max_abs_diff": 3.0, "mean_abs_diff": 0.875, "top1_agreement": 0.5}
    assert accuracy(ref, np.array([1, 1])) == 0.5
    with pytest.raises(ValueError, match="shapes differ"):
        compare_outputs(ref, ref[:1])
    with pytest.raises(ValueError, match="labels"):
        accuracy(ref, np.array([1, 1, 0]))


# ---- files on disk --------------------------------------------------------------------------

def test_every_exported_file_is_readable_by_others(model, calibration, tmp_path):
    """Under a umask that hides files from other users, the exports still end up 0644: ONNX, OpenVINO
    .xml/.bin moved out of scratch folders, INT8 by every quantizer kind, device variants."""
    import os
    import stat

    from export.standard import quantize_standard
    from export.variants import prepare_for_profile

    old = os.umask(0o077)
    try:
        onnx_path = export_onnx(model, torch.from_numpy(_inputs(2, seed=3)), tmp_path / "model.onnx", METADATA,
                                "pixels", ["logits"])
        export_openvino(onnx_path, tmp_path / "openvino")
        quantize_standard(tmp_path, calibration, nncf_preset="performance")
        assert prepare_for_profile("cpu-arm64", tmp_path, calibration, "tiny")  # optimum's arm64 INT8
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".onnx", ".xml", ".bin"}
    assert {p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        p.relative_to(tmp_path).as_posix(): oct(0o644) for p in files}


def test_stale_scratch_of_a_killed_export_is_removed(tmp_path):
    from devices.io import atomic_path, scratch_dir
    from export.files import remove_stale_scratch

    kept = tmp_path / "openvino" / "fp32" / "model.xml"
    kept.parent.mkdir(parents=True)
    kept.write_text("<net/>")
    for near in (tmp_path, kept.parent):  # what a SIGKILL inside these context managers leaves behind
        with scratch_dir(near) as scratch:
            leftover = Path(scratch.name)
        (near / leftover).mkdir()
        (near / leftover / "model.bin").write_bytes(b"half")
    with pytest.raises(InterruptedError), atomic_path(tmp_path / "model.onnx") as tmp:
        half_written = tmp.name
        raise InterruptedError
    (tmp_path / half_written).write_bytes(b"half")
    (tmp_path / "model.onnx.keep").write_bytes(b"")  # an ordinary file stays
    removed = remove_stale_scratch(tmp_path)
    assert len(removed) == 3
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "model.onnx.keep", "openvino/fp32/model.xml"]
    assert remove_stale_scratch(tmp_path / "missing") == []
