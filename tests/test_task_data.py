"""Modality instances of a kind, task heads in params, and the detection / anomaly data they prepare."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from modalities import get_modality
from modalities.splits import SPLITS, AnomalySplit, CorruptFileError, DetectionSplit, Split, check_anomaly_splits
from pipeline.config import params as params_mod
from pipeline.config.params import ParamsError, load

SCENES = {"kind": "image", "source": "road_scenes", "image_size": 64, "channels": 3, "patch_size": 8,
          "scenes": {"count": 40}}
VIDEO = {"frames": 4, "fps": 10.0, "frame_size": 16, "tubelet_frames": 2, "patch_size": 8}
TINY_ANOMALY = {"train": 6, "val": 3, "test_normal": 3, "test_anomalous": 5}


def write_params(tmp_path, modalities: dict, tasks: dict | None = None):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"modalities": modalities, "tasks": tasks or {}}))
    return path


def params_of(tmp_path, modalities: dict, tasks: dict | None = None):
    return load(write_params(tmp_path, modalities, tasks))


def round_trip(modality, splits: dict[str, Split], data_dir) -> dict[str, Split]:
    """save_split every split into data_dir (with the manifest's labels, as prepare writes them), load back."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        with open(data_dir / f"{name}.npz", "wb") as f:
            modality.save_split(split, f)
    (data_dir / "manifest.json").write_text(json.dumps({"labels": splits["train"].labels}))
    return {name: modality.load_split(data_dir, name) for name in splits}


# ---- params ---------------------------------------------------------------------------------------

def test_kind_defaults_to_a_standard_name_and_is_required_otherwise(tmp_path):
    params = params_of(tmp_path, {"image": {}, "scenes": SCENES})
    assert params.modality("image").kind == "image" and params.modality("scenes").kind == "image"
    assert params.modality("scenes").data_kind == "detection" and params.modality("image").data_kind == "classification"
    modality = get_modality("scenes", params)
    assert modality.name == "scenes" and modality.kind == "image" and type(modality).name == "image"
    assert get_modality("image", params).name == "image"
    with pytest.raises(ParamsError, match=r"modalities\.surveillance\.kind: required, one of 'image', 'video', "
                                          r"'audio', 'text'"):
        params_of(tmp_path, {"surveillance": {"source": "anomaly"}})
    with pytest.raises(KeyError, match=r"modalities\.nope: not configured"):
        get_modality("nope", params)


def test_a_kind_registers_its_implementation_and_its_params_schema(tmp_path):
    from modalities import KINDS, params_schemas

    schemas = params_schemas()
    assert list(schemas) == list(KINDS) and all(schema.model_fields["kind"].default == kind
                                                for kind, schema in schemas.items())
    modality = get_modality("reviews", params_of(tmp_path, {"reviews": {"kind": "text"}}))
    assert modality.name == "reviews" and modality.kind == "text"


def test_task_heads_check_modality_kind_metric_and_sources(tmp_path):
    modalities = {"video": VIDEO, "scenes": SCENES}
    with pytest.raises(ParamsError, match=r"tasks\.boxes\.modality: head 'detection' needs a modality of kind image; "
                                          r"'video' is of kind 'video'"):
        params_of(tmp_path, modalities, {"boxes": {"modality": "video", "head": "detection"}})
    with pytest.raises(ParamsError, match=r"tasks\.odd\.modality: head 'anomaly' needs a modality of kind video or "
                                          r"audio; 'scenes' is of kind 'image'"):
        params_of(tmp_path, modalities, {"odd": {"modality": "scenes", "head": "anomaly"}})
    with pytest.raises(ParamsError, match=r"tasks\.boxes\.metric: 'accuracy' does not fit head 'detection'"):
        params_of(tmp_path, modalities, {"boxes": {"modality": "scenes", "head": "detection", "metric": "accuracy"}})
    with pytest.raises(ParamsError, match=r"tasks\.odd\.modality: head 'anomaly' needs anomaly data, but "
                                          r"modalities\.video\.source is 'embedded'"):
        params_of(tmp_path, modalities, {"odd": {"modality": "video", "head": "anomaly"}})
    with pytest.raises(ParamsError, match=r"tasks\.boxes\.anomaly: settings for head 'anomaly'"):
        params_of(tmp_path, modalities, {"boxes": {"modality": "scenes", "head": "detection", "anomaly": {}}})
    with pytest.raises(ParamsError, match=r"tasks\.t\.anomaly\.target_false_alarm_rate: .*less than 1"):
        params_of(tmp_path, {"surveillance": {"kind": "video", "source": "anomaly", **VIDEO}},
                  {"t": {"modality": "surveillance", "head": "anomaly", "anomaly": {"target_false_alarm_rate": 1}}})
    params = params_of(tmp_path, {**modalities, "surveillance": {"kind": "video", "source": "anomaly", **VIDEO}},
                       {"boxes": {"modality": "scenes", "head": "detection", "detection": {"iou_threshold": 0.6}},
                        "odd": {"modality": "surveillance", "head": "anomaly"}})
    boxes, odd = params.tasks["boxes"], params.tasks["odd"]
    assert boxes.metric == "map" and boxes.detection.iou_threshold == 0.6 and boxes.detection.max_detections == 100
    assert boxes.detection.eval_score_threshold == 0.001 and boxes.detection.score_threshold == 0.05
    assert odd.metric == "auroc" and odd.anomaly.knn_k == 5 and odd.anomaly.max_fpr == 0.1
    assert odd.anomaly.scorer == "knn" and odd.anomaly.reconstruction_masks == 4


def test_source_specific_keys(tmp_path):
    with pytest.raises(ParamsError, match=r"modalities\.photos: source 'coco' needs 'annotations'"):
        params_of(tmp_path, {"photos": {"kind": "image", "source": "coco", "path": "images"}})
    with pytest.raises(ParamsError, match=r"'annotations' is only for source 'coco'"):
        params_of(tmp_path, {"photos": {"kind": "image", "source": "kitti", "path": "k", "annotations": "a.json"}})
    with pytest.raises(ParamsError, match=r"'labels' .* only for source 'kitti'"):
        params_of(tmp_path, {"image": {"labels": ["Car"]}})
    with pytest.raises(ParamsError, match=r"modalities\.machines: machine 'loom' is not an embedded machine sound"):
        params_of(tmp_path, {"machines": {"kind": "audio", "source": "machine_sounds", "machine": "loom"}})
    with pytest.raises(ParamsError, match=r"source 'mimii' needs 'machine_type'"):
        params_of(tmp_path, {"machines": {"kind": "audio", "source": "mimii", "path": "m"}})
    with pytest.raises(ParamsError, match=r"source 'dcase' needs 'machine'"):
        params_of(tmp_path, {"machines": {"kind": "audio", "source": "dcase", "path": "d"}})
    with pytest.raises(ParamsError, match=r"modalities\.machines\.anomaly\.val: .*greater than or equal to 1"):
        params_of(tmp_path, {"machines": {"kind": "audio", "source": "machine_sounds", "anomaly": {"val": 0}}})
    defaults = params_of(tmp_path, {"machines": {"kind": "audio", "source": "machine_sounds"},
                                    "surveillance": {"kind": "video", "source": "anomaly"}})
    assert defaults.modality("machines").machine == "mining_machinery"
    assert defaults.modality("machines").anomaly.model_dump() == {"train": 600, "val": 150, "test_normal": 150,
                                                                  "test_anomalous": 150}
    assert defaults.modality("surveillance").anomaly.train == 800
    assert defaults.modality("surveillance").path is None  # embedded sources need no path


# ---- detection data -------------------------------------------------------------------------------

def test_road_scenes_prepare_into_detection_splits_that_round_trip(tmp_path):
    modality = get_modality("scenes", params_of(tmp_path, {"scenes": SCENES}))
    prepared = modality.load_raw()
    splits = prepared.splits
    assert set(splits) == set(SPLITS) and sum(len(s) for s in splits.values()) == 40
    assert 3 <= len(splits["test"]) <= 10 and len(splits["val"]) >= 2
    for split in splits.values():
        assert isinstance(split, DetectionSplit) and split.x.shape[1:] == (3, 64, 64) and split.x.dtype == np.uint8
        real = split.classes >= 0
        assert real.any(axis=1).all() and split.objects == int(real.sum())
        b = split.boxes[real]
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= 64).all() and (b[:, 3] <= 64).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        assert (split.classes[~real] == -1).all() and split.classes.max() < len(split.labels)
        area = (split.boxes[..., 2] - split.boxes[..., 0]) * (split.boxes[..., 3] - split.boxes[..., 1])
        largest = np.where(real, area, -1).argmax(axis=1)
        assert (split.y == split.classes[np.arange(len(split)), largest]).all()
    loaded = round_trip(modality, splits, tmp_path / "data" / "scenes")
    for name, split in splits.items():
        again = loaded[name]
        assert isinstance(again, DetectionSplit) and again.labels == split.labels
        assert np.array_equal(again.x, split.x) and np.array_equal(again.y, split.y)
        assert np.array_equal(again.boxes, split.boxes) and np.array_equal(again.classes, split.classes)
    same = get_modality("scenes", params_of(tmp_path, {"scenes": SCENES})).load_raw().splits
    assert np.array_equal(same["test"].boxes, splits["test"].boxes)  # seeded


def test_plain_image_splits_stay_plain(tmp_path, tiny_params):
    image = get_modality("image", tiny_params)
    split = Split(np.zeros((4, 1, 28, 28), np.uint8), np.array([0, 1, 0, 1]), ["a", "b"])
    loaded = round_trip(image, {"train": split}, tmp_path / "image")["train"]
    assert type(loaded) is Split and np.array_equal(loaded.y, split.y)


def _kitti(root, count: int = 6):
    (root / "image_2").mkdir(parents=True)
    (root / "label_2").mkdir()
    for i in range(count):
        Image.new("RGB", (40, 20), (i * 30, 90, 20)).save(root / "image_2" / f"{i:06d}.png")
        lines = [f"Car 0 0 0 {2 + i} 2 {20 + i} 12 0 0 0 0 0 0 0", "DontCare -1 -1 -10 0 0 5 5 -1 -1 -1 -1 -1 -1 -1"]
        if i % 2:
            lines.append("Pedestrian 0 0 0 30 4 38 18 0 0 0 0 0 0 0")
        (root / "label_2" / f"{i:06d}.txt").write_text("\n".join(lines) + "\n")


def test_kitti_source_scales_boxes_to_the_model_input_and_carves_three_splits(tmp_path):
    _kitti(tmp_path / "kitti")
    section = {"kind": "image", "source": "kitti", "path": str(tmp_path / "kitti"), "image_size": 16,
               "channels": 1, "patch_size": 4}
    splits = get_modality("cars", params_of(tmp_path, {"cars": section})).load_raw().splits
    assert sum(len(s) for s in splits.values()) == 6 and all(len(s) for s in splits.values())
    assert splits["train"].labels == ["Car", "Pedestrian"] and splits["train"].x.shape[1:] == (1, 16, 16)
    boxes = np.concatenate([s.boxes[s.classes >= 0] for s in splits.values()])
    assert boxes.max() <= 16 and boxes.min() >= 0
    car = np.concatenate([s.boxes[s.classes == 0] for s in splits.values()])
    assert np.allclose(np.sort(car[:, 0]), [(2 + i) * 16 / 40 for i in range(6)])  # x scaled 40 -> 16 px
    assert np.allclose(car[:, 1], 2 * 16 / 20) and np.allclose(car[:, 3], 12 * 16 / 20)

    only_pedestrians = {**section, "labels": ["Pedestrian"]}
    prepared = get_modality("cars", params_of(tmp_path, {"cars": only_pedestrians})).load_raw()
    assert sum(len(s) for s in prepared.splits.values()) == 3 and "3 images without objects" in prepared.source


def test_bad_detection_annotations_name_the_file(tmp_path):
    _kitti(tmp_path / "kitti")
    (tmp_path / "kitti" / "label_2" / "000002.txt").write_text("Car 0 0 0 2 2 90 12 0 0 0 0 0 0 0\n")
    (tmp_path / "kitti" / "image_2" / "000004.png").unlink()
    section = {"kind": "image", "source": "kitti", "path": str(tmp_path / "kitti"), "image_size": 16,
               "channels": 3, "patch_size": 4}
    with pytest.raises(CorruptFileError, match=r"000002\.txt.*outside the 40x20 image"):
        get_modality("cars", params_of(tmp_path, {"cars": section})).load_raw()
    prepared = get_modality("cars", params_of(tmp_path, {"cars": {**section, "on_corrupt": "skip"}})).load_raw()
    assert sorted(prepared.skipped) == sorted(str(tmp_path / "kitti" / "label_2" / f"00000{i}.txt") for i in (2, 4))

    images = tmp_path / "coco"
    images.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32)).save(images / f"{i}.jpg")
    coco = {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(5)],
            "annotations": [{"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [2, 2, 10, 10]} for i in range(5)],
            "categories": [{"id": 1, "name": "thing"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    section = {"kind": "image", "source": "coco", "path": str(images), "annotations": str(tmp_path / "coco.json"),
               "image_size": 16, "channels": 3, "patch_size": 4}
    with pytest.raises(CorruptFileError, match=r"coco\.json: image id 4 points at .*4\.jpg, which does not exist"):
        get_modality("photos", params_of(tmp_path, {"photos": section})).load_raw()
    prepared = get_modality("photos", params_of(tmp_path, {"photos": {**section, "on_corrupt": "skip"}})).load_raw()
    assert len(prepared.skipped) == 1 and sum(len(s) for s in prepared.splits.values()) == 4
    assert np.allclose(prepared.splits["test"].boxes[0, 0], [1, 1, 6, 6])  # 32 -> 16 px


# ---- anomaly data ---------------------------------------------------------------------------------

def _check_anomaly(splits, kinds: int):
    for name in ("train", "val"):
        assert isinstance(splits[name], AnomalySplit) and splits[name].anomalous == 0
    assert len(splits["train"]) == 6 and len(splits["val"]) == 3 and len(splits["test"]) == 8
    assert splits["test"].anomalous == 5 and splits["test"].labels[0] == "normal"
    assert len(splits["test"].labels) == kinds


def test_video_anomaly_instance_prepares_normal_only_training_data(tmp_path):
    section = {"kind": "video", "source": "anomaly", **VIDEO, "anomaly": TINY_ANOMALY}
    modality = get_modality("surveillance", params_of(tmp_path, {"surveillance": section}))
    splits = modality.load_raw().splits
    _check_anomaly(splits, kinds=6)
    assert splits["train"].x.shape[1:] == (1, 4, 16, 16) and all(splits["test"].source)
    loaded = round_trip(modality, splits, tmp_path / "surveillance")
    for name, split in splits.items():
        assert isinstance(loaded[name], AnomalySplit) and loaded[name].labels == split.labels
        assert np.array_equal(loaded[name].x, split.x) and (loaded[name].source == split.source).all()


def test_machine_sounds_instance_prepares_normal_only_training_data(tmp_path):
    section = {"kind": "audio", "source": "machine_sounds", "anomaly": TINY_ANOMALY}
    modality = get_modality("machines", params_of(tmp_path, {"machines": section}))
    splits = modality.load_raw().splits
    _check_anomaly(splits, kinds=4)
    assert splits["train"].x.shape[1:] == (1, 64, 100) and set(splits["test"].source) == {"mining_machinery"}
    loaded = round_trip(modality, splits, tmp_path / "machines")
    assert isinstance(loaded["test"], AnomalySplit) and np.array_equal(loaded["test"].y, splits["test"].y)
    assert (loaded["test"].source == splits["test"].source).all() and modality.noise is not None


def test_anomaly_split_checks():
    normal = AnomalySplit(np.zeros((2, 1)), np.array([0, 0]), ["normal", "odd"])
    mixed = AnomalySplit(np.zeros((2, 1)), np.array([0, 1]), ["normal", "odd"])
    check_anomaly_splits({"train": normal, "val": normal, "test": mixed}, "here")
    with pytest.raises(ValueError, match=r"here: split 'val' must hold normal samples only, but 1 of its 2"):
        check_anomaly_splits({"train": normal, "val": mixed, "test": mixed}, "here")
    with pytest.raises(ValueError, match=r"here: split 'test' must hold both normal and anomalous samples"):
        check_anomaly_splits({"train": normal, "val": normal, "test": normal}, "here")


# ---- the prepare stage ----------------------------------------------------------------------------

def test_prepare_stage_records_objects_and_kind(tmp_path, monkeypatch):
    from pipeline.stages import prepare

    path = write_params(tmp_path, {"scenes": {**SCENES, "scenes": {"count": 20}}})
    monkeypatch.setattr(params_mod, "PARAMS_FILE", path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["prepare", "--modality", "scenes"])
    prepare.main()
    manifest = json.loads((tmp_path / "data" / "scenes" / "manifest.json").read_text())
    assert manifest["modality"] == "scenes" and manifest["kind"] == "image"
    assert all(s["objects"] >= s["samples"] for s in manifest["splits"].values())
    assert sum(s["samples"] for s in manifest["splits"].values()) == 20
