"""Operations of an OpenVINO IR on the profile's device: OpenVINO's ``query_model`` where the device is on
this host, else the device's documented list. A static-shape device is judged on the reshaped model."""
from __future__ import annotations

from devices.compat.facts import ModelFacts, read_ir
from devices.compat.op_lists import against_lists, conditions_text, load_operator_list, operator_list_path
from devices.compat.shapes import static_input_shape
from devices.profile import Profile


def _as_compiled(profile: Profile, facts: ModelFacts):
    """The model as the device would compile it: reshaped to a static input where the profile needs one."""
    import openvino as ov

    model = read_ir(facts.path)
    if profile.static_shapes and facts.dynamic and len(facts.inputs) == 1:
        static = static_input_shape(profile, facts)
        if static is not None:
            try:
                model.reshape({model.inputs[0]: ov.PartialShape(static)})
            except Exception:  # a graph that does not reshape: judge it as it is
                pass
    return model


def check_operators_ir(profile: Profile, facts: ModelFacts) -> dict:
    import openvino as ov

    device = profile.openvino_device
    model = _as_compiled(profile, facts)
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
    unsupported, conditions, _ = against_lists(ops, [(device, listing)])
    result = {**base, "source": [listing.source]}
    if conditions:
        result["conditions"] = conditions
    if unsupported:
        return {**result, "ok": False, "unsupported": unsupported,
                "reason": f"not in the documented operation list of OpenVINO device {device}: {', '.join(unsupported)}"}
    reason = f"all {len(ops)} operation types are in the documented list of OpenVINO device {device}"
    return {**result, "ok": True, "reason": reason + conditions_text(conditions)}
