"""The app predictor (devices.predict) on raw files, for each head, on models exported by the library code
(export.assets, export.metadata, export.standard) from modalities whose names are not their kinds: the
metadata's "modality" (the kind) picks the preprocessor, "modality_name" records the instance."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from devices.predict import Predictor
from export.assets import write_assets
from export.metadata import model_metadata, read_ir_metadata, read_metadata
from export.standard import IR_FILES, ONNX_FILES, export_standard
from modalities import get_modality
from pipeline.config.params import parse
from pipeline.models.encoder import build_encoder

TINY_ENCODER = {"embed_dim": 32, "depth": 1, "num_heads": 2, "mlp_ratio": 2.0}
MODALITIES = {
    "cameras": {"kind": "image", "image_size": 32, "channels": 3, "patch_size": 8},
    "surveillance": {"kind": "video", "frames": 4, "fps": 10.0, "frame_size": 16, "channels": 1,
                     "tubelet_frames": 2, "patch_size": 8},
    "machines": {"kind": "audio"},
}
OPSET = 17


def _modality_and_encoder(name: str):
    params = parse({"modalities": {name: MODALITIES[name]}, "tasks": {"t": {"modality": name}}})
    modality = get_modality(name, params)
    torch.manual_seed(0)
    return modality, build_encoder(modality, params.encoder.model_copy(update=TINY_ENCODER))


def _export(model, modality, out, task: str, head: str, labels: list, head_fields: dict):
    """What the export stage does for one method, on a tiny random-weight model."""
    assets = write_assets(modality, out, out / "no-data", OPSET)
    metadata = model_metadata(modality, task=task, head=head, method="random", labels=labels,
                              head_fields=head_fields, assets=assets)
    return export_standard(model.eval(), modality, out, metadata, opset=OPSET, precisions=("fp32",))


def _model_files(exported) -> list:
    return [exported["onnx-fp32"], exported["openvino-fp32"]]


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    from PIL import Image

    from pipeline.tasks.detection.head import build_detector, postprocess_metadata

    modality, encoder = _modality_and_encoder("cameras")
    model = build_detector(encoder, modality, 3)
    with torch.no_grad():  # objectness around 0.5, so post-processing keeps some boxes
        model.head.mlp[-1].bias[0] = 0.0
    root = tmp_path_factory.mktemp("detector")
    exported = _export(model, modality, root / "adas" / "random", "adas", "detection", ["car", "bike", "sign"],
                       postprocess_metadata(0.05, 0.5, 20))
    pixels = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)  # not 32x32: resized
    Image.fromarray(pixels).save(root / "scene.png")
    return model, exported, root / "scene.png"


@pytest.fixture(scope="module", params=["surveillance", "machines"])
def anomaly(request, tmp_path_factory):
    from pipeline.tasks.anomaly.scorers import KnnAnomalyModel, anomaly_metadata, embedding_bank
    from pipeline.tasks.anomaly.task import temporal_scorer

    modality, encoder = _modality_and_encoder(request.param)
    shape = modality.input_spec()["shape"][1:]
    normal = torch.rand(16, *shape, generator=torch.Generator().manual_seed(1))
    if modality.kind == "audio":  # the default run's scorer of machine sounds: kNN on token differences along time
        model = temporal_scorer(encoder, modality, 3, normal)
    else:
        model = KnnAnomalyModel(encoder, embedding_bank(encoder, normal), k=3)
    root = tmp_path_factory.mktemp(request.param)
    exported = _export(model, modality, root / "faults" / "random", "faults", "anomaly", ["normal", "anomaly"],
                       anomaly_metadata(model, 0.5, 0.1))
    raw = _write_clip(root / "clip.mp4") if modality.kind == "video" else _write_wav(root / "sound.wav")
    return model, modality, exported, raw


def _write_clip(path):
    import av

    rng = np.random.default_rng(2)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt = 24, 32, "yuv420p"
        for k in range(8):
            frame = rng.integers(0, 120, (24, 32, 3), dtype=np.uint8)
            frame[4:12, 2 + 3 * k: 10 + 3 * k] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _write_wav(path, rate: int = 16000):
    import soundfile as sf

    t = np.arange(rate) / rate
    sf.write(str(path), (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    return path


def _torch_outputs(model, x: np.ndarray):
    with torch.no_grad():
        return model(torch.from_numpy(x))


def test_metadata_records_the_kind_and_the_instance(detector, anomaly):
    for kind, exported in (("image", detector[1]), (anomaly[1].kind, anomaly[2])):
        name = "cameras" if kind == "image" else anomaly[1].name
        assert read_metadata(exported["onnx-fp32"])["modality"] == kind
        assert read_ir_metadata(exported["openvino-fp32"])["modality_name"] == name
        manifest = json.loads((exported["onnx-fp32"].parent / "assets" / "manifest.json").read_text())
        assert manifest["modality"] == kind and manifest["modality_name"] == name
    assert sorted(p.relative_to(detector[1]["onnx-fp32"].parent).as_posix()
                  for p in detector[1]["onnx-fp32"].parent.rglob("*.*")) == sorted(
        ["assets/manifest.json", ONNX_FILES["fp32"], IR_FILES["fp32"], IR_FILES["fp32"].replace(".xml", ".bin")])


def test_audio_frontend_records_the_kind(anomaly):
    _, modality, exported, _ = anomaly
    frontend = exported["onnx-fp32"].parent / "assets" / "frontend.onnx"
    assert frontend.is_file() == (modality.kind == "audio")
    if frontend.is_file():
        meta = read_metadata(frontend)
        assert (meta["modality"], meta["modality_name"], meta["role"]) == ("audio", "machines", "frontend")


@pytest.mark.parametrize("which", [0, 1], ids=["onnx", "openvino"])
def test_detector_on_an_image_file(detector, which):
    from devices.postprocess.detection import postprocess

    model, exported, image = detector
    predictor = Predictor(_model_files(exported)[which])
    (result,) = predictor.predict(image)
    assert result["input"] == str(image) and result["detections"]
    for found in result["detections"]:
        assert set(found) == {"label", "index", "score", "box"} and found["label"] in ("car", "bike", "sign")
        assert len(found["box"]) == 4 and 0.05 <= found["score"] <= 1.0
    boxes, scores = (o.numpy() for o in _torch_outputs(model, predictor.preprocess(image)))
    (expected,) = postprocess(boxes, scores, 0.05, 0.5, 20)  # the PyTorch model's outputs, post-processed alike
    assert [d["index"] for d in result["detections"]] == expected["labels"].tolist()
    assert np.allclose([d["score"] for d in result["detections"]], expected["scores"], atol=1e-4)


@pytest.mark.parametrize("which", [0, 1], ids=["onnx", "openvino"])
def test_knn_anomaly_scorer_on_a_raw_file(anomaly, which):
    model, _, exported, raw = anomaly
    predictor = Predictor(_model_files(exported)[which])
    (result,) = predictor.predict(raw)
    assert set(result) == {"input", "score", "threshold", "anomalous"}
    assert result["threshold"] == 0.5 and result["anomalous"] == (result["score"] > 0.5)
    expected = _torch_outputs(model, predictor.preprocess(raw)).numpy().reshape(-1)[0]
    assert result["score"] == pytest.approx(float(expected), rel=1e-4, abs=1e-5)
