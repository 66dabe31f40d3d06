"""COCO-style mean average precision, computed by torchmetrics' MeanAveragePrecision with its faster_coco_eval
backend: the same figures as the pycocotools backend (tests/test_detection.py checks it), in about a sixth of
the time, which counts when every exported variant of a detector is scored.

mAP@[.5:.95] averages over IoU thresholds 0.5, 0.55, ..., 0.95; mAP@0.5 uses 0.5 only. Both are
101-point interpolated, per class and overall (the mean over classes that have ground truth).
"""
from __future__ import annotations

import numpy as np
import torch

from pipeline.tasks.detection.boxes import CLASS_PADDING


def ground_truth(boxes, classes) -> list[dict[str, torch.Tensor]]:
    """Padded (N, M, 4) boxes + (N, M) class ids -> torchmetrics' per-image target dicts."""
    boxes, classes = torch.as_tensor(np.asarray(boxes)).float(), torch.as_tensor(np.asarray(classes)).long()
    keep = classes != CLASS_PADDING
    return [{"boxes": b[k], "labels": c[k]} for b, c, k in zip(boxes, classes, keep)]


BACKEND = "faster_coco_eval"


def _mean_average_precision(iou_thresholds: list[float] | None, class_metrics: bool = True):
    from torchmetrics.detection import MeanAveragePrecision

    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", iou_thresholds=iou_thresholds,
                                class_metrics=class_metrics, backend=BACKEND)


def _update(metric, predictions, targets):
    metric.update([{k: v.detach().cpu() for k, v in p.items()} for p in predictions],
                  [{k: v.detach().cpu() for k, v in t.items()} for t in targets])
    return metric.compute()


def _per_class(result: dict, labels: list[str]) -> dict[int, float]:
    """{class id: AP}; classes without ground truth or predictions are absent (torchmetrics reports -1)."""
    ids = result["classes"].reshape(-1).tolist()
    values = result["map_per_class"].reshape(-1).tolist()
    return {int(i): float(v) for i, v in zip(ids, values) if v >= 0 and 0 <= i < len(labels)}


def detection_map(predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]],
                  labels: list[str], per_class: bool = True) -> dict:
    """predictions: per image {"boxes" (K, 4) xyxy, "scores" (K,), "labels" (K,)}
    (devices.postprocess.detection.postprocess); targets: per image {"boxes", "labels"} (`ground_truth`). Returns
    {"map_50": float, "map_50_95": float, "per_class": {label: {"map_50": float, "map_50_95": float}}}.
    per_class=False leaves "per_class" out and evaluates once (both overall figures come from one run
    over IoU .50:.95), about half the time: what scoring every exported variant needs.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} images")
    if not per_class:
        result = _update(_mean_average_precision(None, class_metrics=False), predictions, targets)
        return {"map_50": float(result["map_50"]), "map_50_95": float(result["map"])}
    results = {key: _update(_mean_average_precision(thresholds), predictions, targets)
               for key, thresholds in (("map_50", [0.5]), ("map_50_95", None))}
    per_class = {key: _per_class(r, labels) for key, r in results.items()}
    present = sorted(set(per_class["map_50"]) | set(per_class["map_50_95"]))
    return {
        "map_50": float(results["map_50"]["map"]),
        "map_50_95": float(results["map_50_95"]["map"]),
        "per_class": {labels[i]: {key: per_class[key].get(i, 0.0) for key in per_class} for i in present},
    }
