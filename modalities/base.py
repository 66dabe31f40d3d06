"""What the rest of the pipeline may ask about one kind of data.

The pipeline never branches on a modality's name: it asks the modality for its
token embedding, its SimCLR views, its MAE masking and reconstruction target,
and its deployable input contract.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modalities import masking
from modalities.splits import Split, split_from_arrays


@dataclass
class PreparedData:
    """What a `prepare` run produced: the three splits plus bookkeeping."""

    splits: dict[str, Split]
    source: str
    skipped: list[str] = field(default_factory=list)  # files skipped as unreadable
    files: dict[str, str] = field(default_factory=dict)  # name -> text, written beside the splits (a tokenizer)
    unlabelled: np.ndarray | None = None  # stored samples without labels: pretraining data beside train


UNLABELLED_FILE = "unlabelled.npz"


class Modality(ABC):
    """One implementation per kind of data (image, video, audio, text).

    `kind` is the implementation; `name` the instance's name in params.yaml (its data lives in
    data/<name>/). `modalities.get_modality` sets the name on the instance; the class's `name`
    (= its kind) is only the default for one built directly.
    """

    kind: str
    name: str

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__ and "name" in cls.__dict__:  # a class that only names itself
            cls.kind = cls.name

    def __init__(self, params, seed: int = 0):
        self.params = params
        self.seed = seed

    # ---- data -------------------------------------------------------------
    @abstractmethod
    def load_raw(self) -> PreparedData:
        """Read the configured source (embedded default or a user dataset)."""

    def save_split(self, split: Split, path: Path) -> None:
        """x, y and the split's extras (a DetectionSplit's boxes, an AnomalySplit's sources)."""
        np.savez(path, **split.arrays())

    def load_split(self, data_dir: str | Path, split: str) -> Split:
        """The saved split as the type it was saved as: Split, DetectionSplit or AnomalySplit."""
        data_dir = Path(data_dir)
        path = split_path(data_dir, split)
        manifest = json.loads((data_dir / "manifest.json").read_text())
        with np.load(path, allow_pickle=False) as arrays:
            loaded = split_from_arrays(arrays, manifest["labels"], str(path))
        if len(loaded) == 0:
            raise ValueError(f"{path}: split '{split}' is empty")
        return loaded

    # ---- robustness (pipeline/evaluation/robustness.py) --------------------
    def corruptions(self) -> dict:
        """{name: modalities.corruptions.Corruption} of raw inputs; none by default."""
        return {}

    def raw_inputs(self, data_dir: str | Path, split: str):
        """The split's inputs as an app receives them, in the order of its stored samples; by default the
        stored samples themselves (images and clips are stored as the uint8 an app decodes)."""
        return self.load_split(data_dir, split).x

    @staticmethod
    def kept_raw_arrays(data_dir: str | Path, split: str, keys: tuple[str, ...]) -> list[np.ndarray]:
        """The raw-input arrays prepare keeps beside a split's samples (for the test split only)."""
        path = split_path(data_dir, split)
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in keys if key not in arrays.files]
            if missing:
                raise FileNotFoundError(f"{path}: no raw inputs ({', '.join(missing)}); prepare keeps them for the "
                                        "test split only, since robustness runs were added: rerun prepare")
            return [arrays[key] for key in keys]

    def encode_raw(self, raw, data_dir: str | Path) -> np.ndarray:
        """Raw inputs -> stored samples, as prepare computes them (encode_raw(raw_inputs(s)) == stored x)."""
        return np.asarray(raw)

    def load_unlabelled(self, data_dir: str | Path) -> np.ndarray | None:
        """The unlabelled samples prepare kept (data/<name>/unlabelled.npz), or None when there are none."""
        path = Path(data_dir) / UNLABELLED_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as arrays:
            return arrays["x"]

    # ---- model input ------------------------------------------------------
    @abstractmethod
    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """Stored samples (as loaded) -> float model input, on x's device."""

    @abstractmethod
    def token_embedding(self, embed_dim: int) -> nn.Module:
        """Module mapping model input (B, ...) to tokens (B, N, embed_dim).

        A modality whose samples have padding (text) gives the module a
        `padding_mask(x) -> (B, N) bool` method (True = padding); the encoder then
        keeps padding out of attention and pooling. It runs inside the exported
        graph, so apps never compute it themselves.
        """

    @abstractmethod
    def position_embedding(self, embed_dim: int) -> torch.Tensor:
        """Fixed (N, embed_dim) positional embedding for the token grid."""

    @property
    @abstractmethod
    def num_tokens(self) -> int: ...

    # ---- SimCLR -----------------------------------------------------------
    @abstractmethod
    def simclr_views(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independently augmented views of a batch of model inputs."""

    def finetune_augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Light augmentation for supervised fine-tuning (default: none)."""
        return x

    # ---- MAE --------------------------------------------------------------
    @property
    def mask_ratio(self) -> float:
        return self.params.mask_ratio

    def mask(self, x: torch.Tensor, generator: torch.Generator) -> masking.Mask:
        """Which tokens of the batch x the MAE encoder sees; per-sample random by default."""
        return masking.random_mask(x.shape[0], self.num_tokens, self.mask_ratio, generator, x.device)

    @property
    @abstractmethod
    def target_dim(self) -> int:
        """Size of one token's reconstruction target (the decoder's output)."""

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """Model input -> (B, N, target_dim) raw values per token (modalities with pixel-like targets)."""
        raise NotImplementedError(f"{self.name}: no patchify; override mae_target")

    def mae_target(self, x: torch.Tensor, normalize: bool) -> torch.Tensor:
        """Reconstruction target per token, (B, N, target_dim): the patch values, each patch normalised
        to zero mean and unit variance when `normalize` (MAE's norm_pix_loss). A modality with another
        target (text: (B, N) token ids) overrides this and mae_loss."""
        target = self.patchify(x)
        if normalize:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return target

    def mae_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss over the scored (hidden) tokens only: pred (M, target_dim), target as mae_target gives
        it for those tokens. Mean squared error by default."""
        return ((pred - target.float()) ** 2).mean()

    # ---- deployment -------------------------------------------------------
    @abstractmethod
    def input_spec(self) -> dict:
        """The deployable model's input contract: name, shape (batch = -1), dtype."""

    @abstractmethod
    def preprocessing(self) -> dict:
        """What an app must do to raw data before calling the model."""

    @abstractmethod
    def reconstruction_figure(self, x: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor,
                              normalized: bool) -> np.ndarray:
        """A uint8 picture (H, W) or (H, W, 3) of inputs, masked inputs and MAE reconstructions."""

    def deploy_files(self, data_dir: Path) -> list[Path]:
        """Files from the prepared data an app needs beside the model (e.g. text's tokenizer.json)."""
        return []

    def frontend(self) -> tuple[nn.Module, dict] | None:
        """A feature front end exported as its own ONNX model (e.g. audio's log-mel), with its input spec.

        Apps run it on raw input, then feed its output to the model: one implementation, exported,
        so training and apps cannot drift apart. None when model input needs no front end.
        """
        return None

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        spec = self.input_spec()
        return torch.zeros((batch_size, *spec["shape"][1:]), dtype=getattr(torch, spec["dtype"]))

    # ---- simple baselines (pipeline/evaluation/baselines.py) ---------------
    baseline_features_name = "pixels"

    def baseline_features(self, x: np.ndarray) -> np.ndarray:
        """Stored samples -> one float vector each, the standard features a simple model (logistic
        regression, Mahalanobis or kNN distance) is fitted on; by default the model input, flattened."""
        return self.to_input(torch.from_numpy(x)).flatten(1).float().numpy()


def split_path(data_dir: str | Path, split: str) -> Path:
    """The prepared split's file; a clear error when prepare has not written it."""
    path = Path(data_dir) / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split '{split}' not found; run the prepare stage first")
    return path
