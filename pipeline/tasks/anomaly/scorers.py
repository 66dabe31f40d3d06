"""Anomaly scoring with a pretrained (or random) encoder, trained on normal data only.

Three deployable scorers, each mapping model input (B, ...) -> score (B,), higher = more anomalous:
  * `KnnAnomalyModel`: mean cosine distance to the k nearest embeddings of normal training samples
    (encoder.features), so MAE, SimCLR and a random encoder are compared on the same scorer;
  * `TemporalKnnAnomalyModel`: the same distance between how the tokens change along the time axis of
    the token grid (video clips, spectrograms), which a pooled embedding averages away;
  * `ReconstructionAnomalyModel`: an MAE's reconstruction error over the hidden tokens, averaged over
    a fixed set of seeded masks, so the score is deterministic and the masks are graph constants.
All export with export.onnx.export_onnx(model, example, path, anomaly_metadata(...), input_name,
model.output_names) (the kNN scorers always through the TorchScript exporter: export.onnx.LEGACY_MODELS); the
kNN's top-k becomes an ONNX TopK.

The decision threshold is set on validation NORMAL scores at a target false-alarm rate
(`threshold_at_fpr`) and travels in the model's metadata (`anomaly_metadata`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modalities.masking import Mask
from pipeline.tasks.anomaly.metrics import rates_at
from pipeline.models.encoder import Encoder
from pipeline.models.mae import MAE


@torch.no_grad()
def embedding_bank(encoder: Encoder, x: torch.Tensor, batch_size: int = 256, features=None) -> torch.Tensor:
    """`features` (default encoder.features) of normal training samples (model input) -> (M, F), in batches."""
    features = encoder.features if features is None else features
    was_training = encoder.training
    encoder.eval()
    bank = torch.cat([features(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])
    encoder.train(was_training)
    return bank


def banked_distance(features: torch.Tensor, bank: torch.Tensor, k: int, blocks: list[slice] | None = None) -> torch.Tensor:
    """Mean cosine distance of each row of `features` to its k nearest rows of the normalised `bank`.

    Multiply-and-sum, not a MatMul: INT8 quantizers quantize MatMul/Gemm, and an 8-bit bank product erased
    the small distance differences the score lives on (ORT INT8 AUROC 0.59 -> 0.50 on machine_faults-simclr);
    this way the encoder is quantized and the distances stay float. Long features are summed over `blocks`
    of their columns so the (B, M, block) product stays small."""
    features = F.normalize(features, dim=-1)
    if blocks is None:
        similarity = (features.unsqueeze(1) * bank.unsqueeze(0)).sum(dim=-1)  # (B, M)
    else:
        similarity = sum((features[:, None, block] * bank[None, :, block]).sum(dim=-1) for block in blocks)
    return (1 - similarity).topk(k, dim=1, largest=False).values.mean(dim=1)


class KnnAnomalyModel(nn.Module):
    """Deployable: x -> mean cosine distance to the k nearest normal embeddings (the bank, a buffer)."""

    output_names = ("score",)

    def __init__(self, encoder: Encoder, bank: torch.Tensor, k: int):
        super().__init__()
        if not 1 <= k <= len(bank):
            raise ValueError(f"k must be between 1 and the bank size {len(bank)}, got {k}")
        self.encoder = encoder
        self.k = k
        self.register_buffer("bank", F.normalize(bank.float(), dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return banked_distance(self.encoder.features(x), self.bank, self.k)

    def describe(self) -> dict:
        return {"scorer": "knn", "distance": "cosine", "k": self.k, "bank_size": len(self.bank)}


def temporal_differences(encoder: Encoder, x: torch.Tensor, grid: tuple[int, ...], time_axis: int) -> torch.Tensor:
    """(B, F): the encoder's tokens laid out on the modality's token grid, differenced between consecutive
    steps along its time axis, flattened. A frozen, reversed or sped-up motion, or a click in a sound,
    changes these while a pooled embedding averages it away."""
    tokens = encoder(x)
    # a constant target shape: onnxruntime's shape inference (before INT8) fails on one built from Shape
    steps = tokens.reshape(-1, *grid, tokens.shape[-1]).movedim(time_axis + 1, 1)  # (B, T, ..., D)
    return (steps[:, 1:] - steps[:, :-1]).flatten(1)


class TemporalKnnAnomalyModel(nn.Module):
    """Deployable: x -> mean cosine distance to the k nearest normal training samples, compared by their
    temporal token differences (temporal_differences); the bank is a buffer."""

    output_names = ("score",)
    BLOCK = 128  # features summed per block in the bank product (banked_distance)

    def __init__(self, encoder: Encoder, bank: torch.Tensor, k: int, grid: tuple[int, ...], time_axis: int):
        super().__init__()
        if not 1 <= k <= len(bank):
            raise ValueError(f"k must be between 1 and the bank size {len(bank)}, got {k}")
        if grid[time_axis] < 2:
            raise ValueError(f"the token grid {tuple(grid)} has {grid[time_axis]} step along its time axis "
                             f"{time_axis}; temporal differences need at least 2")
        self.encoder, self.k, self.grid, self.time_axis = encoder, k, tuple(grid), time_axis
        self.register_buffer("bank", F.normalize(bank.float(), dim=-1))
        size = bank.shape[1]
        self.blocks = [slice(i, min(i + self.BLOCK, size)) for i in range(0, size, self.BLOCK)]

    @staticmethod
    def feature_size(grid: tuple[int, ...], time_axis: int, embed_dim: int) -> int:
        return math.prod(grid) // grid[time_axis] * (grid[time_axis] - 1) * embed_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_differences(self.encoder, x, self.grid, self.time_axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return banked_distance(self.features(x), self.bank, self.k, self.blocks)

    def describe(self) -> dict:
        return {"scorer": "temporal_knn", "distance": "cosine", "features": "token differences along time",
                "k": self.k, "bank_size": len(self.bank), "token_grid": list(self.grid), "time_axis": self.time_axis}


def fixed_masks(modality, count: int, seed: int) -> Mask:
    """`count` masks drawn by the modality's own MAE masking from a seeded generator, one per row."""
    return modality.mask(modality.example_input(count), torch.Generator().manual_seed(seed))


class ReconstructionAnomalyModel(nn.Module):
    """Deployable: x -> MAE reconstruction error (squared, on the MAE's own targets) over the hidden
    tokens, averaged over the fixed masks; with `error_map` also (B, N) per-token error, each token
    averaged over the masks that hide it (0 where none does): where in the sample the anomaly is.

    Every sample is run once per mask as one batch of R x B. Modalities whose MAE target is a class
    id per token (text) have no squared error and are not supported.
    """

    def __init__(self, mae: MAE, masks: Mask, error_map: bool = False):
        super().__init__()
        self.mae = mae
        self.error_map = error_map
        self.output_names = ("score", "error_map") if error_map else ("score",)
        self.register_buffer("ids_keep", masks.ids_keep.clone())
        self.register_buffer("ids_restore", masks.ids_restore.clone())
        self.register_buffer("hidden", masks.mask.float().clone())  # (R, N), 1 = scored

    def token_errors(self, x: torch.Tensor) -> torch.Tensor:
        """(R, B, N) squared error per token and mask (over all tokens; `hidden` says which count)."""
        masks, batch = self.ids_keep.shape[0], x.shape[0]
        repeated = x.repeat(masks, *([1] * (x.dim() - 1)))  # mask-major: row r * B + b
        mask = Mask(*(ids[:, None].expand(-1, batch, -1).reshape(masks * batch, -1)
                      for ids in (self.ids_keep, self.ids_restore, self.hidden)))
        latent = self.mae.encoder(repeated, ids_keep=mask.ids_keep)
        pred = self.mae.decoder_pred(self.mae.forward_decoder(latent, mask, None))
        target = self.mae.modality.mae_target(x, self.mae.norm_pix_loss)
        if target.dim() != 3:
            raise ValueError("reconstruction scoring needs a per-token vector target (image, video, audio)")
        return ((pred.view(masks, batch, *target.shape[1:]) - target.float()) ** 2).mean(dim=-1)

    def forward(self, x: torch.Tensor):
        errors = self.token_errors(x) * self.hidden[:, None]
        score = (errors.sum(dim=-1) / self.hidden.sum(dim=-1, keepdim=True)).mean(dim=0)
        if not self.error_map:
            return score
        return score, errors.sum(dim=0) / self.hidden.sum(dim=0).clamp(min=1)

    def describe(self) -> dict:
        return {"scorer": "mae_reconstruction", "error": "mean squared error over hidden tokens",
                "masks": int(self.ids_keep.shape[0]), "hidden_tokens": int(self.hidden[0].sum()),
                "normalized_targets": bool(self.mae.norm_pix_loss)}


@torch.no_grad()
def anomaly_scores(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Scores (N,) of a deployable anomaly model over model inputs x, in batches, in eval mode."""
    was_training = model.training
    model.eval()
    outs = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat([o[0] if isinstance(o, tuple) else o for o in outs]).float().numpy()


def threshold_at_fpr(normal_scores: np.ndarray, target_fpr: float) -> float:
    """The threshold (score > threshold = anomaly) that flags floor(target_fpr x n) of the n normal
    validation scores: the (1 - target_fpr) quantile, taken as an observed score. Ties flag fewer."""
    scores = np.sort(np.asarray(normal_scores, dtype=np.float64))[::-1]
    if not 0 <= target_fpr < 1 or len(scores) == 0:
        raise ValueError(f"need normal scores and 0 <= target_fpr < 1, got {len(scores)} scores, {target_fpr}")
    return float(scores[math.floor(target_fpr * len(scores) + 1e-9)])


def threshold_report(val_normal_scores: np.ndarray, test_scores: np.ndarray, test_is_anomaly: np.ndarray,
                     target_fpr: float) -> dict[str, float]:
    """The threshold set on validation normal scores, and the rates it gives there and on test."""
    threshold = threshold_at_fpr(val_normal_scores, target_fpr)
    test = rates_at(threshold, test_scores, test_is_anomaly)
    return {"threshold": threshold, "target_false_alarm_rate": target_fpr,
            "val_false_alarm_rate": float((np.asarray(val_normal_scores) > threshold).mean()),
            "test_false_alarm_rate": test["false_alarm_rate"], "test_detection_rate": test["detection_rate"]}


def anomaly_metadata(model: KnnAnomalyModel | TemporalKnnAnomalyModel | ReconstructionAnomalyModel, threshold: float,
                     target_fpr: float) -> dict:
    """What an app needs to turn the exported score into a decision (goes into the model metadata)."""
    outputs = {"score": "(N,) anomaly score, higher = more anomalous"}
    if "error_map" in model.output_names:
        outputs["error_map"] = "(N, tokens) reconstruction error per token, 0 where no mask hid it"
    return {"task_kind": "anomaly", "output": "score", "outputs": outputs, **model.describe(),
            "threshold": threshold, "target_false_alarm_rate": target_fpr,
            "decision": "anomalous when score > threshold"}
