"""`params.yaml`: the one place for knobs, validated when a stage reads it.

Every section is a pydantic model with ``extra="forbid"``, so an unknown key, a
wrong type or an out-of-range value stops the stage with a message that names
the key path and what is allowed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import Field, PositiveInt, ValidationError, create_model, field_validator, model_validator

from devices.profile import ProfileError, profile_path
from modalities import params_schemas
from modalities.params import ModalityBase, Strict
from pipeline.tasks.kinds import task_specs

PARAMS_FILE = Path(os.environ.get("EDGE_PARAMS", "params.yaml"))


# One section of `modalities:`; its `kind` picks the schema (and modalities.get_modality the implementation).
MODALITY_SCHEMAS = params_schemas()  # kind -> schema, from the modality registry
ModalityParams = Annotated[Union[tuple(MODALITY_SCHEMAS.values())], Field(discriminator="kind")]
MODALITY_KINDS = tuple(MODALITY_SCHEMAS)
MODALITY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # it names data/<name>/, models/pretrain/<name>/ and DVC stages


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
    layer_decay: float = Field(1.0, gt=0, le=1)  # fine-tuning: lr x layer_decay per encoder block below the top
    workers: int = Field(1, ge=1, le=64)  # on CPU: methods trained at once in forked processes
    # early stopping on the validation metric (fine-tuning): stop after this many epochs without a gain and
    # keep the best epoch's weights; null = train every epoch and keep the last
    patience: int | None = Field(None, ge=1, le=1000)
    # no early stop before this epoch: a task whose metric sits near zero for its first epochs (detection)
    # would otherwise stop on noise
    min_epochs: int = Field(0, ge=0, le=10000)
    amp: bool = True  # mixed precision where a GPU is used; ignored on CPU


class PretrainParams(OptimParams):
    # equal_compute: `epochs` are the reference method's; every other method trains for the epochs
    # that cost the same FLOPs (pipeline/training/budget.py), and also for `epochs` (the equal-epochs
    # comparison, probed only). equal_epochs: every method trains for `epochs`.
    budget: Literal["equal_compute", "equal_epochs"] = "equal_compute"
    reference_method: Literal["mae", "simclr"] = "simclr"


class ProbeParams(Strict):
    knn_k: int = Field(20, ge=1, le=1000)
    linear_C: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0], min_length=1)
    batch_size: int = Field(256, ge=1, le=65536)
    label_fraction: float = Field(0.1, gt=0, le=1)  # the low-label probes: this share of the training labels
    workers: int = Field(1, ge=1, le=64)  # methods probed at once on CPU, one thread each


def _task_params_model() -> type[Strict]:
    """tasks.<task>: its modality, head and metric, and one optional settings section per head kind
    that has settings (named after the head), from the task kinds' specs."""

    class TaskBase(Strict):
        modality: str
        head: str = "classification"
        metric: str | None = None  # null = the head's metric; filled when read

        @model_validator(mode="before")
        @classmethod
        def _default_metric(cls, raw):
            head = raw.get("head", "classification") if isinstance(raw, dict) else None
            if head in task_specs() and raw.get("metric") is None:
                raw = {**raw, "metric": task_specs()[head].metric}
            return raw

        @field_validator("head")
        @classmethod
        def _known_head(cls, head: str) -> str:
            if head not in task_specs():
                raise ValueError(f"unknown head '{head}' (known: {', '.join(task_specs())})")
            return head

    sections = {head: (spec.settings, spec.settings()) for head, spec in task_specs().items() if spec.settings}
    return create_model("TaskParams", __base__=TaskBase, **sections)


TaskParams = _task_params_model()


class BaselineParams(Strict):
    """The simple models every task is compared with (pipeline/evaluation/baselines.py)."""
    linear_C: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0], min_length=1)
    knn_k: int = Field(5, ge=1, le=1000)
    pca_components: int = Field(64, ge=1, le=4096)  # before the Mahalanobis distance
    prior_boxes_per_class: int = Field(8, ge=1, le=1000)


ROBUSTNESS_VARIANTS = ("pytorch", "onnx-fp32", "onnx-int8", "openvino-int8")


class RobustnessParams(Strict):
    """The task metric on corrupted test inputs (pipeline/evaluation/robustness.py)."""
    severities: list[Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=lambda: [1, 3, 5], min_length=1)
    max_samples: int | None = Field(None, ge=2)  # test samples per corruption (a seeded, stratified pick); null = all
    variants: list[Literal[ROBUSTNESS_VARIANTS]] = Field(default_factory=lambda: list(ROBUSTNESS_VARIANTS),
                                                         min_length=1)

    @field_validator("severities")
    @classmethod
    def _ascending_severities(cls, severities: list[int]) -> list[int]:
        return sorted(_distinct(severities, "severity"))

    @field_validator("variants")
    @classmethod
    def _distinct_variants(cls, variants: list[str]) -> list[str]:
        return _distinct(variants, "variant")


class ExportParams(Strict):
    opset: int = Field(18, ge=13, le=21)  # >= 18: the torch.export-based exporter (export/onnx.py)
    openvino_precisions: list[Literal["fp32", "fp16"]] = ["fp32", "fp16"]
    parity_tolerance: float = Field(1e-3, gt=0, le=1)
    # methods exported at once, each in its own process (export and quantization are mostly single-threaded)
    workers: int = Field(2, ge=1, le=64)


class QuantizeParams(Strict):
    calibration_samples: int = Field(256, ge=8, le=100000)
    per_channel: bool = True
    # NNCF preset of the OpenVINO INT8 (symmetric activations, as NPUs take them); null = NNCF's default
    nncf_preset: Literal["performance", "mixed"] | None = "performance"


def _distinct(values: list, what: str) -> list:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} {', '.join(map(repr, repeated))} listed more than once")
    return values


class BenchParams(Strict):
    profiles: list[str] = ["cpu-x86"]
    # seconds per `benchmark_app` cross-check run; 0 disables the cross-check
    benchmark_app_seconds: float = Field(5.0, ge=0, le=600)
    # override the profile's batch sizes and repetitions (null = the profile's own), e.g. for a quick run
    batch_sizes: list[PositiveInt] | None = Field(None, min_length=1)
    min_seconds: float | None = Field(None, ge=0, le=600)
    min_iterations: int | None = Field(None, ge=1, le=1_000_000)
    warmup_iterations: int | None = Field(None, ge=0, le=100_000)

    @field_validator("profiles")
    @classmethod
    def _known_profiles(cls, names: list[str]) -> list[str]:
        # checked when params are read, so a typo stops the run before any stage does work
        for name in names:
            try:
                profile_path(name)
            except ProfileError as exc:
                raise ValueError(str(exc)) from None
        return _distinct(names, "profile")


class ReportParams(Strict):
    # true: the report stage fails (after writing its outputs) when a task has no variant within its
    # latency budget on a measured device (pipeline/report/results.py)
    budget_gate: bool = False


class DistributedParams(Strict):
    # processes per node for pretraining; >1 makes the stage launch itself under torchrun
    nproc_per_node: int = Field(1, ge=1, le=64)


class Params(Strict):
    seed: int = Field(0, ge=0)
    methods: list[Literal["mae", "simclr", "random"]] = ["mae", "simclr", "random"]
    modalities: dict[str, ModalityParams]
    encoder: EncoderParams = EncoderParams()
    mae: MaeParams = MaeParams()
    simclr: SimclrParams = SimclrParams()
    pretrain: PretrainParams = PretrainParams()
    distributed: DistributedParams = DistributedParams()
    probe: ProbeParams = ProbeParams()
    baselines: BaselineParams = BaselineParams()
    finetune: OptimParams = OptimParams(epochs=10, lr=5e-4)
    tasks: dict[str, TaskParams]
    export: ExportParams = ExportParams()
    quantize: QuantizeParams = QuantizeParams()
    bench: BenchParams = BenchParams()
    robustness: RobustnessParams = RobustnessParams()
    report: ReportParams = ReportParams()

    @field_validator("methods")
    @classmethod
    def _some_distinct_methods(cls, methods: list[str]) -> list[str]:
        if not methods:
            allowed = cls.model_fields["methods"].annotation.__args__[0].__args__
            raise ValueError(f"list at least one method, of {', '.join(map(repr, allowed))}")
        return _distinct(methods, "method")

    @field_validator("modalities", mode="before")
    @classmethod
    def _default_kinds(cls, raw):
        """A section named image / video / audio / text is of that kind unless it says otherwise; a null
        section is left out (not enabled). Other names must set `kind` (the union reports it missing)."""
        if not isinstance(raw, dict):
            return raw
        out = {}
        for name, section in raw.items():
            if section is None:
                continue
            if isinstance(section, dict) and "kind" not in section and name in MODALITY_KINDS:
                section = {"kind": name, **section}
            out[name] = section
        return out

    @model_validator(mode="after")
    def _check(self) -> "Params":
        enabled = set(self.modalities)
        if not enabled:
            raise ValueError("modalities: enable at least one modality section")
        bad = [name for name in self.modalities if not MODALITY_NAME.match(name)]
        if bad:
            raise ValueError(f"modalities.{bad[0]}: a modality name must be lowercase letters, digits and _, "
                             "starting with a letter (it names data/<name>/ and the DVC stages)")
        for task, spec in self.tasks.items():
            if spec.modality not in enabled:
                raise ValueError(
                    f"tasks.{task}.modality: '{spec.modality}' is not an enabled modality "
                    f"(enabled: {sorted(enabled)})"
                )
            section = self.modalities[spec.modality]
            kind = task_specs()[spec.head]
            if spec.metric != kind.metric:
                raise ValueError(f"tasks.{task}.metric: '{spec.metric}' does not fit head '{spec.head}' "
                                 f"(a {spec.head} task is scored by '{kind.metric}')")
            if kind.modality_kinds and section.kind not in kind.modality_kinds:
                raise ValueError(f"tasks.{task}.modality: head '{spec.head}' needs a modality of kind "
                                 f"{' or '.join(kind.modality_kinds)}; '{spec.modality}' is of kind '{section.kind}'")
            if section.data_kind != kind.data:
                fitting = sorted(type(section).DETECTION_SOURCES if kind.data == "detection" else
                                 type(section).ANOMALY_SOURCES if kind.data == "anomaly" else
                                 set(type(section).model_fields["source"].annotation.__args__)
                                 - type(section).DETECTION_SOURCES - type(section).ANOMALY_SOURCES)
                raise ValueError(f"tasks.{task}.modality: head '{spec.head}' needs {kind.data} data, but "
                                 f"modalities.{spec.modality}.source is '{section.source}' ({section.data_kind} "
                                 f"data; {kind.data} sources of kind {section.kind}: {fitting})")
            for head in task_specs():
                if head in spec.model_fields_set and spec.head != head:
                    raise ValueError(f"tasks.{task}.{head}: settings for head '{head}', but the task's head is "
                                     f"'{spec.head}'")
        return self

    def optim(self, stage: Literal["pretrain", "finetune"], modality: str) -> OptimParams:
        """The stage's optimiser settings with the modality's overrides applied."""
        overrides = getattr(self.modality(modality), stage).model_dump(exclude_none=True)
        return getattr(self, stage).model_copy(update=overrides)

    def modality(self, name: str) -> ModalityBase:
        section = self.modalities.get(name)
        if section is None:
            raise KeyError(f"modalities.{name}: not configured in {PARAMS_FILE}")
        return section


class ParamsError(ValueError):
    """A params file that does not validate; the message names every bad key."""


def _describe(err: dict) -> str:
    loc = list(err["loc"])
    if len(loc) >= 3 and loc[0] == "modalities" and loc[2] in MODALITY_KINDS:
        del loc[2]  # the discriminated union's tag: modalities.<name>.<kind>.<key> -> modalities.<name>.<key>
    where = ".".join(str(p) for p in loc) or "(top level)"
    kinds = ", ".join(f"'{k}'" for k in MODALITY_KINDS)
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    if err["type"] == "missing":  # its input is the enclosing section: no use in the message
        return f"{where}: required, missing"
    if err["type"] == "union_tag_not_found":
        return (f"{where}.kind: required, one of {kinds} (it defaults to the section's name only for "
                f"sections named {kinds})")
    if err["type"] == "union_tag_invalid":
        return f"{where}.kind: must be one of {kinds} (got {err['ctx'].get('tag')!r})"
    if err["type"] == "value_error":
        msg = err["msg"].removeprefix("Value error, ")
        # a cross-field check: the section it ran on is no use in the message, a single value is
        return msg if not loc else f"{where}: {msg}" if isinstance(err.get("input"), dict) else \
            f"{where}: {msg} (got {_short(err.get('input'))})"
    return f"{where}: {err['msg']} (got {_short(err.get('input'))})"


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse(raw: dict, source: str = "params") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e) for e in exc.errors())
        raise ParamsError(f"{source} is invalid:\n  {lines}") from None


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (plain YAML keeps the last silently), with
    YAML 1.2 booleans (true/false only), as DVC reads and writes the file: `dvc exp run -S` rewrites
    params.yaml without quotes on yes/no/on/off, which a YAML 1.1 reader would turn into booleans."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # keys merged in with `<<` may be overridden, as YAML intends
            key = self.construct_object(key_node)
            if key in seen:
                raise _DuplicateKey(None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


_UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                       list("tTfF"))


def read_raw(path: str | Path | None = None) -> dict:
    """The params file as YAML data (a mapping), unvalidated."""
    path = Path(path or PARAMS_FILE)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        with open(path) as f:
            raw = yaml.load(f, Loader=_UniqueKeyLoader) or {}
    except yaml.MarkedYAMLError as exc:
        # one line (file:line:column: problem) instead of the parser's multi-line report
        mark, context = exc.problem_mark or exc.context_mark, ""
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        if exc.context:
            at = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
            context = f" ({exc.context}{at})"
        kind = "" if isinstance(exc, _DuplicateKey) else "not valid YAML: "
        raise ParamsError(f"{where}: {kind}{exc.problem}{context}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def load(path: str | Path | None = None) -> Params:
    path = Path(path or PARAMS_FILE)
    return parse(read_raw(path), str(path))
