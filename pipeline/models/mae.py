"""Masked autoencoder: encode visible tokens only, decode with mask tokens, loss on hidden tokens."""
from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

from modalities.masking import Mask, gather_tokens
from pipeline.models.encoder import Encoder, _init_weights, attention_mask


class MAE(nn.Module):
    def __init__(self, encoder: Encoder, modality, decoder_dim: int, decoder_depth: int, decoder_heads: int,
                 norm_pix_loss: bool = True):
        super().__init__()
        self.encoder = encoder
        self.modality = modality
        self.norm_pix_loss = norm_pix_loss
        self.decoder_embed = nn.Linear(encoder.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer("decoder_pos", modality.position_embedding(decoder_dim).unsqueeze(0), persistent=False)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_dim, decoder_heads, 4.0, qkv_bias=True, norm_layer=nn.LayerNorm) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, modality.target_dim)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            module.apply(_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward_decoder(self, latent: torch.Tensor, mask: Mask, padding: torch.Tensor | None) -> torch.Tensor:
        """Decoder features for every token (B, N, decoder_dim), before the prediction layer."""
        x = self.decoder_embed(latent)
        b, n_visible, d = x.shape
        n = mask.ids_restore.shape[1]
        x = torch.cat([x, self.mask_token.expand(b, n - n_visible, d)], dim=1)
        x = gather_tokens(x, mask.ids_restore) + self.decoder_pos  # back to the original token order
        attn_mask = attention_mask(padding)
        for block in self.decoder_blocks:
            x = block(x, attn_mask=attn_mask)
        return self.decoder_norm(x)

    def _decode(self, x: torch.Tensor, generator: torch.Generator):
        mask = self.modality.mask(x, generator)
        latent = self.encoder(x, ids_keep=mask.ids_keep)
        features = self.forward_decoder(latent, mask, self.encoder.padding_mask(x))
        return features, self.modality.mae_target(x, self.norm_pix_loss), mask

    def reconstruct(self, x: torch.Tensor, generator: torch.Generator):
        """Returns (loss, prediction for every token, mask) for a batch of model inputs."""
        features, target, mask = self._decode(x, generator)
        pred = self.decoder_pred(features)
        scored = mask.mask.bool()
        return self.modality.mae_loss(pred[scored].float(), target[scored]), pred, mask.mask

    def forward(self, x: torch.Tensor, labels, generator: torch.Generator) -> torch.Tensor:
        """The training loss; labels are unused (self-supervised). Predicts the scored tokens only:
        with text's vocabulary-sized output that halves the cost of a step."""
        features, target, mask = self._decode(x, generator)
        scored = mask.mask.bool()
        return self.modality.mae_loss(self.decoder_pred(features[scored]).float(), target[scored])
