import pytest
import yaml

from pipeline.config.params import ParamsError, load, parse
from tests.conftest import ROOT

BASE = {"modalities": {"image": {}}, "tasks": {"digits": {"modality": "image"}}}


def with_changes(**sections):
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    raw.update(sections)
    return raw


def test_shipped_params_validate():
    assert load(ROOT / "params.yaml").modality("image").mask_ratio == 0.75
    assert load(ROOT / "tests" / "params.tiny.yaml").pretrain.epochs == 1


def test_unknown_key_is_named():
    with pytest.raises(ParamsError, match=r"encoder\.depht: unknown key"):
        parse(with_changes(encoder={"depht": 3}))


def test_wrong_type_is_named():
    with pytest.raises(ParamsError, match=r"pretrain\.epochs: .*integer"):
        parse(with_changes(pretrain={"epochs": "many"}))


def test_out_of_range_is_named():
    with pytest.raises(ParamsError, match=r"modalities\.image\.mask_ratio: .*less than 1"):
        parse(with_changes(modalities={"image": {"mask_ratio": 1.2}}))


def test_bad_choice_lists_allowed_values():
    with pytest.raises(ParamsError, match=r"modalities\.image\.source: .*'embedded', 'folder', 'cifar10', 'road_scenes', 'kitti' or 'coco'"):
        parse(with_changes(modalities={"image": {"source": "imagenet"}}))


def test_cross_field_checks():
    with pytest.raises(ParamsError, match="multiple of patch_size"):
        parse(with_changes(modalities={"image": {"image_size": 28, "patch_size": 5}}))
    with pytest.raises(ParamsError, match="needs 'path'"):
        parse(with_changes(modalities={"image": {"source": "folder"}}))
    with pytest.raises(ParamsError, match=r"tasks\.speech\.modality: 'audio' is not an enabled modality"):
        parse(with_changes(tasks={"speech": {"modality": "audio"}}))


def test_modalities_are_named_instances_of_a_kind():
    params = load(ROOT / "params.yaml")
    assert isinstance(params.modalities, dict) and {n: s.kind for n, s in params.modalities.items()} == {
        "image": "image", "video": "video", "audio": "audio", "text": "text",
        "scenes": "image", "surveillance": "video", "machines": "audio"}
    with pytest.raises(KeyError, match=r"modalities\.nope: not configured"):
        params.modality("nope")
    with pytest.raises(ParamsError, match=r"modalities\.scenes\.kind: must be one of 'image', 'video'"):
        parse(with_changes(modalities={"scenes": {"kind": "lidar"}}))
    with pytest.raises(ParamsError, match=r"modalities\.scenes\.patch_sise: unknown key"):
        parse(with_changes(modalities={"image": {}, "scenes": {"kind": "image", "patch_sise": 4}}))


def test_tasks_default_their_metric_and_sections():
    task = parse(BASE).tasks["digits"]
    assert task.head == "classification" and task.metric == "accuracy"
    assert task.detection.score_threshold == 0.05 and task.anomaly.scorer == "knn"
    with pytest.raises(ParamsError, match=r"tasks\.digits\.head: unknown head 'segmentation' \(known: classification, detection, anomaly\)"):
        parse(with_changes(tasks={"digits": {"modality": "image", "head": "segmentation"}}))


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load(tmp_path / "nope.yaml")
