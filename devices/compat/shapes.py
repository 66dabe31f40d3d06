"""Static shapes: does every dimension a static-shape target needs fixed have a value, and does the
model take the shapes the profile lists for its task?"""
from __future__ import annotations

from devices.compat.facts import ModelFacts, shape_text
from devices.profile import Profile


def static_fix(profile: Profile, facts: ModelFacts) -> dict[str, int]:
    """dim_param -> value used to make the graph static: from the profile's shapes for the model's
    task, else batch axes set to the profile's first batch size."""
    fix: dict[str, int] = {}
    shapes = profile.shapes_for(facts.metadata.get("task"))
    if facts.inputs:
        _, dims = facts.inputs[0]
        for shape in shapes[:1]:
            if len(shape) == len(dims):
                for d, value in zip(dims, shape):
                    if isinstance(d, str):
                        fix.setdefault(d, value)
    for _, dims in [*facts.inputs, *facts.outputs]:
        if dims and isinstance(dims[0], str):
            fix.setdefault(dims[0], profile.batch_sizes[0])
    return fix


def static_input_shape(profile: Profile, facts: ModelFacts) -> list[int] | None:
    """The first input's shape made static: the profile's shape for the task where one fits,
    else the batch axis set to the profile's first batch size; None if that leaves it dynamic."""
    dims = facts.inputs[0][1]
    for shape in profile.shapes_for(facts.metadata.get("task")):
        if len(shape) == len(dims) and all(not isinstance(d, int) or d == v for d, v in zip(dims, shape)):
            return list(shape)
    static = [profile.batch_sizes[0] if (i == 0 and not isinstance(d, int)) else d for i, d in enumerate(dims)]
    return static if all(isinstance(d, int) for d in static) else None


def _how_to_fix(profile: Profile, facts: ModelFacts) -> str:
    if facts.runtime != "onnxruntime":
        return "reshape the IR to a fixed shape (openvino Model.reshape) and save it again"
    named = [(k, v) for k, v in static_fix(profile, facts).items() if k]
    example = " ".join(f"--dim_param {k} --dim_value {v}" for k, v in named[:1]) or "--input_name NAME --input_shape ..."
    return (f"fix them before deploying, e.g. python -m onnxruntime.tools.make_dynamic_shape_fixed {example} "
            "model.onnx model.static.onnx")


def check_static_shapes(profile: Profile, facts: ModelFacts) -> dict:
    shapes = "; ".join(f"{n} {shape_text(d)}" for n, d in [*facts.inputs, *facts.outputs])
    task = facts.metadata.get("task")
    wanted = profile.shapes_for(task)
    problems = []
    if profile.static_shapes and facts.dynamic:
        dyn = ", ".join(f"'{n}' axis {a} ({d or '?'})" for n, a, d in facts.dynamic)
        problems.append(f"profile '{profile.name}' needs static shapes but these dimensions are dynamic: {dyn}; "
                        + _how_to_fix(profile, facts))
    if wanted and facts.inputs:
        name, dims = facts.inputs[0]
        for shape in wanted:
            if len(shape) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape)):
                problems.append(f"input '{name}' {shape_text(dims)} cannot take the profile's shape "
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
