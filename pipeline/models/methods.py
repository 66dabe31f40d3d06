"""Registry of pretraining methods: each builds a module whose forward returns the training loss."""
from __future__ import annotations

from pipeline.models.mae import MAE
from pipeline.models.simclr import SimCLR


def _mae(encoder, modality, params):
    p = params.mae
    return MAE(encoder, modality, p.decoder_dim, p.decoder_depth, p.decoder_heads, p.norm_pix_loss)


def _simclr(encoder, modality, params):
    p = params.simclr
    return SimCLR(encoder, modality, p.proj_hidden_dim, p.proj_dim, p.temperature)


# "random" has no objective: its encoder keeps the seeded initialisation (the baseline).
OBJECTIVES = {"mae": _mae, "simclr": _simclr, "random": None}

# AdamW betas per method (MAE's recipe uses beta2 = 0.95).
BETAS = {"mae": (0.9, 0.95), "simclr": (0.9, 0.999)}


def build_objective(method: str, encoder, modality, params):
    if method not in OBJECTIVES:
        raise KeyError(f"unknown method '{method}' (known: {sorted(OBJECTIVES)})")
    factory = OBJECTIVES[method]
    return factory(encoder, modality, params) if factory else None
