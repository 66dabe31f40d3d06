"""Task heads on the shared encoder, and the deployable models built from them."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.encoder import Encoder


class ClassificationHead(nn.Module):
    """LayerNorm + linear layer on the mean-pooled tokens."""

    def __init__(self, embed_dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        self.fc = nn.Linear(embed_dim, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.02)
        nn.init.zeros_(self.fc.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(pooled))


class Classifier(nn.Module):
    """Deployable: model input -> logits. No masking, no training-only parts."""

    output_names = ("logits",)

    def __init__(self, encoder: Encoder, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = ClassificationHead(encoder.embed_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.features(x))


class SupervisedObjective(nn.Module):
    """Fine-tuning loss: cross entropy on (lightly augmented) inputs."""

    def __init__(self, classifier: Classifier, modality, label_smoothing: float = 0.1):
        super().__init__()
        self.classifier = classifier
        self.modality = modality
        self.label_smoothing = label_smoothing

    def forward(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        logits = self.classifier(self.modality.finetune_augment(x, generator))
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
