"""Task scorers (each head's Task.score): the numbers export and quantize report for every variant."""
from types import SimpleNamespace

import numpy as np
import pytest

from export.scoring import compare_all
from modalities.splits import AnomalySplit
from pipeline.tasks.registry import get_task


def classification_score(labels):
    return get_task("classification").score(None, SimpleNamespace(y=labels), {})


def detection_score(split, detection, per_class: bool = False):
    return get_task("detection").score(SimpleNamespace(detection=detection), split, {}, detail=per_class)


def anomaly_score(split, anomaly, threshold: float):
    return get_task("anomaly").score(SimpleNamespace(anomaly=anomaly), split, {"threshold": threshold})


DETECTION = SimpleNamespace(eval_score_threshold=0.001, iou_threshold=0.5, max_detections=100)
ANOMALY = SimpleNamespace(max_fpr=0.1)


def _detection_split():
    boxes = np.array([[[2, 2, 10, 10], [0, 0, 0, 0]], [[20, 20, 40, 30], [5, 30, 15, 50]]], np.float32)
    classes = np.array([[0, -1], [1, 0]], np.int64)
    return SimpleNamespace(boxes=boxes, classes=classes, labels=["car", "sign"])


def _detector_outputs(split, wrong_class: bool = False):
    """Per image 3 cells: the true boxes (score 0.9 for the right class) and one empty cell."""
    boxes = np.zeros((2, 3, 4), np.float32)
    scores = np.zeros((2, 3, 2), np.float32)
    for i in range(2):
        for j, c in enumerate(split.classes[i]):
            if c >= 0:
                boxes[i, j] = split.boxes[i, j]
                scores[i, j, 1 - c if wrong_class else c] = 0.9
    return [boxes, scores]


def test_detection_score_is_one_for_exact_boxes_and_zero_for_wrong_classes():
    split = _detection_split()
    perfect = detection_score(split, DETECTION)(_detector_outputs(split))
    assert perfect["test_map_50"] == pytest.approx(1.0) and perfect["test_metric"] == perfect["test_map_50"]
    assert perfect["test_map_50_95"] == pytest.approx(1.0)
    wrong = detection_score(split, DETECTION)(_detector_outputs(split, wrong_class=True))
    assert wrong["test_map_50"] == pytest.approx(0.0)


def test_anomaly_score_auroc_and_rates_at_the_threshold():
    kinds = np.array([0, 0, 0, 0, 1, 2, 1, 2])
    split = AnomalySplit(np.zeros((8, 1)), kinds, ["normal", "click", "whine"])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.5, 0.9, 0.8, 0.7])  # one normal sample above one anomaly
    result = anomaly_score(split, ANOMALY, threshold=0.55)([scores])
    assert result["test_auroc"] == pytest.approx(15 / 16)
    assert result["test_metric"] == result["test_auroc"]
    assert result["test_false_alarm_rate"] == pytest.approx(0.25)  # 0.6 > 0.55
    assert result["test_detection_rate"] == pytest.approx(0.75)  # 0.5 is missed
    assert result["per_kind"]["whine"]["auroc"] == pytest.approx(1.0)


def test_classification_score_and_multi_output_comparison():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]], np.float32)
    assert classification_score(np.array([0, 1, 1]))([logits])["test_accuracy"] == pytest.approx(2 / 3)
    stats = compare_all([logits, np.ones((3, 4))], [logits + 0.01, np.ones((3, 4))])
    assert stats["max_abs_diff"] == pytest.approx(0.01, abs=1e-6) and "top1_agreement" not in stats
    assert compare_all([logits], [logits])["top1_agreement"] == 1.0
    with pytest.raises(ValueError, match="outputs"):
        compare_all([logits], [logits, logits])
