"""The deployable model of each task head: built from params and the fine-tune config, loaded from
models/finetune/<task>/<method>/, run over a split, and described in the export's metadata.

    classification  Classifier               x -> logits (N, classes)
    detection       detection.Detector       x -> boxes (N, cells, 4), scores (N, cells, classes)
    anomaly         anomaly.KnnAnomalyModel  x -> score (N,)   (any encoder)
                    or ReconstructionAnomalyModel (MAE encoders, when the task's scorer says so)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.config import paths
from pipeline.tasks.anomaly.scorers import KnnAnomalyModel, ReconstructionAnomalyModel, anomaly_metadata, fixed_masks
from pipeline.training.checkpoint import load_weights
from pipeline.tasks.detection.head import build_detector, postprocess_metadata
from pipeline.tasks.classification import Classifier
from devices.io import read_json
from pipeline.models.loading import fresh_encoder
from pipeline.models.methods import build_objective
from pipeline.tasks.scoring import anomaly_score, classification_score, detection_score


def build_task_model(modality, params, head: str, config: dict) -> nn.Module:
    """The untrained model of `head` with the shapes `config` (the fine-tune's config.json) records."""
    encoder = fresh_encoder(modality, params)
    if head == "classification":
        return Classifier(encoder, len(config["labels"]))
    if head == "detection":
        return build_detector(encoder, modality, len(config["labels"]))
    if config["scorer"] == "knn":
        return KnnAnomalyModel(encoder, torch.zeros(config["bank_size"], encoder.embed_dim), config["k"])
    mae = build_objective("mae", encoder, modality, params)
    return ReconstructionAnomalyModel(mae, fixed_masks(modality, config["masks"], params.seed))


def finetuned_model(modality, params, task: str, method: str) -> tuple[nn.Module, dict]:
    directory = paths.finetune_dir(task, method)
    config = read_json(directory / "config.json")
    model = build_task_model(modality, params, params.tasks[task].head, config)
    load_weights(model, directory / "model.safetensors")
    return model.eval(), config


@torch.no_grad()
def run_model(model: nn.Module, x: np.ndarray, device="cpu", batch_size: int = 256) -> list[np.ndarray]:
    """Every output of `model` over model inputs x (numpy), in batches: what the exports are compared with."""
    model.eval().to(device)
    parts = []
    for i in range(0, len(x), batch_size):
        out = model(torch.from_numpy(x[i:i + batch_size]).to(device))
        parts.append([o.float().cpu().numpy() for o in (out if isinstance(out, tuple) else (out,))])
    return [np.concatenate(p, axis=0) for p in zip(*parts)]


def head_metadata(task_params, model: nn.Module, config: dict) -> dict:
    """What an app needs to read the outputs (goes into the exported model's metadata)."""
    if task_params.head == "classification":
        return {"output": "logits"}
    if task_params.head == "detection":
        d = task_params.detection
        return postprocess_metadata(d.score_threshold, d.iou_threshold, d.max_detections)
    return anomaly_metadata(model, config["threshold"], task_params.anomaly.target_false_alarm_rate)


def task_score(task_params, split, config: dict, detail: bool = False):
    """The task's scorer over `split` (see pipeline.tasks.scoring); `detail` adds per-class AP (detection)."""
    if task_params.head == "classification":
        return classification_score(split.y)
    if task_params.head == "detection":
        return detection_score(split, task_params.detection, per_class=detail)
    return anomaly_score(split, task_params.anomaly, config["threshold"])
