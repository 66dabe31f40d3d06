"""The one transformer encoder all modalities and both objectives share (timm's `Block`)."""
from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

from modalities.masking import gather_tokens


class Encoder(nn.Module):
    """Modality token embedding + fixed positional embedding + transformer blocks."""

    def __init__(self, token_embedding: nn.Module, pos_embed: torch.Tensor, embed_dim: int, depth: int,
                 num_heads: int, mlp_ratio: float):
        super().__init__()
        self.embed_dim = embed_dim
        self.token_embedding = token_embedding
        self.register_buffer("pos_embed", pos_embed.unsqueeze(0), persistent=False)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=nn.LayerNorm) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.apply(_init_weights)

    def padding_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, N) bool, True = padding token; None for modalities without padding."""
        fn = getattr(self.token_embedding, "padding_mask", None)
        return fn(x) if fn is not None else None

    def forward(self, x: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """x: model input -> (B, N, D) tokens; with ids_keep only those tokens are encoded."""
        return self.encode(x, ids_keep)[0]

    def encode(self, x: torch.Tensor, ids_keep: torch.Tensor | None = None):
        """(tokens (B, K, D), padding (B, K) bool or None) for the kept tokens."""
        tokens = self.token_embedding(x) + self.pos_embed
        padding = self.padding_mask(x)
        if ids_keep is not None:
            tokens = gather_tokens(tokens, ids_keep)
            if padding is not None:
                padding = torch.gather(padding, 1, ids_keep)
        attn_mask = attention_mask(padding)
        for block in self.blocks:
            tokens = block(tokens, attn_mask=attn_mask)
        return self.norm(tokens), padding

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """One vector per sample: mean over its non-padding tokens (no masking)."""
        tokens, padding = self.encode(x)
        if padding is None:
            return tokens.mean(dim=1)
        keep = (~padding).unsqueeze(-1).to(tokens.dtype)
        return (tokens * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)


def attention_mask(padding: torch.Tensor | None) -> torch.Tensor | None:
    """Padding (B, N) -> boolean attention mask (B, 1, 1, N), True = may be attended to."""
    return None if padding is None else ~padding[:, None, None, :]


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build_encoder(modality, encoder_params) -> Encoder:
    p = encoder_params
    return Encoder(
        modality.token_embedding(p.embed_dim),
        modality.position_embedding(p.embed_dim),
        p.embed_dim, p.depth, p.num_heads, p.mlp_ratio,
    )
