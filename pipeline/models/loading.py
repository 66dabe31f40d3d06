"""Build encoders from params and load pretrained weights (task models: pipeline/task_models.py)."""
from __future__ import annotations

import torch

from pipeline.config import paths
from pipeline.training.checkpoint import load_weights
from pipeline.models.encoder import Encoder, build_encoder


def fresh_encoder(modality, params) -> Encoder:
    """The seeded initial encoder: identical for every method, so comparisons start from one point."""
    torch.manual_seed(params.seed)
    return build_encoder(modality, params.encoder)


def pretrained_encoder(modality, params, method: str, equal_epochs: bool = False) -> Encoder:
    """The method's encoder; `equal_epochs`: the one trained for the reference method's epochs."""
    encoder = fresh_encoder(modality, params)
    load_weights(encoder, paths.equal_epochs_encoder(modality.name, method) if equal_epochs else
                 paths.pretrain_dir(modality.name, method) / "encoder.safetensors")
    return encoder.eval()
