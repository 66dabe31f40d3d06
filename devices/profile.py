"""Device profiles: what to measure on a device, and the latency budget it must meet.

A profile is a TOML file in ``devices/profiles/`` (stdlib ``tomllib``, nothing
else). Loading validates it strictly: a missing field, a field of the wrong type
or an unknown field is an error naming the file, the field and what is expected.

    description = "..."
    threads = 0                       # 0 = runtime default
    batch_sizes = [1, 32]
    warmup_iterations = 50
    precisions = ["fp32", "fp16", "int8"]
    [runtimes.onnxruntime]            # optional table (at least one runtime)
    provider = "CPUExecutionProvider"
    [runtimes.openvino]               # optional table (at least one runtime)
    device = "CPU"
    [repetitions]
    min_iterations = 300
    min_seconds = 2.0
    [budget_ms]                       # p99 at batch 1, per task
    default = 5.0
    digits = 5.0

Optional fields (absent = the default in brackets; cpu-x86.toml uses none of them):

    arch = "aarch64"                  # host machine arch that counts as "this device" [any]
    static_shapes = true              # every model input/output dim must be fixed [false]
    requires_quantized = true         # only quantized (QDQ / FakeQuantize) models run [false]
    preferred_precisions = ["int8"]   # what to ship first, a subset of precisions [= precisions]
    quantization_preset = "arm64"     # how to quantize for it, see QUANTIZATION_PRESETS [none]
    [runtimes.onnxruntime]
    fallback_providers = ["CUDAExecutionProvider"]  # providers after `provider`, in order [none]
    [runtimes.onnxruntime.provider_options]          # passed to `provider` as strings [none]
    trt_fp16_enable = true
    [input_shapes]                    # per task: the static shapes the device is built for [none]
    digits = [[1, 1, 28, 28]]
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

KNOWN_PRECISIONS = ("fp32", "fp16", "int8")
RUNTIMES = {"onnxruntime": "provider", "openvino": "device"}  # runtime -> its target field
KNOWN_ARCHES = ("x86_64", "aarch64")  # platform.machine() spellings normalised by host_arch()
# Quantization presets a profile may name. The first six are optimum's AutoQuantizationConfig
# constructors (optimum.onnxruntime.configuration); "qnn-qdq-uint8" is onnxruntime's
# quantization.execution_providers.qnn.get_qnn_qdq_config with uint8 activations and weights
# (what QNN's HTP backend runs); "nncf-performance" / "nncf-mixed" are NNCF's QuantizationPreset
# values for OpenVINO IR (symmetric, or asymmetric activations with symmetric weights).
QUANTIZATION_PRESETS = ("arm64", "avx2", "avx512", "avx512_vnni", "ppc64le", "tensorrt",
                        "qnn-qdq-uint8", "nncf-performance", "nncf-mixed")
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}

_TOP_FIELDS = {
    "description": "a string",
    "threads": "an integer >= 0 (0 = runtime default)",
    "batch_sizes": "a non-empty list of distinct integers >= 1",
    "warmup_iterations": "an integer >= 0",
    "precisions": f"a non-empty list of distinct precisions from {list(KNOWN_PRECISIONS)}",
    "runtimes": f"a table with at least one of {list(RUNTIMES)}",
    "repetitions": "a table with min_iterations and min_seconds",
    "budget_ms": "a table of task = milliseconds (> 0), including 'default'",
}
_OPTIONAL_FIELDS = {
    "arch": f"one of {list(KNOWN_ARCHES)}",
    "static_shapes": "true or false",
    "requires_quantized": "true or false",
    "preferred_precisions": "a non-empty list of distinct precisions, each also in 'precisions'",
    "quantization_preset": f"one of {list(QUANTIZATION_PRESETS)}",
    "input_shapes": "a table of task = non-empty list of shapes (lists of integers >= 1)",
}
_RUNTIME_OPTIONAL = {
    "onnxruntime": {
        "fallback_providers": "a list of distinct execution provider names, other than 'provider'",
        "provider_options": "a table of option = string, integer, float or boolean",
    },
    "openvino": {},
}


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
    budgets_ms: dict[str, float] = field(default_factory=dict)  # includes "default"
    onnxruntime_provider: str | None = None
    openvino_device: str | None = None
    # optional fields (see the module docstring); defaults keep older profiles valid
    arch: str | None = None
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
        """Whether this host's machine arch is the profile's ``arch`` (always true without one)."""
        return self.arch is None or host_arch(machine) == self.arch

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


def list_profiles() -> list[str]:
    """Names of the profiles shipped in devices/profiles (file stems), sorted."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text
    if looks_like_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ProfileError(f"device profile file {path} does not exist")
        return path
    path = PROFILES_DIR / f"{text}.toml"
    if not path.is_file():
        known = ", ".join(list_profiles()) or "(none)"
        raise ProfileError(f"unknown device profile '{text}'; known profiles: {known} (in {PROFILES_DIR})")
    return path


def _type_name(value) -> str:
    return type(value).__name__


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float))) and not isinstance(value, bool)


class _Checker:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, field_name: str, expected: str, value=None, *, missing: bool = False) -> ProfileError:
        if missing:
            return ProfileError(f"{self.path}: missing field '{field_name}': expected {expected}")
        return ProfileError(
            f"{self.path}: field '{field_name}' must be {expected}, got {_type_name(value)} {value!r}"
        )

    def unknown(self, table: dict, allowed, where: str = "") -> None:
        extra = sorted(set(table) - set(allowed))
        if extra:
            names = ", ".join(f"'{where}{k}'" for k in extra)
            raise ProfileError(f"{self.path}: unknown field(s) {names}; allowed: {', '.join(sorted(allowed))}")

    def get(self, table: dict, key: str, expected: str, prefix: str = ""):
        if key not in table:
            raise self.fail(prefix + key, expected, missing=True)
        return table[key]

    def table(self, table: dict, key: str, expected: str, prefix: str = "") -> dict:
        value = self.get(table, key, expected, prefix)
        if not isinstance(value, dict):
            raise self.fail(prefix + key, expected, value)
        return value

    def int_at_least(self, table: dict, key: str, minimum: int, expected: str, prefix: str = "") -> int:
        value = self.get(table, key, expected, prefix)
        if not _is_int(value) or value < minimum:
            raise self.fail(prefix + key, expected, value)
        return value

    def string(self, table: dict, key: str, expected: str, prefix: str = "", nonempty: bool = True) -> str:
        value = self.get(table, key, expected, prefix)
        if not isinstance(value, str) or (nonempty and not value.strip()):
            raise self.fail(prefix + key, expected, value)
        return value


def load_profile(name_or_path: str | Path) -> Profile:
    """Load and validate a profile by name (``cpu-x86``) or by path to a .toml file."""
    path = _resolve(name_or_path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc

    c = _Checker(path)
    c.unknown(data, {**_TOP_FIELDS, **_OPTIONAL_FIELDS})

    description = c.string(data, "description", _TOP_FIELDS["description"], nonempty=False)
    threads = c.int_at_least(data, "threads", 0, _TOP_FIELDS["threads"])
    warmup = c.int_at_least(data, "warmup_iterations", 0, _TOP_FIELDS["warmup_iterations"])

    batch_sizes = c.get(data, "batch_sizes", _TOP_FIELDS["batch_sizes"])
    if (
        not isinstance(batch_sizes, list)
        or not batch_sizes
        or not all(_is_int(b) and b >= 1 for b in batch_sizes)
        or len(set(batch_sizes)) != len(batch_sizes)
    ):
        raise c.fail("batch_sizes", _TOP_FIELDS["batch_sizes"], batch_sizes)

    precisions = c.get(data, "precisions", _TOP_FIELDS["precisions"])
    if (
        not isinstance(precisions, list)
        or not precisions
        or not all(isinstance(p, str) and p in KNOWN_PRECISIONS for p in precisions)
        or len(set(precisions)) != len(precisions)
    ):
        raise c.fail("precisions", _TOP_FIELDS["precisions"], precisions)

    runtimes = c.table(data, "runtimes", _TOP_FIELDS["runtimes"])
    c.unknown(runtimes, RUNTIMES, "runtimes.")
    if not runtimes:
        raise c.fail("runtimes", _TOP_FIELDS["runtimes"], runtimes)
    targets: dict[str, str] = {}
    for runtime, target_key in RUNTIMES.items():
        if runtime not in runtimes:
            continue
        prefix = f"runtimes.{runtime}."
        section = c.table(runtimes, runtime, f"a table with '{target_key}'", "runtimes.")
        c.unknown(section, [target_key, *_RUNTIME_OPTIONAL[runtime]], prefix)
        what = "an onnxruntime execution provider name, e.g. 'CPUExecutionProvider'" if runtime == "onnxruntime" \
            else "an OpenVINO device name, e.g. 'CPU'"
        targets[runtime] = c.string(section, target_key, what, prefix)
        if runtime == "onnxruntime":
            fallbacks, provider_options = _onnxruntime_extras(c, section, targets[runtime], prefix)

    reps = c.table(data, "repetitions", _TOP_FIELDS["repetitions"])
    c.unknown(reps, ["min_iterations", "min_seconds"], "repetitions.")
    min_iterations = c.int_at_least(reps, "min_iterations", 1, "an integer >= 1", "repetitions.")
    min_seconds = c.get(reps, "min_seconds", "a number >= 0 (seconds)", "repetitions.")
    if not _is_number(min_seconds) or min_seconds < 0:
        raise c.fail("repetitions.min_seconds", "a number >= 0 (seconds)", min_seconds)

    budgets = c.table(data, "budget_ms", _TOP_FIELDS["budget_ms"])
    if "default" not in budgets:
        raise c.fail("budget_ms.default", "a number of milliseconds > 0", missing=True)
    budgets_ms: dict[str, float] = {}
    for task, ms in budgets.items():
        if not _is_number(ms) or ms <= 0:
            raise c.fail(f"budget_ms.{task}", "a number of milliseconds > 0", ms)
        budgets_ms[task] = float(ms)

    optional = _optional_fields(c, data, tuple(precisions))
    if "onnxruntime" in targets:
        optional.update(onnxruntime_fallback_providers=fallbacks, onnxruntime_provider_options=provider_options)

    return Profile(
        name=path.stem,
        path=path,
        description=description,
        threads=threads,
        batch_sizes=tuple(batch_sizes),
        warmup_iterations=warmup,
        min_iterations=min_iterations,
        min_seconds=float(min_seconds),
        precisions=tuple(precisions),
        budgets_ms=budgets_ms,
        onnxruntime_provider=targets.get("onnxruntime"),
        openvino_device=targets.get("openvino"),
        **optional,
    )


def _string_list(c: _Checker, value, field_name: str, expected: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) and v.strip() for v in value)
        or len(set(value)) != len(value)
    ):
        raise c.fail(field_name, expected, value)
    return tuple(value)


def _onnxruntime_extras(c: _Checker, section: dict, provider: str, prefix: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """fallback_providers and provider_options of [runtimes.onnxruntime] (both optional)."""
    expected = _RUNTIME_OPTIONAL["onnxruntime"]
    fallbacks: tuple[str, ...] = ()
    if "fallback_providers" in section:
        fallbacks = _string_list(c, section["fallback_providers"], prefix + "fallback_providers",
                                 expected["fallback_providers"])
        if provider in fallbacks:
            raise c.fail(prefix + "fallback_providers", expected["fallback_providers"], section["fallback_providers"])
    options: dict[str, str] = {}
    if "provider_options" in section:
        table = section["provider_options"]
        if not isinstance(table, dict):
            raise c.fail(prefix + "provider_options", expected["provider_options"], table)
        for key, value in table.items():
            if isinstance(value, bool):
                options[key] = "1" if value else "0"  # what onnxruntime's provider options parse
            elif isinstance(value, (str, int, float)):
                options[key] = str(value)
            else:
                raise c.fail(f"{prefix}provider_options.{key}", "a string, integer, float or boolean", value)
    return fallbacks, options


def _optional_fields(c: _Checker, data: dict, precisions: tuple[str, ...]) -> dict:
    """The optional top-level fields present in ``data``, validated, as Profile keyword arguments."""
    out: dict = {}
    if "arch" in data:
        value = data["arch"]
        if not isinstance(value, str) or value not in KNOWN_ARCHES:
            raise c.fail("arch", _OPTIONAL_FIELDS["arch"], value)
        out["arch"] = value
    for flag in ("static_shapes", "requires_quantized"):
        if flag in data:
            if not isinstance(data[flag], bool):
                raise c.fail(flag, _OPTIONAL_FIELDS[flag], data[flag])
            out[flag] = data[flag]
    if "preferred_precisions" in data:
        value = data["preferred_precisions"]
        preferred = _string_list(c, value, "preferred_precisions", _OPTIONAL_FIELDS["preferred_precisions"])
        if not preferred or any(p not in precisions for p in preferred):
            raise c.fail("preferred_precisions", _OPTIONAL_FIELDS["preferred_precisions"] + f" {list(precisions)}", value)
        out["preferred_precisions"] = preferred
    if "quantization_preset" in data:
        value = data["quantization_preset"]
        if not isinstance(value, str) or value not in QUANTIZATION_PRESETS:
            raise c.fail("quantization_preset", _OPTIONAL_FIELDS["quantization_preset"], value)
        out["quantization_preset"] = value
    if "input_shapes" in data:
        table = data["input_shapes"]
        if not isinstance(table, dict):
            raise c.fail("input_shapes", _OPTIONAL_FIELDS["input_shapes"], table)
        shapes: dict[str, tuple[tuple[int, ...], ...]] = {}
        for task, value in table.items():
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(s, list) and s and all(_is_int(d) and d >= 1 for d in s) for s in value)
            ):
                raise c.fail(f"input_shapes.{task}", "a non-empty list of shapes, each a non-empty list of integers >= 1",
                             value)
            shapes[task] = tuple(tuple(s) for s in value)
        out["input_shapes"] = shapes
    return out
