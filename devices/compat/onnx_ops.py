"""Operators of an ONNX model on the profile's onnxruntime providers.

Answered by onnxruntime itself where every provider is on this host (a session created with CPU
fallback disabled); otherwise by the providers' documented lists, for the graph as onnxruntime hands
it to a provider: after its basic, provider-independent optimizations, with dynamic dimensions fixed
first where the profile needs static shapes (so shape arithmetic that folds away is not counted).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from devices.compat.facts import CPU_PROVIDER, ModelFacts, ort_session, walk_nodes
from devices.compat.op_lists import DEFAULT_DOMAIN, against_lists, conditions_text, load_operator_list, short_name
from devices.compat.shapes import static_fix
from devices.profile import Profile


def _fixed(model, fix: dict[str, int]) -> None:
    """Set the named dynamic dimensions of a model's inputs and outputs, in place."""
    for value in [*model.graph.input, *model.graph.output]:
        for d in value.type.tensor_type.shape.dim:
            if d.dim_param in fix:
                size = fix[d.dim_param]
                d.Clear()
                d.dim_value = size
    del model.graph.value_info[:]  # recomputed from the fixed dims


def _basic_optimized(model):
    """The graph after onnxruntime's basic optimizations, or None where the CPU provider cannot load it."""
    import onnx

    try:
        import onnxruntime as ort
    except ImportError:
        return None
    with tempfile.TemporaryDirectory(prefix="compat-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "basic.onnx"
        onnx.save(model, str(src))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(dst)
        try:
            ort.InferenceSession(str(src), options, providers=[CPU_PROVIDER])
        except Exception:  # a graph the CPU EP cannot load: judge the graph as it is
            return None
        return onnx.load(str(dst))


def ops_as_deployed(facts: ModelFacts, fix: dict[str, int]) -> tuple[list[str], str]:
    """Operator names ("domain:Op") of the graph onnxruntime hands to a provider, and how it was read."""
    import onnx

    model = onnx.load(str(facts.path))
    how = "graph as exported"
    if fix:
        _fixed(model, fix)
        how = "graph with " + ", ".join(f"{k}={v}" for k, v in fix.items())
    optimized = _basic_optimized(model)
    if optimized is not None:
        model = optimized
        how += " after onnxruntime's basic optimizations"
    ops = sorted({f"{n.domain or DEFAULT_DOMAIN}:{n.op_type}" for n in walk_nodes(model.graph)})
    return ops, how


def _runtime_answer(profile: Profile, path: Path, providers: list[str]) -> tuple[bool, str]:
    """Create a session on the profile's providers (no silent CPU fallback): does it load?"""
    options = [dict(profile.onnxruntime_provider_options) if p == profile.onnxruntime_provider else {}
               for p in providers]
    config = {} if CPU_PROVIDER in providers else {"session.disable_cpu_ep_fallback": "1"}
    try:
        ort_session(path, providers, options, **config)
    except Exception as exc:
        return False, str(exc).strip().splitlines()[0][:500]
    return True, ""


def _listed_ops(profile: Profile, facts: ModelFacts) -> tuple[list[str], str]:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return [], ""
    return ops_as_deployed(facts, static_fix(profile, facts) if profile.static_shapes else {})


def check_operators_onnx(profile: Profile, facts: ModelFacts) -> dict:
    providers = list(profile.onnxruntime_providers)
    try:
        import onnxruntime as ort

        available = set(ort.get_available_providers())
    except ImportError:
        available = set()
    here = [p for p in providers if p in available]
    ops, how = _listed_ops(profile, facts)
    base = {"check": "operators", "target": providers, "ops": [short_name(o) for o in ops]}

    if here == providers:  # every provider is on this host: ask onnxruntime
        ok, error = _runtime_answer(profile, facts.path, providers)
        host = "this host's onnxruntime " + ort.__version__
        if ok:
            n = f"all {len(ops)} operator types" if ops else "every operator"
            return {**base, "ok": True, "source": "runtime",
                    "reason": f"{n} accepted by {' > '.join(providers)} ({host}, session created without CPU fallback)"}
        return {**base, "ok": False, "source": "runtime",
                "reason": f"{' > '.join(providers)} rejected the model ({host}): {error}"}

    if not ops:  # not a failure of the model: this host cannot tell (ok None, "not checked here")
        return {**base, "ok": None, "source": None,
                "reason": "not checked here: the onnx package is not installed, so the graph's operators cannot be "
                          f"listed for {', '.join(p for p in providers if p not in here)}, which this host lacks"}
    chain = [(p, load_operator_list("onnxruntime", p)) for p in providers]
    unsupported, conditions, fallback = against_lists(ops, chain)
    result = {**base, "source": [listing.source for _, listing in chain if listing], "graph": how}
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
    return {**result, "ok": True, "reason": reason + conditions_text(conditions)}
