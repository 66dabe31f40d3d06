"""AdamW parameter groups as the MAE fine-tuning recipe sets them: no weight decay on biases, norms and
other 1-d parameters, and a learning rate that shrinks by `layer_decay` per encoder block below the top,
so a pretrained encoder's early layers move least. layer_decay 1.0 gives every parameter the same rate."""
from __future__ import annotations

import re

from torch import nn

BLOCK = re.compile(r"(?:^|\.)encoder\.blocks\.(\d+)\.")
EMBEDDING = re.compile(r"(?:^|\.)encoder\.token_embedding\.")


def layer_of(name: str, depth: int) -> int:
    """0 for the token embedding, i + 1 for encoder block i, depth + 1 for the rest (final norm, head)."""
    if EMBEDDING.search(name):
        return 0
    block = BLOCK.search(name)
    return int(block.group(1)) + 1 if block else depth + 1


def decays(name: str, param: nn.Parameter) -> bool:
    return param.ndim > 1 and not name.endswith(".bias") and "token" not in name.rsplit(".", 1)[-1]


def parameter_groups(model: nn.Module, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """Groups for torch.optim.AdamW, each with an `lr_scale` the training loop multiplies its rate by."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    depth = len({m.group(1) for n, _ in named if (m := BLOCK.search(n))})
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in named:
        layer, decay = layer_of(name, depth), decays(name, param)
        groups.setdefault((layer, decay), {"params": [], "weight_decay": weight_decay if decay else 0.0,
                                           "lr_scale": layer_decay ** (depth + 1 - layer)})["params"].append(param)
    return [groups[key] for key in sorted(groups)]
