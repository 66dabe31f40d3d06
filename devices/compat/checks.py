"""One model against one profile: the runtime first (does the profile run this format at all?), then
static shapes, operators and precision."""
from __future__ import annotations

from pathlib import Path

from devices.compat.facts import CompatError, NotCheckable, inspect_model
from devices.compat.onnx_ops import check_operators_onnx
from devices.compat.openvino_ops import check_operators_ir
from devices.compat.precision import check_precision
from devices.compat.shapes import check_static_shapes
from devices.model_files import FORMAT_OF_RUNTIME, find_models, runtime_of
from devices.profile import Profile, load_profile, precision_of

PASSED, FAILED, NOT_APPLICABLE, NOT_CHECKABLE = "ok", "FAIL", "n/a", "skip"


def verdict(result: dict) -> str:
    """ok, FAIL, n/a (the profile has no runtime for the model's format) or skip (this host cannot read
    the model's format, or lacks what a check needs and no other check failed); only FAIL is a model
    failing a check."""
    if not result.get("applicable", True):
        return NOT_APPLICABLE
    if not result.get("checkable", True):
        return NOT_CHECKABLE
    return PASSED if result["ok"] else FAILED


def _as_profile(profile: Profile | str | Path) -> Profile:
    return profile if isinstance(profile, Profile) else load_profile(profile)


def check_model(profile: Profile | str | Path, model_path: str | Path, *, display_name: str | None = None) -> dict:
    """Check one exported model against a profile; see the package docstring for the result."""
    profile = _as_profile(profile)
    path = Path(model_path)
    name = display_name or str(path)
    try:
        facts, unreadable = inspect_model(path), None
    except NotCheckable as exc:  # the format's reader is not installed: the runtime check still applies
        facts, unreadable = None, str(exc)
    runtime = runtime_of(path)
    result = {"model": name, "profile": profile.name, "runtime": runtime,
              "target": profile.runtimes.get(runtime), "precision": precision_of(facts.metadata if facts else {}, name)}
    if runtime not in profile.runtimes:
        offered = ", ".join(f"{k} ({v})" for k, v in profile.runtimes.items())
        check = {"check": "runtime", "ok": False,
                 "reason": f"profile '{profile.name}' has no {runtime} runtime for this {FORMAT_OF_RUNTIME[runtime]} "
                           f"model (it offers {offered})"}
        return {**result, "applicable": False, "ok": False, "checks": [check]}
    if facts is None:
        return {**result, "applicable": True, "checkable": False, "ok": None,
                "checks": [{"check": "runtime", "ok": None, "reason": unreadable}]}
    operators = check_operators_onnx if runtime == "onnxruntime" else check_operators_ir
    checks = [check_static_shapes(profile, facts), operators(profile, facts),
              check_precision(profile, facts, result["precision"])]
    # a check this host cannot make (ok None) is no failure; the model is then only partly checked
    ok = False if any(c["ok"] is False for c in checks) else None if any(c["ok"] is None for c in checks) else True
    return {**result, "applicable": True, **({"checkable": False} if ok is None else {}), "ok": ok, "checks": checks}


def check_all(profile: Profile | str | Path, models_dir: str | Path) -> list[dict]:
    """check_model for every .onnx and OpenVINO IR .xml under a folder (model names relative to it)."""
    profile = _as_profile(profile)
    root = Path(models_dir)
    return [_checked(profile, path, path.relative_to(root).as_posix()) for path in find_models(root, profile.name)]


def _checked(profile: Profile, path: Path, name: str) -> dict:
    """check_model, with an unreadable model as a failed "readable" check, so one corrupt file does not
    stop the checks of the others."""
    try:
        return check_model(profile, path, display_name=name)
    except CompatError as exc:
        runtime = runtime_of(path)
        return {"model": name, "profile": profile.name, "runtime": runtime, "target": profile.runtimes.get(runtime),
                "precision": None, "applicable": True, "ok": False,
                "checks": [{"check": "readable", "ok": False, "reason": str(exc)[:500]}]}
