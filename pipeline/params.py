"""`params.yaml`: the one place for knobs, validated when a stage reads it.

Every section is a pydantic model with ``extra="forbid"``, so an unknown key, a
wrong type or an out-of-range value stops the stage with a message that names
the key path and what is allowed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from pipeline.params_audio import AudioParams
from pipeline.params_base import Strict
from pipeline.params_image import ImageParams
from pipeline.params_text import TextParams
from pipeline.params_video import VideoParams

PARAMS_FILE = Path(os.environ.get("EDGE_PARAMS", "params.yaml"))


class ModalityParams(Strict):
    image: ImageParams | None = None
    video: VideoParams | None = None
    audio: AudioParams | None = None
    text: TextParams | None = None


class EncoderParams(Strict):
    embed_dim: int = Field(128, ge=8, le=4096)
    depth: int = Field(4, ge=1, le=48)
    num_heads: int = Field(4, ge=1, le=64)
    mlp_ratio: float = Field(4.0, gt=0, le=16)

    @model_validator(mode="after")
    def _check(self) -> "EncoderParams":
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        return self


class MaeParams(Strict):
    decoder_dim: int = Field(64, ge=8, le=4096)
    decoder_depth: int = Field(2, ge=1, le=24)
    decoder_heads: int = Field(4, ge=1, le=64)
    norm_pix_loss: bool = True


class SimclrParams(Strict):
    proj_hidden_dim: int = Field(256, ge=8, le=8192)
    proj_dim: int = Field(64, ge=8, le=4096)
    temperature: float = Field(0.2, gt=0, le=10)


class OptimParams(Strict):
    epochs: int = Field(20, ge=1, le=10000)
    batch_size: int = Field(128, ge=2, le=65536)
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(0.05, ge=0, le=10)
    warmup_epochs: float = Field(1.0, ge=0, le=1000)
    amp: bool = True  # mixed precision where a GPU is used; ignored on CPU


class ProbeParams(Strict):
    knn_k: int = Field(20, ge=1, le=1000)
    linear_C: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0], min_length=1)
    batch_size: int = Field(256, ge=1, le=65536)


class TaskParams(Strict):
    modality: str
    head: Literal["classification"] = "classification"
    metric: Literal["accuracy"] = "accuracy"


class ExportParams(Strict):
    opset: int = Field(17, ge=13, le=21)
    openvino_precisions: list[Literal["fp32", "fp16"]] = ["fp32", "fp16"]
    parity_tolerance: float = Field(1e-3, gt=0, le=1)


class QuantizeParams(Strict):
    calibration_samples: int = Field(256, ge=8, le=100000)
    per_channel: bool = True


class BenchParams(Strict):
    profiles: list[str] = ["cpu-x86"]
    # seconds per `benchmark_app` cross-check run; 0 disables the cross-check
    benchmark_app_seconds: float = Field(5.0, ge=0, le=600)
    # override the profile's repetitions (null = the profile's own), e.g. for a quick run
    min_seconds: float | None = Field(None, ge=0, le=600)
    min_iterations: int | None = Field(None, ge=1, le=1_000_000)
    warmup_iterations: int | None = Field(None, ge=0, le=100_000)


class DistributedParams(Strict):
    # processes per node for pretraining; >1 makes the stage launch itself under torchrun
    nproc_per_node: int = Field(1, ge=1, le=64)


class Params(Strict):
    seed: int = Field(0, ge=0)
    methods: list[Literal["mae", "simclr", "random"]] = ["mae", "simclr", "random"]
    modalities: ModalityParams
    encoder: EncoderParams = EncoderParams()
    mae: MaeParams = MaeParams()
    simclr: SimclrParams = SimclrParams()
    pretrain: OptimParams = OptimParams()
    distributed: DistributedParams = DistributedParams()
    probe: ProbeParams = ProbeParams()
    finetune: OptimParams = OptimParams(epochs=10, lr=5e-4)
    tasks: dict[str, TaskParams]
    export: ExportParams = ExportParams()
    quantize: QuantizeParams = QuantizeParams()
    bench: BenchParams = BenchParams()

    @model_validator(mode="after")
    def _check(self) -> "Params":
        enabled = {name for name, section in self.modalities if section is not None}
        if not enabled:
            raise ValueError("modalities: enable at least one modality section")
        for task, spec in self.tasks.items():
            if spec.modality not in enabled:
                raise ValueError(
                    f"tasks.{task}.modality: '{spec.modality}' is not an enabled modality "
                    f"(enabled: {sorted(enabled)})"
                )
        return self

    def optim(self, stage: Literal["pretrain", "finetune"], modality: str) -> OptimParams:
        """The stage's optimiser settings with the modality's overrides applied."""
        overrides = getattr(self.modality(modality), stage).model_dump(exclude_none=True)
        return getattr(self, stage).model_copy(update=overrides)

    def modality(self, name: str):
        section = getattr(self.modalities, name, None)
        if section is None:
            raise KeyError(f"modalities.{name}: not configured in {PARAMS_FILE}")
        return section


class ParamsError(ValueError):
    """A params file that does not validate; the message names every bad key."""


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    return f"{where}: {err['msg']} (got {err.get('input')!r})"


def parse(raw: dict, source: str = "params") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e) for e in exc.errors())
        raise ParamsError(f"{source} is invalid:\n  {lines}") from None


def load(path: str | Path | None = None) -> Params:
    path = Path(path or PARAMS_FILE)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return parse(raw, str(path))
