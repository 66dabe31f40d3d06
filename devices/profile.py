"""Device profiles: what to measure on a device, and the latency budget it must meet.

A profile is a TOML file in ``devices/profiles/`` (stdlib ``tomllib``, nothing else); cpu-x86.toml
shows the required fields, the other shipped profiles the optional ones. Loading validates it against
the field table below (devices/schema.py): a missing field, a field of the wrong type or an unknown
field is an error naming the file, the field and what is expected.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devices.schema import (MapOf, Rule, Table, Value, distinct_list, int_at_least, is_int, is_number, is_text,
                            lookup, one_of, validate)

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

KNOWN_PRECISIONS = ("fp32", "fp16", "int8")
KNOWN_ARCHES = ("x86_64", "aarch64")  # platform.machine() spellings normalised by host_arch()
ANY_ARCH = "any"  # a profile measured on whatever host runs it (a test or generic profile), said explicitly
# Quantization presets a profile may name. The first six are optimum's AutoQuantizationConfig
# constructors (optimum.onnxruntime.configuration); "qnn-qdq-uint8" is onnxruntime's
# quantization.execution_providers.qnn.get_qnn_qdq_config with uint8 activations and weights
# (what QNN's HTP backend runs); "nncf-performance" / "nncf-mixed" are NNCF's QuantizationPreset
# values for OpenVINO IR (symmetric, or asymmetric activations with symmetric weights).
QUANTIZATION_PRESETS = ("arm64", "avx2", "avx512", "avx512_vnni", "ppc64le", "tensorrt",
                        "qnn-qdq-uint8", "nncf-performance", "nncf-mixed")
_PRECISION_IN_NAME = re.compile(r"(?:^|[^a-z0-9])(" + "|".join(KNOWN_PRECISIONS) + r")(?:[^a-z0-9]|$)")
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}


def _is_shape_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(s, list) and s and all(is_int(d) and d >= 1 for d in s) for s in value)


# The profile file format: every field, what it must be, and whether it may be left out.
FIELDS = {
    "description": Value("a string", lambda v: isinstance(v, str)),
    "threads": Value("an integer >= 0 (0 = runtime default)", int_at_least(0)),
    "warmup_iterations": Value("an integer >= 0", int_at_least(0)),
    "batch_sizes": Value("a non-empty list of distinct integers >= 1", distinct_list(int_at_least(1), nonempty=True)),
    "precisions": Value(f"a non-empty list of distinct precisions from {list(KNOWN_PRECISIONS)}",
                        distinct_list(one_of(KNOWN_PRECISIONS), nonempty=True)),
    "runtimes": Table({
        "onnxruntime": Table({
            "provider": Value("an onnxruntime execution provider name, e.g. 'CPUExecutionProvider'", is_text),
            # providers tried after `provider`, in order
            "fallback_providers": Value("a list of distinct execution provider names, other than 'provider'",
                                        distinct_list(is_text), required=False),
            # passed to `provider`, as strings (booleans as "1" / "0")
            "provider_options": MapOf(Value("a string, integer, float or boolean",
                                            lambda v: isinstance(v, (str, int, float))),
                                      "a table of option = string, integer, float or boolean", required=False),
        }, "a table with 'provider'", required=False),
        "openvino": Table({
            "device": Value("an OpenVINO device name, e.g. 'CPU'", is_text),
        }, "a table with 'device'", required=False),
    }, "a table with at least one of ['onnxruntime', 'openvino']", nonempty=True),
    "repetitions": Table({  # each (model, batch) is timed until both are reached
        "min_iterations": Value("an integer >= 1", int_at_least(1)),
        "min_seconds": Value("a number >= 0 (seconds)", lambda v: is_number(v) and v >= 0),
    }, "a table with min_iterations and min_seconds"),
    "budget_ms": MapOf(Value("a number of milliseconds > 0", lambda v: is_number(v) and v > 0),
                       "a table of task = milliseconds (> 0), including 'default'", must_have=("default",)),
    # required, so a profile that forgets it is not measured (and reported) on a host of another arch
    "arch": Value(f"one of {[*KNOWN_ARCHES, ANY_ARCH]} (the host arch it is measured on; "
                  f"'{ANY_ARCH}': whichever runs it)", one_of((*KNOWN_ARCHES, ANY_ARCH))),
    # optional: absent means dynamic shapes allowed, float models allowed,
    # all precisions preferred in file order, no quantization preset, no fixed input shapes
    "static_shapes": Value("true or false", lambda v: isinstance(v, bool), required=False),
    "requires_quantized": Value("true or false", lambda v: isinstance(v, bool), required=False),
    "preferred_precisions": Value("a non-empty list of distinct precisions, each also in 'precisions'",
                                  distinct_list(one_of(KNOWN_PRECISIONS)), required=False),
    "quantization_preset": Value(f"one of {list(QUANTIZATION_PRESETS)}", one_of(QUANTIZATION_PRESETS), required=False),
    "input_shapes": MapOf(Value("a non-empty list of shapes, each a non-empty list of integers >= 1", _is_shape_list),
                          "a table of task = non-empty list of shapes (lists of integers >= 1)", required=False),
}
RULES = (
    Rule("preferred_precisions",
         lambda d: f"a non-empty list of distinct precisions, each also in 'precisions' {d['precisions']}",
         lambda d: bool(d["preferred_precisions"]) and set(d["preferred_precisions"]) <= set(d["precisions"])),
    Rule("runtimes.onnxruntime.fallback_providers",
         lambda d: "a list of distinct execution provider names, other than 'provider'",
         lambda d: lookup(d, "runtimes.onnxruntime.provider") not in lookup(d, "runtimes.onnxruntime.fallback_providers")),
)


class ProfileError(ValueError):
    """A device profile that cannot be found or does not validate."""


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    description: str
    threads: int
    batch_sizes: tuple[int, ...]
    warmup_iterations: int
    min_iterations: int
    min_seconds: float
    precisions: tuple[str, ...]
    arch: str  # one of KNOWN_ARCHES or ANY_ARCH
    budgets_ms: dict[str, float] = field(default_factory=dict)  # includes "default"
    onnxruntime_provider: str | None = None
    openvino_device: str | None = None
    # optional fields (see FIELDS); defaults keep older profiles valid
    static_shapes: bool = False
    requires_quantized: bool = False
    preferred_precisions: tuple[str, ...] = ()
    quantization_preset: str | None = None
    input_shapes: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)
    onnxruntime_fallback_providers: tuple[str, ...] = ()
    onnxruntime_provider_options: dict[str, str] = field(default_factory=dict)

    @property
    def onnxruntime_providers(self) -> tuple[str, ...]:
        """The onnxruntime providers in priority order: ``provider`` then its fallbacks (empty if none)."""
        if self.onnxruntime_provider is None:
            return ()
        return (self.onnxruntime_provider, *self.onnxruntime_fallback_providers)

    @property
    def precision_preference(self) -> tuple[str, ...]:
        """preferred_precisions, or all precisions in file order when the profile names none."""
        return self.preferred_precisions or self.precisions

    def shapes_for(self, task: str | None) -> tuple[tuple[int, ...], ...]:
        """The static input shapes the profile lists for a task (empty: none listed)."""
        return self.input_shapes.get(task, ()) if task is not None else ()

    def matches_host_arch(self, machine: str | None = None) -> bool:
        """Whether this host's machine arch is the profile's ``arch`` (always true for ``arch = "any"``)."""
        return self.arch == ANY_ARCH or host_arch(machine) == self.arch

    @property
    def runtimes(self) -> dict[str, str]:
        """runtime name -> provider (onnxruntime) or device (OpenVINO), for those the profile uses."""
        out = {}
        if self.onnxruntime_provider is not None:
            out["onnxruntime"] = self.onnxruntime_provider
        if self.openvino_device is not None:
            out["openvino"] = self.openvino_device
        return out

    def budget_ms(self, task: str | None) -> float:
        """The p99 latency budget (ms, batch 1) for a task; the profile's default if it has none."""
        if task is not None and task in self.budgets_ms:
            return self.budgets_ms[task]
        return self.budgets_ms["default"]

    def to_dict(self) -> dict:
        """The settings, JSON-ready (what a report records about how it measured)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "description": self.description,
            "runtimes": self.runtimes,
            "threads": self.threads,
            "batch_sizes": list(self.batch_sizes),
            "warmup_iterations": self.warmup_iterations,
            "min_iterations": self.min_iterations,
            "min_seconds": self.min_seconds,
            "precisions": list(self.precisions),
            "budget_ms": dict(self.budgets_ms),
            "arch": self.arch,
            "static_shapes": self.static_shapes,
            "requires_quantized": self.requires_quantized,
            "preferred_precisions": list(self.precision_preference),
            "quantization_preset": self.quantization_preset,
            "input_shapes": {task: [list(s) for s in shapes] for task, shapes in self.input_shapes.items()},
            "onnxruntime_providers": list(self.onnxruntime_providers),
            "onnxruntime_provider_options": dict(self.onnxruntime_provider_options),
        }


def host_arch(machine: str | None = None) -> str:
    """This host's machine arch as profiles spell it ("x86_64", "aarch64"; others lower-cased)."""
    import platform

    name = (machine if machine is not None else platform.machine()).strip().lower()
    return _ARCH_ALIASES.get(name, name)


def precision_of(metadata: Mapping[str, str], rel_path: str) -> str:
    """A model's precision, to match against a profile's: from its metadata ("precision"), else from its
    path (fp32/fp16/int8), else "unknown"."""
    value = (metadata.get("precision") or "").strip().lower()
    if value:
        return value
    match = _PRECISION_IN_NAME.search(rel_path.lower())
    return match.group(1) if match else "unknown"


def known_profiles() -> list[str]:
    """Names of the profiles shipped in devices/profiles (file stems), sorted."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def profile_path(name_or_path: str | Path) -> Path:
    """The .toml file of a shipped profile name (``cpu-x86``) or of a path; a ProfileError naming the
    known profiles when there is none."""
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text
    if looks_like_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ProfileError(f"device profile file {path} does not exist")
        return path
    path = PROFILES_DIR / f"{text}.toml"
    if not path.is_file():
        known = ", ".join(known_profiles()) or "(none)"
        raise ProfileError(f"unknown device profile '{text}'; known profiles: {known} (in {PROFILES_DIR})")
    return path


def _option_text(value) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)  # what onnxruntime's options parse


def load_profile(name_or_path: str | Path) -> Profile:
    """Load and validate a profile by name (``cpu-x86``) or by path to a .toml file."""
    path = profile_path(name_or_path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    validate(data, FIELDS, RULES, path, ProfileError)

    ort = data["runtimes"].get("onnxruntime", {})
    return Profile(
        name=path.stem,
        path=path,
        description=data["description"],
        threads=data["threads"],
        batch_sizes=tuple(data["batch_sizes"]),
        warmup_iterations=data["warmup_iterations"],
        min_iterations=data["repetitions"]["min_iterations"],
        min_seconds=float(data["repetitions"]["min_seconds"]),
        precisions=tuple(data["precisions"]),
        budgets_ms={task: float(ms) for task, ms in data["budget_ms"].items()},
        onnxruntime_provider=ort.get("provider"),
        openvino_device=data["runtimes"].get("openvino", {}).get("device"),
        arch=data["arch"],
        static_shapes=data.get("static_shapes", False),
        requires_quantized=data.get("requires_quantized", False),
        preferred_precisions=tuple(data.get("preferred_precisions", ())),
        quantization_preset=data.get("quantization_preset"),
        input_shapes={task: tuple(tuple(s) for s in shapes) for task, shapes in data.get("input_shapes", {}).items()},
        onnxruntime_fallback_providers=tuple(ort.get("fallback_providers", ())),
        onnxruntime_provider_options={k: _option_text(v) for k, v in ort.get("provider_options", {}).items()},
    )
