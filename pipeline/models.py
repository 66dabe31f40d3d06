"""Build models from params and load their saved weights (pretrained encoders, fine-tuned classifiers)."""
from __future__ import annotations

import torch

from pipeline import paths
from pipeline.checkpoint import load_weights
from pipeline.encoder import Encoder, build_encoder
from pipeline.heads import Classifier
from pipeline.io import read_json


def fresh_encoder(modality, params) -> Encoder:
    """The seeded initial encoder: identical for every method, so comparisons start from one point."""
    torch.manual_seed(params.seed)
    return build_encoder(modality, params.encoder)


def pretrained_encoder(modality, params, method: str) -> Encoder:
    encoder = fresh_encoder(modality, params)
    load_weights(encoder, paths.pretrain_dir(modality.name, method) / "encoder.safetensors")
    return encoder.eval()


def finetuned_classifier(modality, params, task: str, method: str) -> tuple[Classifier, dict]:
    directory = paths.finetune_dir(task, method)
    config = read_json(directory / "config.json")
    model = Classifier(fresh_encoder(modality, params), len(config["labels"]))
    load_weights(model, directory / "model.safetensors")
    return model.eval(), config
