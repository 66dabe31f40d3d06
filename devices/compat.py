"""Will an exported model run on a device profile? Static shapes, operators and precision, checked.

    python -m devices.compat --profile qualcomm-npu --models exports/ [--profile ...] [--json out.json]

``check_model(profile, model_path)`` returns::

    {"model": "...", "profile": "qualcomm-npu", "runtime": "onnxruntime", "target": "QNNExecutionProvider",
     "precision": "int8", "ok": False,
     "checks": [{"check": "static_shapes", "ok": False, "reason": "..."},
                {"check": "operators", "ok": True, "reason": "...", "ops": [...], ...},
                {"check": "precision", "ok": True, "reason": "..."}]}

A model whose format the profile has no runtime for (an ONNX file on an OpenVINO-only profile)
gets one failing "runtime" check and ``"applicable": False``.

Operators are answered by the runtime itself where the target is present on this host
(onnxruntime creates a session on the profile's providers with CPU fallback disabled; OpenVINO's
``Core.query_model``); otherwise by the documented operator list of the target in
``devices/profiles/ops/<runtime>-<provider or device>.txt`` (each file says where its list comes
from). ONNX graphs are checked as onnxruntime hands them to an execution provider: after its
basic, provider-independent optimizations, with dynamic dimensions fixed first where the profile
needs static shapes (so shape arithmetic that folds away on the device is not counted).

Only numpy, the standard library and, lazily, onnx / onnxruntime / openvino: no torch.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from devices.profile import PROFILES_DIR, Profile, ProfileError, load_profile

OPS_DIR = PROFILES_DIR / "ops"
DEFAULT_DOMAIN = "ai.onnx"
CPU_PROVIDER = "CPUExecutionProvider"
RUNTIME_OF_SUFFIX = {".onnx": "onnxruntime", ".xml": "openvino"}

# ONNX operators that make a graph "quantized" (QDQ, QOperator or integer-op formats).
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
              "ConvInteger", "DynamicQuantizeLinear", "QLinearAdd", "QLinearMul", "MatMulNBits"}
# What a quantization preset requires of QDQ tensors (ONNX models only). tensorrt: TensorRT's
# parser takes Quantize/DequantizeLinear only with zero point 0, and INT8 as its quantized type
# (onnx-tensorrt operator matrix; optimum's tensorrt preset is symmetric int8 for both).
# qnn-qdq-uint8: QNN HTP operators take uint8/uint16 quantized data (QNN EP documentation).
_PRESET_RULES = {
    "tensorrt": {"types": {"int8"}, "zero_points": "zero"},
    "qnn-qdq-uint8": {"types": {"uint8", "uint16"}, "zero_points": "any"},
}
_OV_INT_TYPES = {"i8", "u8", "i4", "u4"}


class CompatError(ValueError):
    """A model file that cannot be inspected (missing, not a model, unreadable)."""


# --- documented operator lists -------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorList:
    """A target's documented operators: name -> condition ("" when none)."""

    path: Path
    ops: dict[str, str]

    def lookup(self, op: str) -> str | None:
        """The condition for ``op`` ("" if unconditional), or None when the list lacks it."""
        return self.ops.get(op)


def operator_list_path(runtime: str, target: str) -> Path:
    return OPS_DIR / f"{runtime}-{target}.txt"


def load_operator_list(runtime: str, target: str) -> OperatorList | None:
    """The documented list for an onnxruntime provider or OpenVINO device; None if there is none."""
    path = operator_list_path(runtime, target)
    if not path.is_file():
        return None
    ops: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, condition = line.partition("|")
        name = name.strip()
        if not name or " " in name:
            raise ValueError(f"{path}:{number}: expected an operator name, got {raw!r}")
        ops[name] = condition.strip()
    return OperatorList(path, ops)


# --- what a model file holds ----------------------------------------------------------------------


@dataclass
class ModelFacts:
    path: Path
    runtime: str
    metadata: dict[str, str]
    inputs: list[tuple[str, list]]    # (name, dims): int, or str/None where dynamic
    outputs: list[tuple[str, list]]
    quantized: bool | None = False  # None: unknown (no onnx package to read the graph)
    quant_types: set[str] = field(default_factory=set)  # element types of quantized tensors
    nonzero_zero_points: bool = False

    @property
    def dynamic(self) -> list[tuple[str, int, object]]:
        """(tensor, axis, dim) for every dimension that is not a fixed integer."""
        return [(name, axis, d) for name, dims in [*self.inputs, *self.outputs]
                for axis, d in enumerate(dims) if not isinstance(d, int)]


def _shape_text(dims: list) -> str:
    return "[" + ",".join(str(d) if isinstance(d, int) else (d or "?") for d in dims) + "]"


def _onnx_dims(value) -> list:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def _walk_nodes(graph):
    """Every node of an ONNX graph, subgraphs (If/Loop/Scan bodies) included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _walk_nodes(attr.g)
            for sub in attr.graphs:
                yield from _walk_nodes(sub)


def _load_onnx(path: Path):
    try:
        import onnx
    except ImportError:
        return None
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf decode errors have no common base class
        raise CompatError(f"{path}: not a readable ONNX model: {exc}") from exc


def _onnx_quantization(model) -> tuple[bool, set[str], bool]:
    """(quantized?, element types of quantized tensors, any non-zero zero point?) of an ONNX model."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    quantized, types, nonzero = False, set(), False
    for node in _walk_nodes(model.graph):
        if node.op_type not in _QUANT_OPS:
            continue
        quantized = True
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) >= 3 and node.input[2] in inits:
            zp = inits[node.input[2]]
            kind = helper.tensor_dtype_to_np_dtype(zp.data_type).name
            if kind == "int32":  # biases, which QDQ quantizers store as int32 with scale = x_scale * w_scale
                continue
            types.add(kind)
            if numpy_helper.to_array(zp).any():
                nonzero = True
    return quantized, types, nonzero


def inspect_model(path: str | Path) -> ModelFacts:
    """Shapes, metadata and quantization of an .onnx or OpenVINO .xml file."""
    path = Path(path)
    if not path.is_file():
        raise CompatError(f"{path}: model file not found")
    runtime = RUNTIME_OF_SUFFIX.get(path.suffix)
    if runtime is None:
        raise CompatError(f"{path}: unknown model format '{path.suffix}' (expected .onnx or .xml)")
    if runtime == "openvino":
        return _inspect_ir(path)
    model = _load_onnx(path)
    if model is None:  # no onnx package: what onnxruntime shows (no quantization details)
        return _inspect_onnx_with_ort(path)
    init_names = {i.name for i in model.graph.initializer}
    quantized, types, nonzero = _onnx_quantization(model)
    return ModelFacts(
        path=path, runtime=runtime,
        metadata={p.key: p.value for p in model.metadata_props},
        inputs=[(v.name, _onnx_dims(v)) for v in model.graph.input if v.name not in init_names],
        outputs=[(v.name, _onnx_dims(v)) for v in model.graph.output],
        quantized=quantized, quant_types=types, nonzero_zero_points=nonzero,
    )


def _ort_session(path: Path, providers: list[str], provider_options: list[dict] | None = None, **config):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(path), options, providers=providers, provider_options=provider_options)


def _inspect_onnx_with_ort(path: Path) -> ModelFacts:
    try:
        session = _ort_session(path, [CPU_PROVIDER])
    except Exception as exc:
        raise CompatError(f"{path}: onnxruntime cannot load this model: {exc}") from exc

    def dims(shape):
        return [d if isinstance(d, int) and d >= 0 else (d if isinstance(d, str) else None) for d in shape]

    return ModelFacts(
        path=path, runtime="onnxruntime", metadata=dict(session.get_modelmeta().custom_metadata_map),
        inputs=[(i.name, dims(i.shape)) for i in session.get_inputs()],
        outputs=[(o.name, dims(o.shape)) for o in session.get_outputs()],
        quantized=None,
    )


def _read_ir(path: Path):
    import openvino as ov

    try:
        return ov.Core().read_model(str(path))
    except Exception as exc:
        raise CompatError(f"{path}: OpenVINO cannot read this model: {exc}") from exc


def _inspect_ir(path: Path) -> ModelFacts:
    from devices.runtimes import _ir_model_info

    model = _read_ir(path)

    def dims(partial):
        return [d.get_length() if d.is_static else None for d in partial]

    quantized, types = False, set()
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            quantized = True
        elif kind == "Constant" and op.get_output_element_type(0).get_type_name() in _OV_INT_TYPES:
            if any(t.get_node().get_type_name() == "Convert" for t in op.output(0).get_target_inputs()):
                quantized = True  # compressed integer weights, dequantized by Convert (+ Multiply)
                types.add(op.get_output_element_type(0).get_type_name())
    return ModelFacts(
        path=path, runtime="openvino", metadata=_ir_model_info(model),
        inputs=[(i.get_any_name(), dims(i.get_partial_shape())) for i in model.inputs],
        outputs=[(_ov_name(o), dims(o.get_partial_shape())) for o in model.outputs],
        quantized=quantized, quant_types=types,
    )


def _ov_name(port) -> str:
    try:
        return port.get_any_name()
    except Exception:  # an output without tensor names
        return port.get_node().get_friendly_name()


# --- the checks -----------------------------------------------------------------------------------


def _static_fix(profile: Profile, facts: ModelFacts) -> dict[str, int]:
    """dim_param -> value used to make the graph static: from the profile's shapes for the model's
    task, else batch axes set to the profile's first batch size."""
    fix: dict[str, int] = {}
    task = facts.metadata.get("task")
    shapes = profile.shapes_for(task)
    if facts.inputs:
        name, dims = facts.inputs[0]
        for shape in shapes[:1]:
            if len(shape) == len(dims):
                for d, value in zip(dims, shape):
                    if isinstance(d, str):
                        fix.setdefault(d, value)
    for _, dims in [*facts.inputs, *facts.outputs]:
        if dims and isinstance(dims[0], str):
            fix.setdefault(dims[0], profile.batch_sizes[0])
    return fix


def _static_input_shape(profile: Profile, facts: ModelFacts) -> list[int] | None:
    """The first input's shape made static: the profile's shape for the task where one fits,
    else the batch axis set to the profile's first batch size; None if that leaves it dynamic."""
    dims = facts.inputs[0][1]
    for shape in profile.shapes_for(facts.metadata.get("task")):
        if len(shape) == len(dims) and all(not isinstance(d, int) or d == v for d, v in zip(dims, shape)):
            return list(shape)
    static = [profile.batch_sizes[0] if (i == 0 and not isinstance(d, int)) else d for i, d in enumerate(dims)]
    return static if all(isinstance(d, int) for d in static) else None


def check_static_shapes(profile: Profile, facts: ModelFacts) -> dict:
    shapes = "; ".join(f"{n} {_shape_text(d)}" for n, d in [*facts.inputs, *facts.outputs])
    task = facts.metadata.get("task")
    wanted = profile.shapes_for(task)
    problems = []
    if profile.static_shapes and facts.dynamic:
        dyn = ", ".join(f"'{n}' axis {a} ({d or '?'})" for n, a, d in facts.dynamic)
        fix = _static_fix(profile, facts)
        named = [(k, v) for k, v in fix.items() if k]
        example = " ".join(f"--dim_param {k} --dim_value {v}" for k, v in named[:1]) or "--input_name NAME --input_shape ..."
        how = (f"fix them before deploying, e.g. python -m onnxruntime.tools.make_dynamic_shape_fixed {example} "
               "model.onnx model.static.onnx" if facts.runtime == "onnxruntime"
               else "reshape the IR to a fixed shape (openvino Model.reshape) and save it again")
        problems.append(f"profile '{profile.name}' needs static shapes but these dimensions are dynamic: {dyn}; {how}")
    if wanted and facts.inputs:
        name, dims = facts.inputs[0]
        for shape in wanted:
            if len(shape) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape)):
                problems.append(f"input '{name}' {_shape_text(dims)} cannot take the profile's shape "
                                f"{list(shape)} for task '{task}'")
    if problems:
        return {"check": "static_shapes", "ok": False, "reason": "; ".join(problems)}
    if profile.static_shapes:
        reason = f"all dimensions fixed ({shapes})"
    else:
        reason = f"profile '{profile.name}' accepts dynamic shapes ({shapes})"
    if wanted:
        reason += f"; fits the profile's shapes for task '{task}': {[list(s) for s in wanted]}"
    return {"check": "static_shapes", "ok": True, "reason": reason}


def _onnx_ops_as_deployed(facts: ModelFacts, fix: dict[str, int]) -> tuple[list[str], str]:
    """Operator names ("domain:Op") of the graph onnxruntime hands to a provider, and how it was read."""
    import onnx

    model = onnx.load(str(facts.path))
    how = "graph as exported"
    if fix:
        for value in [*model.graph.input, *model.graph.output]:
            for d in value.type.tensor_type.shape.dim:
                if d.dim_param in fix:
                    value = fix[d.dim_param]
                    d.Clear()
                    d.dim_value = value
        del model.graph.value_info[:]  # recomputed from the fixed dims
        how = "graph with " + ", ".join(f"{k}={v}" for k, v in fix.items())
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        with tempfile.TemporaryDirectory(prefix="compat-") as tmp:
            src, dst = Path(tmp) / "in.onnx", Path(tmp) / "basic.onnx"
            onnx.save(model, str(src))
            options = ort.SessionOptions()
            options.log_severity_level = 3
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(dst)
            try:
                ort.InferenceSession(str(src), options, providers=[CPU_PROVIDER])
                model = onnx.load(str(dst))
                how += " after onnxruntime's basic optimizations"
            except Exception:  # a graph the CPU EP cannot load: judge the graph as it is
                pass
    ops = sorted({f"{n.domain or DEFAULT_DOMAIN}:{n.op_type}" for n in _walk_nodes(model.graph)})
    return ops, how


def _short(op: str) -> str:
    return op.split(":", 1)[1] if op.startswith(DEFAULT_DOMAIN + ":") else op


def _against_lists(ops: list[str], chain: list[tuple[str, OperatorList | None]]) -> tuple[list[str], dict, dict]:
    """Assign each op to the first target in ``chain`` whose list has it.

    Returns (unsupported ops, {op: condition} for conditional ones, {target: [ops]} beyond the first).
    """
    unsupported, conditions, fallback = [], {}, {}
    for op in ops:
        for index, (target, listing) in enumerate(chain):
            condition = listing.lookup(op) if listing is not None else None
            if condition is None:
                continue
            if condition:
                conditions[_short(op)] = condition
            if index:
                fallback.setdefault(target, []).append(_short(op))
            break
        else:
            unsupported.append(_short(op))
    return unsupported, conditions, fallback


def _ort_runtime_answer(profile: Profile, path: Path, providers: list[str]) -> tuple[bool, str]:
    """Create a session on the profile's providers (no silent CPU fallback): does it load?"""
    options = [dict(profile.onnxruntime_provider_options) if p == profile.onnxruntime_provider else {}
               for p in providers]
    config = {} if CPU_PROVIDER in providers else {"session.disable_cpu_ep_fallback": "1"}
    try:
        _ort_session(path, providers, options, **config)
    except Exception as exc:
        return False, str(exc).strip().splitlines()[0][:500]
    return True, ""


def check_operators_onnx(profile: Profile, facts: ModelFacts) -> dict:
    providers = list(profile.onnxruntime_providers)
    try:
        import onnxruntime as ort

        available = set(ort.get_available_providers())
    except ImportError:
        available = set()
    here = [p for p in providers if p in available]
    base = {"check": "operators", "target": providers}
    try:
        import onnx  # noqa: F401
    except ImportError:
        ops, how = [], ""
    else:
        ops, how = _onnx_ops_as_deployed(facts, _static_fix(profile, facts) if profile.static_shapes else {})
    base.update(ops=[_short(o) for o in ops])

    if here == providers:  # every provider is on this host: ask onnxruntime
        ok, error = _ort_runtime_answer(profile, facts.path, providers)
        host = "this host's onnxruntime " + ort.__version__
        if ok:
            n = f"all {len(ops)} operator types" if ops else "every operator"
            return {**base, "ok": True, "source": "runtime",
                    "reason": f"{n} accepted by {' > '.join(providers)} ({host}, session created without CPU fallback)"}
        return {**base, "ok": False, "source": "runtime",
                "reason": f"{' > '.join(providers)} rejected the model ({host}): {error}"}

    if not ops:
        return {**base, "ok": False, "source": None,
                "reason": "the onnx package is not installed here, so the graph's operators cannot be listed "
                          f"for {', '.join(p for p in providers if p not in here)}, which this host lacks"}
    chain = [(p, load_operator_list("onnxruntime", p)) for p in providers]
    unsupported, conditions, fallback = _against_lists(ops, chain)
    sources = [str(listing.path.relative_to(PROFILES_DIR.parent.parent)) for _, listing in chain if listing]
    result = {**base, "source": sources, "graph": how}
    if conditions:
        result["conditions"] = conditions
    if fallback:
        result["fallback"] = fallback
    unlisted = [p for p, listing in chain if listing is None]
    if unsupported:
        missing = f"; no operator list is documented here for {', '.join(unlisted)}" if unlisted else ""
        return {**result, "ok": False, "unsupported": unsupported,
                "reason": f"not in the documented operator list of {' > '.join(providers)}: "
                          f"{', '.join(unsupported)} ({how}){missing}"}
    reason = f"all {len(ops)} operator types are in the documented list of {providers[0]} ({how})"
    if fallback:
        reason += "; run by fallbacks: " + "; ".join(f"{t}: {', '.join(o)}" for t, o in fallback.items())
    if conditions:
        reason += "; conditions to verify: " + "; ".join(f"{op}: {c}" for op, c in conditions.items())
    return {**result, "ok": True, "reason": reason}


def check_operators_ir(profile: Profile, facts: ModelFacts) -> dict:
    import openvino as ov

    device = profile.openvino_device
    model = _read_ir(facts.path)
    if profile.static_shapes and facts.dynamic and len(facts.inputs) == 1:
        static = _static_input_shape(profile, facts)
        if static is not None:
            try:  # judge what the device would compile: the reshaped, static model
                model.reshape({model.inputs[0]: ov.PartialShape(static)})
            except Exception:
                pass
    ops = sorted({op.get_type_name() for op in model.get_ordered_ops()})
    base = {"check": "operators", "target": [device], "ops": ops}
    core = ov.Core()
    if device in core.available_devices:
        supported = core.query_model(model, device)
        missing = sorted({op.get_type_name() for op in model.get_ordered_ops()
                          if op.get_friendly_name() not in supported})
        host = f"this host's OpenVINO {ov.get_version().split('-')[0]} query_model"
        if missing:
            return {**base, "ok": False, "source": "runtime", "unsupported": missing,
                    "reason": f"OpenVINO device {device} does not support: {', '.join(missing)} ({host})"}
        return {**base, "ok": True, "source": "runtime",
                "reason": f"all {len(ops)} operation types supported by OpenVINO device {device} ({host})"}
    listing = load_operator_list("openvino", device)
    if listing is None:
        return {**base, "ok": False, "source": None,
                "reason": f"OpenVINO device {device} is not on this host and no operator list is documented "
                          f"for it ({operator_list_path('openvino', device)} does not exist)"}
    unsupported, conditions, _ = _against_lists(ops, [(device, listing)])
    source = str(listing.path.relative_to(PROFILES_DIR.parent.parent))
    result = {**base, "source": [source]}
    if conditions:
        result["conditions"] = conditions
    if unsupported:
        return {**result, "ok": False, "unsupported": unsupported,
                "reason": f"not in the documented operation list of OpenVINO device {device}: {', '.join(unsupported)}"}
    reason = f"all {len(ops)} operation types are in the documented list of OpenVINO device {device}"
    if conditions:
        reason += "; conditions to verify: " + "; ".join(f"{op}: {c}" for op, c in conditions.items())
    return {**result, "ok": True, "reason": reason}


def check_precision(profile: Profile, facts: ModelFacts, label: str) -> dict:
    problems = []
    if label not in profile.precisions:
        problems.append(f"model precision '{label}' is not one the profile runs {list(profile.precisions)}")
    known = facts.quantized is not None
    if known and label == "int8" and not facts.quantized:
        problems.append("the model is labelled int8 but its graph has no quantization (QDQ / FakeQuantize) nodes")
    if known and label in ("fp32", "fp16") and facts.quantized:
        problems.append(f"the model is labelled {label} but its graph is quantized")
    if profile.requires_quantized and not (facts.quantized or (not known and label == "int8")):
        problems.append(f"profile '{profile.name}' runs quantized models only and this graph is not quantized")
    rules = _PRESET_RULES.get(profile.quantization_preset or "")
    if rules and facts.quantized and facts.runtime == "onnxruntime":
        wrong = sorted(facts.quant_types - rules["types"])
        if wrong:
            problems.append(f"quantized tensors include {', '.join(wrong)} but the target takes "
                            f"{'/'.join(sorted(rules['types']))} (quantize with preset '{profile.quantization_preset}')")
        if rules["zero_points"] == "zero" and facts.nonzero_zero_points:
            problems.append("quantization is asymmetric (non-zero zero points) but the target needs zero points "
                            f"of 0 (quantize with preset '{profile.quantization_preset}')")
    if problems:
        return {"check": "precision", "ok": False, "precision": label, "reason": "; ".join(problems)}
    detail = "" if known else " (graph not inspected: the onnx package is not installed)"
    if facts.quantized:
        detail = " (quantized" + (f": {', '.join(sorted(facts.quant_types))}" if facts.quant_types else "") + ")"
    reason = f"'{label}'{detail} is one of the profile's precisions {list(profile.precisions)}"
    if profile.preferred_precisions and profile.preferred_precisions[0] != label:
        reason += f"; the profile prefers {profile.preferred_precisions[0]}"
    return {"check": "precision", "ok": True, "precision": label, "reason": reason}


def _as_profile(profile: Profile | str | Path) -> Profile:
    return profile if isinstance(profile, Profile) else load_profile(profile)


def check_model(profile: Profile | str | Path, model_path: str | Path, *, display_name: str | None = None) -> dict:
    """Check one exported model against a profile; see the module docstring for the result."""
    from devices.run import precision_of

    profile = _as_profile(profile)
    path = Path(model_path)
    facts = inspect_model(path)
    name = display_name or str(path)
    label = precision_of(facts.metadata, name)
    result = {"model": name, "profile": profile.name, "runtime": facts.runtime,
              "target": profile.runtimes.get(facts.runtime), "precision": label}
    if facts.runtime not in profile.runtimes:
        offered = ", ".join(f"{k} ({v})" for k, v in profile.runtimes.items())
        kind = "ONNX" if facts.runtime == "onnxruntime" else "OpenVINO IR"
        check = {"check": "runtime", "ok": False,
                 "reason": f"profile '{profile.name}' has no {facts.runtime} runtime for this {kind} model "
                           f"(it offers {offered})"}
        return {**result, "applicable": False, "ok": False, "checks": [check]}
    if facts.runtime == "onnxruntime":
        operators = check_operators_onnx(profile, facts)
    else:
        operators = check_operators_ir(profile, facts)
    checks = [check_static_shapes(profile, facts), operators, check_precision(profile, facts, label)]
    return {**result, "applicable": True, "ok": all(c["ok"] for c in checks), "checks": checks}


def check_all(profile: Profile | str | Path, models_dir: str | Path) -> list[dict]:
    """check_model for every .onnx and OpenVINO IR .xml under a folder (model names relative to it)."""
    from devices.run import find_models, is_openvino_ir

    profile = _as_profile(profile)
    root = Path(models_dir)
    results = []
    for path in find_models(root, profile.name):
        if path.suffix == ".xml" and not is_openvino_ir(path):
            continue
        results.append(check_model(profile, path, display_name=path.relative_to(root).as_posix()))
    return results


def format_results(results: list[dict]) -> str:
    lines = []
    for r in results:
        verdict = "ok" if r["ok"] else ("n/a" if not r.get("applicable", True) else "FAIL")
        lines.append(f"{r['profile']:<14} {verdict:<5} {r['model']}")
        for c in r["checks"]:
            if not c["ok"] or r["ok"]:
                lines.append(f"    {c['check']:<14} {'ok ' if c['ok'] else 'no '} {c['reason']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.compat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="append", required=True,
                        help="profile name or .toml path (repeat for several)")
    parser.add_argument("--models", required=True, help="a model file, or a folder searched for *.onnx / *.xml")
    parser.add_argument("--json", default=None, help="also write all results to this JSON file")
    args = parser.parse_args(argv)
    try:
        results = []
        for name in args.profile:
            profile = load_profile(name)
            target = Path(args.models)
            results += check_all(profile, target) if target.is_dir() else [check_model(profile, target)]
    except (ProfileError, CompatError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_results(results))
    if args.json:
        _write_atomically(Path(args.json), json.dumps(results, indent=2) + "\n")
    return 0


def _write_atomically(path: Path, text: str) -> None:
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name + ".", suffix=".tmp", delete=False) as fh:
        fh.write(text)
    os.replace(fh.name, path)


if __name__ == "__main__":
    sys.exit(main())
