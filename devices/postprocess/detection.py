"""Detections from an exported detector's outputs, in numpy only (no torch), as an app runs it.

The model (pipeline/tasks/detection/head.py) returns boxes (N, cells, 4) xyxy in model-input pixels
and scores (N, cells, classes). Here: each cell keeps its best class, scores below a threshold are
dropped, then greedy class-aware NMS, then the best `max_detections`. The one NMS of the project:
evaluation (pipeline/tasks/detection/task.py) runs it too, so apps and metrics see the same boxes.

    from devices.postprocess.detection import postprocess
    boxes, scores = session.run(None, {"image": x})
    detections = postprocess(boxes, scores, **metadata["postprocess"])  # or explicit thresholds
"""
from __future__ import annotations

import numpy as np


# The metadata's "postprocess" entry: postprocess's keyword arguments, each with its type and allowed range
POSTPROCESS_ARGS = {"score_threshold": (float, 0.0, 1.0), "iou_threshold": (float, 0.0, 1.0),
                    "max_detections": (int, 1, 100_000)}


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each xyxy box in a (K, 4) with each in b (M, 4): (K, M)."""
    a, b = a[:, None, :], b[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    areas = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(areas - inter, np.finfo(np.float32).tiny)


def class_aware_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS within each class (boxes of different classes never suppress each other): indices of the
    kept boxes, best score first (ties in index order). A box is dropped when its IoU with a kept box of its
    class is above iou_threshold."""
    order = np.argsort(-scores, kind="stable")
    ranked_classes = classes[order]
    suppresses = (pairwise_iou(boxes[order], boxes[order]) > iou_threshold) & (ranked_classes[:, None] == ranked_classes)
    dropped = np.zeros(len(order), dtype=bool)
    kept = []
    for rank in range(len(order)):
        if not dropped[rank]:
            kept.append(rank)
            dropped |= suppresses[rank]
    return order[np.asarray(kept, dtype=np.int64)]


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
