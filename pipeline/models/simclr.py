"""SimCLR: two views through the encoder and a projection head, NT-Xent between them."""
from __future__ import annotations

import torch
from torch import nn

from pipeline.models.encoder import Encoder
from pipeline.models.ntxent import NTXentLoss


class ProjectionHead(nn.Sequential):
    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__(
            nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )


class SimCLR(nn.Module):
    def __init__(self, encoder: Encoder, modality, proj_hidden_dim: int, proj_dim: int, temperature: float):
        super().__init__()
        self.encoder = encoder
        self.modality = modality
        self.projection = ProjectionHead(encoder.embed_dim, proj_hidden_dim, proj_dim)
        self.criterion = NTXentLoss(temperature)

    def forward(self, x: torch.Tensor, labels, generator: torch.Generator) -> torch.Tensor:
        """The training loss; labels are unused (self-supervised)."""
        v1, v2 = self.modality.simclr_views(x, generator)
        z = self.projection(self.encoder.features(torch.cat([v1, v2], dim=0)))
        z1, z2 = z.chunk(2, dim=0)
        return self.criterion(z1, z2)
