"""Detections from an exported detector's outputs, in numpy only (no torch), as an app runs it.

The model (pipeline/detection.py) returns boxes (N, cells, 4) xyxy in model-input pixels and
scores (N, cells, classes). Here: each cell keeps its best class, scores below a threshold are
dropped, then greedy class-aware NMS, then the best `max_detections`. Same algorithm as
pipeline.detection.postprocess, so both give the same boxes for the same outputs.

    from devices.detection_post import postprocess
    boxes, scores = session.run(None, {"image": x})
    detections = postprocess(boxes, scores, **metadata["postprocess"])  # or explicit thresholds
"""
from __future__ import annotations

import numpy as np


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box (4,) with each of others (K, 4)."""
    iw = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    other_areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + other_areas - inter, np.finfo(np.float32).tiny)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: indices of kept boxes, best score first; a box is dropped when its IoU with a kept
    one is above iou_threshold."""
    order = np.argsort(-scores, kind="stable")
    kept = []
    while order.size:
        best, order = order[0], order[1:]
        kept.append(best)
        order = order[box_iou(boxes[best], boxes[order]) <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)


def class_aware_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS within each class only (boxes of different classes never suppress each other), best first."""
    kept = [np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], iou_threshold)]
            for c in np.unique(classes)]
    kept = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return kept[np.argsort(-scores[kept], kind="stable")]


def postprocess(boxes: np.ndarray, scores: np.ndarray, score_threshold: float = 0.05, iou_threshold: float = 0.5,
                max_detections: int = 100) -> list[dict[str, np.ndarray]]:
    """(N, cells, 4) boxes + (N, cells, classes) scores -> per image {"boxes" (K, 4), "scores" (K,), "labels" (K,)}.

    The model metadata's "postprocess" entry holds exactly these keyword arguments.
    """
    boxes, scores = np.asarray(boxes, dtype=np.float32), np.asarray(scores, dtype=np.float32)
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.shape[:2] != boxes.shape[:2]:
        raise ValueError(f"expected boxes (N, cells, 4) and scores (N, cells, classes), got {boxes.shape} and {scores.shape}")
    results = []
    for image_boxes, image_scores in zip(boxes, scores):
        labels = image_scores.argmax(axis=-1)
        best = np.take_along_axis(image_scores, labels[:, None], axis=-1)[:, 0]
        keep = best >= score_threshold
        image_boxes, best, labels = image_boxes[keep], best[keep], labels[keep]
        kept = class_aware_nms(image_boxes, best, labels, iou_threshold)[:max_detections]
        results.append({"boxes": image_boxes[kept], "scores": best[kept], "labels": labels[kept]})
    return results
