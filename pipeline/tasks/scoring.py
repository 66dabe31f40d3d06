"""A task's metric from its model's outputs over a labelled split, computed the same way for the PyTorch
model and for every exported variant.

Each `*_score` returns a callable: outputs (a list of numpy arrays, in the model's output order, over
the whole split) -> metrics. "test_metric" is the task's headline number: accuracy (classification),
mAP@0.5 (detection) or AUROC (anomaly).
"""
from __future__ import annotations

import numpy as np

from export.scoring import Score, accuracy


def classification_score(labels: np.ndarray) -> Score:
    def score(outputs: list[np.ndarray]) -> dict:
        value = accuracy(outputs[0], labels)
        return {"test_accuracy": value, "test_metric": value}

    return score


def detection_score(split, detection, per_class: bool = False) -> Score:
    """mAP of the post-processed detections (devices.postprocess.detection, as an app runs it) against the
    split's boxes; `detection` is the task's params section (thresholds for evaluation). per_class
    adds AP per class (a second pass over the detections)."""
    import torch

    from devices.postprocess.detection import postprocess
    from pipeline.tasks.detection.metrics import detection_map, ground_truth

    targets = ground_truth(split.boxes, split.classes)

    def score(outputs: list[np.ndarray]) -> dict:
        boxes, scores = outputs[:2]
        found = postprocess(boxes, scores, score_threshold=detection.eval_score_threshold,
                            iou_threshold=detection.iou_threshold, max_detections=detection.max_detections)
        found = [{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in image.items()} for image in found]
        result = detection_map(found, targets, split.labels, per_class=per_class)
        return {"test_map_50": result["map_50"], "test_map_50_95": result["map_50_95"], "test_metric": result["map_50"],
                **({"per_class": result["per_class"]} if per_class else {})}

    return score


def anomaly_score(split, anomaly, threshold: float) -> Score:
    """AUROC and pAUC (FPR <= anomaly.max_fpr) of the score output, overall and per anomaly kind, and
    the false-alarm and detection rates at `threshold` (set on validation normal data)."""
    from pipeline.tasks.anomaly.metrics import anomaly_report, rates_at

    def score(outputs: list[np.ndarray]) -> dict:
        scores = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        report = anomaly_report(scores, split.y, split.labels, anomaly.max_fpr)
        rates = rates_at(threshold, scores, split.is_anomaly)
        return {"test_auroc": report["auroc"], "test_pauc": report["pauc"], "per_kind": report["per_kind"],
                "threshold": threshold, "test_false_alarm_rate": rates["false_alarm_rate"],
                "test_detection_rate": rates["detection_rate"], "test_metric": report["auroc"]}

    return score
