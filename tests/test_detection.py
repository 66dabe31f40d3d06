"""Object detection on the image modality: boxes, NMS, mAP, dataset readers, road scenes, detector, export."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from devices.postprocess import detection as detection_post
from modalities.image.detection import DetectionSet, load_npz, read_coco, read_kitti, save_npz
from modalities.splits import CorruptFileError
from pipeline.tasks.detection import boxes as box_ops
from pipeline.tasks.detection.head import (OUTPUT_NAMES, DetectionObjective, build_detector, pack_targets,
                                           postprocess_metadata)
from pipeline.tasks.detection import metrics as detection_metrics
from pipeline.tasks.detection.metrics import detection_map

T = torch.as_tensor
IMAGE_SIZE, PATCH = 64, 8


# ---- boxes ------------------------------------------------------------------------------------------

def test_box_encoding_round_trip_and_assignment():
    boxes = T([[[3.0, 5.0, 30.0, 20.0], [40.0, 41.0, 63.0, 60.0], [0.0, 0.0, 0.0, 0.0]]])
    classes = T([[2, 0, -1]])
    cell_classes, params = box_ops.assign_targets(boxes, classes, IMAGE_SIZE // PATCH, PATCH)
    positive = torch.nonzero(cell_classes[0] >= 0).flatten()
    expected_cells = box_ops.centre_cell(boxes[0, :2], IMAGE_SIZE // PATCH, PATCH)
    assert sorted(positive.tolist()) == sorted(expected_cells.tolist())
    decoded = box_ops.decode_boxes(params[0, positive], box_ops.cell_centres(IMAGE_SIZE // PATCH)[positive], PATCH)
    assert torch.allclose(decoded, boxes[0, :2][torch.argsort(expected_cells)], atol=1e-4)
    assert ((params[0, positive, :2] >= 0) & (params[0, positive, :2] < 1)).all()  # offsets stay inside the cell


def test_shared_centre_cell_goes_to_the_smaller_box():
    boxes = T([[[0.0, 0.0, 40.0, 40.0], [16.0, 16.0, 24.0, 24.0]]])
    cell_classes, _ = box_ops.assign_targets(boxes, T([[0, 1]]), IMAGE_SIZE // PATCH, PATCH)
    assert cell_classes[0].tolist().count(1) == 1 and 0 not in cell_classes[0].tolist()


def _brute_force_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> list[int]:
    """Keep a box unless a better-scored kept box of its class overlaps it by more than iou."""
    kept = []
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
        ious = [detection_post.pairwise_iou(boxes[k:k + 1], boxes[i:i + 1])[0, 0] for k in kept if classes[k] == classes[i]]
        if all(v <= iou for v in ious):
            kept.append(i)
    return kept


def _random_candidates(rng, n=60, classes=3):
    xy = rng.uniform(0, 50, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 20, (n, 2))], axis=1).astype(np.float32)
    return boxes, rng.random(n).astype(np.float32), rng.integers(0, classes, n)


def test_nms_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        boxes, scores, classes = _random_candidates(rng)
        assert detection_post.class_aware_nms(boxes, scores, classes, 0.4).tolist() == \
            _brute_force_nms(boxes, scores, classes, 0.4)


# ---- mAP ---------------------------------------------------------------------------------------------

def test_map_on_a_hand_made_case():
    targets = [{"boxes": T([[0.0, 0, 10, 10], [20, 20, 40, 40]]), "labels": T([0, 1])},
               {"boxes": T([[50.0, 50, 60, 60]]), "labels": T([2])}]
    predictions = [  # a: exact; b: IoU 0.62 (a hit at thresholds .50, .55, .60 only); c: a false positive ranked first
        {"boxes": T([[0.0, 0, 10, 10], [20, 20, 40, 32.4]]), "scores": T([0.9, 0.8]), "labels": T([0, 1])},
        {"boxes": T([[0.0, 0, 5, 5], [50, 50, 60, 60]]), "scores": T([0.9, 0.8]), "labels": T([2, 2])},
    ]
    result = detection_map(predictions, targets, ["a", "b", "c"])
    expected = {"a": (1.0, 1.0), "b": (1.0, 0.3), "c": (0.5, 0.5)}
    assert set(result["per_class"]) == set(expected)
    for label, (map_50, map_50_95) in expected.items():
        assert result["per_class"][label] == pytest.approx({"map_50": map_50, "map_50_95": map_50_95}, abs=1e-6)
    assert result["map_50"] == pytest.approx(2.5 / 3, abs=1e-6)
    assert result["map_50_95"] == pytest.approx(1.8 / 3, abs=1e-6)
    overall = detection_map(predictions, targets, ["a", "b", "c"], per_class=False)  # one pass, same figures
    assert overall == pytest.approx({"map_50": 2.5 / 3, "map_50_95": 1.8 / 3}, abs=1e-6)


def test_map_backend_gives_the_pycocotools_figures(monkeypatch):
    rng = np.random.default_rng(1)
    targets, predictions = [], []
    for _ in range(20):
        gt = rng.uniform(0, 40, (3, 2))
        targets.append({"boxes": T(np.hstack([gt, gt + rng.uniform(5, 20, (3, 2))])), "labels": T(rng.integers(0, 3, 3))})
        found = rng.uniform(0, 40, (6, 2))
        boxes = np.vstack([targets[-1]["boxes"].numpy() + rng.normal(0, 2, (3, 4)), np.hstack([found[:3], found[:3] + 10])])
        labels = np.concatenate([targets[-1]["labels"].numpy(), rng.integers(0, 3, 3)])  # 3 near hits, 3 misses
        predictions.append({"boxes": T(boxes), "scores": T(rng.uniform(0, 1, 6)), "labels": T(labels)})
    fast = detection_map(predictions, targets, ["a", "b", "c"])
    monkeypatch.setattr(detection_metrics, "BACKEND", "pycocotools")
    reference = detection_map(predictions, targets, ["a", "b", "c"])
    assert 0.05 < reference["map_50"] < 0.95  # a case where the ranking matters
    assert fast["per_class"].keys() == reference["per_class"].keys()
    for label, figures in reference["per_class"].items():
        assert fast["per_class"][label] == pytest.approx(figures, abs=1e-6)
    assert {k: fast[k] for k in ("map_50", "map_50_95")} == pytest.approx({k: reference[k] for k in ("map_50", "map_50_95")}, abs=1e-6)


# ---- KITTI and COCO readers ----------------------------------------------------------------------------

def _png(path, width=80, height=40):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)


def _kitti_line(kind, box):
    return f"{kind} 0.00 0 0.0 {box[0]} {box[1]} {box[2]} {box[3]} 1.5 1.6 3.7 1.0 1.5 10.0 0.0\n"


def _kitti(tmp_path):
    root = tmp_path / "kitti"
    _png(root / "image_2" / "000000.png")
    _png(root / "image_2" / "000001.png")
    (root / "label_2").mkdir()
    (root / "label_2" / "000000.txt").write_text(_kitti_line("Car", [8, 4, 40, 20]) + _kitti_line("DontCare", [0, 0, 5, 5]))
    (root / "label_2" / "000001.txt").write_text(_kitti_line("Pedestrian", [60, 10, 70, 38]))
    return root


def test_kitti_reader_scales_boxes_to_the_square_image(tmp_path):
    ds = read_kitti(_kitti(tmp_path), 32, None, "error", [])
    assert ds.labels == ["Car", "Pedestrian"] and ds.images.shape == (2, 3, 32, 32)
    assert np.allclose(ds.boxes[0, 0], [8 * 32 / 80, 4 * 32 / 40, 40 * 32 / 80, 20 * 32 / 40])
    assert ds.classes.tolist() == [[0], [1]]


def test_kitti_bad_inputs_name_the_file_or_are_skipped(tmp_path):
    root = _kitti(tmp_path)
    (root / "label_2" / "000002.txt").write_text(_kitti_line("Car", [1, 1, 9, 9]))  # no 000002.png
    with pytest.raises(CorruptFileError, match="000002.txt.*does not exist"):
        read_kitti(root, 32, None, "error", [])
    skipped = []
    assert len(read_kitti(root, 32, None, "skip", skipped)) == 2 and skipped[0].endswith("000002.txt")
    _png(root / "image_2" / "000002.png")
    (root / "label_2" / "000002.txt").write_text(_kitti_line("Car", [10, 10, 200, 30]))
    with pytest.raises(CorruptFileError, match="000002.txt.*outside the 80x40 image"):
        read_kitti(root, 32, None, "error", [])
    with pytest.raises(ValueError, match="class list is empty"):
        read_kitti(root, 32, [], "error", [])


def _coco(tmp_path, annotations=None, categories=None):
    _png(tmp_path / "images" / "a.png")
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 80, "height": 40}],
        "annotations": annotations if annotations is not None else [
            {"id": 10, "image_id": 1, "bbox": [8, 4, 32, 16], "category_id": 7, "iscrowd": 0},
            {"id": 11, "image_id": 1, "bbox": [0, 0, 80, 40], "category_id": 7, "iscrowd": 1}],
        "categories": categories if categories is not None else [{"id": 3, "name": "sign"}, {"id": 7, "name": "car"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_reader(tmp_path):
    ds = read_coco(_coco(tmp_path), tmp_path / "images", 32, "error", [])
    assert ds.labels == ["sign", "car"] and ds.classes.tolist() == [[1]]  # the crowd region is dropped
    assert np.allclose(ds.boxes[0, 0], [3.2, 3.2, 16.0, 16.0])


def test_coco_bad_inputs_name_the_file_or_are_skipped(tmp_path):
    stray = {"id": 12, "image_id": 99, "bbox": [1, 1, 5, 5], "category_id": 7}
    path = _coco(tmp_path, annotations=[stray])
    with pytest.raises(CorruptFileError, match="instances.json.*annotation 12.*image id 99"):
        read_coco(path, tmp_path / "images", 32, "error", [])
    skipped = []
    read_coco(path, tmp_path / "images", 32, "skip", skipped)
    assert skipped == [f"{path}#annotation=12"]
    outside = _coco(tmp_path, annotations=[{"id": 13, "image_id": 1, "bbox": [70, 0, 30, 10], "category_id": 7}])
    with pytest.raises(CorruptFileError, match="annotation 13 of a.png.*outside"):
        read_coco(outside, tmp_path / "images", 32, "error", [])
    (tmp_path / "images" / "a.png").unlink()
    with pytest.raises(CorruptFileError, match="a.png, which does not exist"):
        read_coco(_coco(tmp_path), tmp_path / "other", 32, "error", [])
    with pytest.raises(ValueError, match="class list is empty"):
        read_coco(_coco(tmp_path, categories=[]), tmp_path / "images", 32, "error", [])


# ---- road scenes --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scenes():
    from modalities.image.scenes import generate_road_scenes

    return generate_road_scenes(24, IMAGE_SIZE, seed=3)


def test_road_scenes_are_valid_and_deterministic(scenes, tmp_path):
    from modalities.image.scenes import generate_road_scenes

    valid = scenes.classes >= 0
    assert scenes.images.dtype == np.uint8 and scenes.images.shape == (24, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert valid[:, 0].all()  # every scene has an object
    b = scenes.boxes[valid]
    assert (b[:, :2] >= 0).all() and (b[:, 2:] <= IMAGE_SIZE).all() and (b[:, 2:] > b[:, :2]).all()
    assert len(np.unique(scenes.classes[valid])) >= 3
    again = generate_road_scenes(24, IMAGE_SIZE, seed=3)
    assert np.array_equal(again.images, scenes.images) and np.array_equal(again.boxes, scenes.boxes)
    assert not np.array_equal(generate_road_scenes(4, IMAGE_SIZE, seed=4).images, scenes.images[:4])
    save_npz(scenes, tmp_path / "s.npz")
    loaded = load_npz(tmp_path / "s.npz")
    assert loaded.labels == scenes.labels and np.array_equal(loaded.classes, scenes.classes)


# ---- detector -----------------------------------------------------------------------------------------

def _detector(num_classes: int, depth: int = 2):
    from modalities import get_modality
    from pipeline.models.encoder import build_encoder
    from pipeline.config.params import parse

    params = parse({"modalities": {"image": {"image_size": IMAGE_SIZE, "channels": 3, "patch_size": PATCH}},
                    "tasks": {"t": {"modality": "image"}}})
    modality = get_modality("image", params)
    encoder = build_encoder(modality, params.encoder.model_copy(update={"embed_dim": 64, "depth": depth}))
    return build_detector(encoder, modality, num_classes), modality


def _batch(scenes: DetectionSet, modality, n: int):
    return (modality.to_input(torch.from_numpy(scenes.images[:n])),
            pack_targets(torch.from_numpy(scenes.boxes[:n]), torch.from_numpy(scenes.classes[:n])))


def test_detector_forward_backward(scenes):
    torch.manual_seed(0)
    detector, modality = _detector(len(scenes.labels))
    x, targets = _batch(scenes, modality, 8)
    boxes, scores = detector(x)
    cells = (IMAGE_SIZE // PATCH) ** 2
    assert boxes.shape == (8, cells, 4) and scores.shape == (8, cells, len(scenes.labels))
    assert ((scores >= 0) & (scores <= 1)).all()
    parts = DetectionObjective(detector).losses(x, targets, torch.Generator().manual_seed(0))
    assert set(parts) == {"objectness", "classification", "box_l1", "box_giou", "total"}
    parts["total"].backward()
    assert all(p.grad is not None for p in detector.parameters() if p.requires_grad)


def test_a_few_training_steps_reduce_the_loss(scenes):
    torch.manual_seed(0)
    detector, modality = _detector(len(scenes.labels), depth=1)
    objective = DetectionObjective(detector, hflip=False)
    x, targets = _batch(scenes, modality, 16)
    optimizer = torch.optim.AdamW(detector.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        loss = objective(x, targets, torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.fixture(scope="module")
def exported(scenes, tmp_path_factory):
    from export.onnx import export_onnx

    torch.manual_seed(0)
    detector, modality = _detector(len(scenes.labels))
    with torch.no_grad():  # a trained-looking objectness so post-processing keeps some boxes
        detector.head.mlp[-1].bias[0] = 0.0
    detector.eval()
    x = modality.to_input(torch.from_numpy(scenes.images[:6]))
    path = tmp_path_factory.mktemp("det") / "model.onnx"
    spec = modality.input_spec()
    metadata = {"labels": scenes.labels, "modality": "image", "input_name": spec["name"], "input_shape": spec["shape"],
                "input_dtype": spec["dtype"], "preprocessing": modality.preprocessing(),
                **postprocess_metadata(0.05, 0.5, 100)}
    export_onnx(detector, x[:2], path, metadata, spec["name"], OUTPUT_NAMES, opset=17)
    with torch.no_grad():
        reference = detector(x)
    return path, x.numpy(), reference


def _assert_same_detections(got_results, expected_results):
    assert len(got_results) == len(expected_results)
    for got, want in zip(got_results, expected_results):
        assert got["labels"].tolist() == want["labels"].tolist()
        assert np.allclose(got["boxes"], want["boxes"], atol=1e-3)
        assert np.allclose(got["scores"], want["scores"], atol=1e-4)


def test_exported_detector_gives_pytorchs_boxes_in_onnxruntime_and_openvino(exported, tmp_path):
    import onnxruntime as ort

    from devices.runtimes import open_session
    from export.metadata import read_metadata
    from export.openvino import export_openvino

    path, x, (boxes, scores) = exported
    metadata = read_metadata(path)
    expected = detection_post.postprocess(boxes.numpy(), scores.numpy(), **metadata["postprocess"])
    assert sum(len(r["boxes"]) for r in expected) > len(expected)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ort_boxes, ort_scores = session.run(list(OUTPUT_NAMES), {"image": x})
    ov_boxes, ov_scores = open_session(export_openvino(path, tmp_path, ["fp32"])["fp32"]).run_all(x)  # f32 on any CPU
    for got_boxes, got_scores in ((ort_boxes, ort_scores), (ov_boxes, ov_scores)):
        assert np.allclose(got_boxes, boxes.numpy(), atol=1e-3) and np.allclose(got_scores, scores.numpy(), atol=1e-4)
        _assert_same_detections(detection_post.postprocess(got_boxes, got_scores, **metadata["postprocess"]), expected)


def test_app_predictor_returns_pytorchs_detections(exported):
    from devices.predict import Predictor, format_results

    path, x, (boxes, scores) = exported
    expected = detection_post.postprocess(boxes.numpy(), scores.numpy(), 0.05, 0.5, 100)  # the metadata's thresholds
    results = Predictor(path).predict(x)
    assert len(results) == len(x) and sum(len(r["detections"]) for r in results) > 0
    for got, want in zip(results, expected):
        assert [d["index"] for d in got["detections"]] == want["labels"].tolist()
        assert np.allclose([d["box"] for d in got["detections"]], want["boxes"].reshape(-1, 4), atol=1e-3)
        assert np.allclose([d["score"] for d in got["detections"]], want["scores"], atol=1e-4)
    assert "detections" in format_results(results[:1])
