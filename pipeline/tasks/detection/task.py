"""Detection: a dense head on the encoder's patch grid, trained end to end; scored by COCO mAP@0.5 of
the post-processed detections (devices.postprocess.detection, as an app runs it)."""
from __future__ import annotations

import numpy as np
import torch

from devices.postprocess.detection import postprocess
from pipeline.report.tables import finetuned, num, table
from pipeline.evaluation.baselines import box_prior, detector_outputs
from pipeline.tasks.base import Fitted, FitJob, Task, train_end_to_end
from pipeline.tasks.detection.head import DetectionObjective, build_detector, pack_targets, postprocess_metadata
from pipeline.tasks.detection.metrics import detection_map, ground_truth


class DetectionTask(Task):
    head = "detection"

    def build(self, encoder, modality, params, config):
        return build_detector(encoder, modality, len(config["labels"]))

    def fit(self, encoder, job: FitJob) -> Fitted:
        train = job.splits["train"]
        model = build_detector(encoder, job.modality, len(train.labels))
        cost = train_end_to_end(DetectionObjective(model), pack_targets(train.boxes, train.classes).numpy(), job,
                                self.val_metric(model, job))
        return Fitted(model, cost=cost)

    def score(self, task_params, split, config, detail=False):
        """mAP@0.5 and @[.5:.95] against the split's boxes, with the task's evaluation thresholds;
        `detail` adds AP per class (a second pass over the detections)."""
        settings = task_params.detection
        targets = ground_truth(split.boxes, split.classes)

        def score(outputs: list[np.ndarray]) -> dict:
            boxes, scores = outputs[:2]
            found = postprocess(boxes, scores, score_threshold=settings.eval_score_threshold,
                                iou_threshold=settings.iou_threshold, max_detections=settings.max_detections)
            found = [{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in image.items()} for image in found]
            result = detection_map(found, targets, split.labels, per_class=detail)
            return {"test_map_50": result["map_50"], "test_map_50_95": result["map_50_95"],
                    "test_metric": result["map_50"], **({"per_class": result["per_class"]} if detail else {})}

        return score

    def baseline(self, task_params, modality, splits, params):
        prior = box_prior(splits["train"], params.baselines.prior_boxes_per_class, params.seed)
        test = splits["test"]
        result = self.score(task_params, test, {}, detail=True)(detector_outputs(prior, len(test)))
        return {"model": "box prior of the training split (the same boxes for every image)", "features": "none",
                "prior_boxes": len(prior[0]), **result}

    def metadata(self, task_params, model, config):
        d = task_params.detection
        return postprocess_metadata(d.score_threshold, d.iou_threshold, d.max_detections)

    def report_section(self, params, load):
        rows = []
        for task, method, ft in finetuned(params, self.head, load):
            per_class = ", ".join(f"{label} {num(v.get('map_50'), '.2f')}" for label, v in ft.get("per_class", {}).items())
            rows.append([task, method, num(ft.get("test_map_50")), num(ft.get("test_map_50_95")), per_class])
        if not rows:
            return []
        return (["## Object detection (COCO-style mAP, test split, PyTorch)", ""]
                + table(["task", "method", "mAP@0.5", "mAP@[.5:.95]", "AP@0.5 per class"], rows))
