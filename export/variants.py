"""Per-device deployment variants: what a device profile needs beyond the standard exports.

    prepare_for_profile(profile, export_dir, calibration, task) -> [entry, ...]
    evaluate_targets(export_dir, entries, x_test, reference_outputs, score) -> {path: metrics}
    prepare_profiles(names, export_dir, calibration, task, x_test, reference_outputs, score): both, for
        every profile, listed in targets/manifest.json

The standard exports (export/standard.py) serve a profile as they are when it takes dynamic shapes and
names no quantization preset. Everything else is written under ``export_dir/targets/<profile>/`` with the
standard layout:

    model.onnx                  fp32, static shape              (onnxruntime; static profiles)
    model.int8.onnx             INT8 QDQ with the profile's preset, static if the profile is
    openvino/{fp32,fp16}/       static-shape IR                 (openvino; static profiles)
    openvino-int8/model.xml     NNCF INT8 with the profile's preset, on the static IR if static

Only precisions in ``profile.precisions`` are written; a precision the standard exports already
serve is not copied. Each file keeps the source metadata, with "precision", "target_profile",
"input_shape" (the fixed shape, for static variants) and, for INT8, "quantizer" and "preset".
Presets map to quantizers in export/quantize/presets.py; a runtime whose profile names none of its
presets gets the project's default quantizer. When the standard openvino-int8 was quantized with the
profile's NNCF preset, it is reused (reshaped for a static profile) instead: NNCF's statistics do not
depend on the batch size. Static shapes: export/static_shapes.py.

The target folder is built in a scratch folder and swapped in whole, so no stale variant of an
earlier run stays next to the new ones.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from devices.io import scratch_dir, write_json
from devices.model_files import TARGETS_DIR
from export.metadata import get_ir_metadata, read_ir, read_metadata, set_ir_metadata, write_metadata
from export.quantize.calibration import fit_to_batch
from export.quantize.onnx import onnx_input
from export.quantize.presets import quantizer_for, runtime_preset
from export.standard import IR_FILES, ONNX_FILES
from export.static_shapes import ONNX_ROUTE as STATIC_ONNX_ROUTE
from export.static_shapes import make_static_onnx, reshape_ir, static_input_shape


def prepare_for_profile(profile, export_dir: str | Path, calibration: np.ndarray, task: str, *,
                        per_channel: bool = True) -> list[dict]:
    """Write the variants `profile` needs under export_dir/targets/<profile name>/; one entry each.

    profile: a devices.profile.Profile or a profile name / .toml path. export_dir holds the
    standard exports (model.onnx, openvino/fp32/model.xml). calibration: inputs as the model
    takes them (N, ...), N a multiple of a static batch (extra samples are dropped). per_channel:
    per-channel weights for the onnxruntime quantizers. Each entry: {"profile", "path" (relative to
    export_dir, POSIX), "runtime", "precision", "static_shape", "input_shape", "quantizer",
    "preset", "route"} ("quantizer"/"preset" are None for float variants). An empty list: the
    standard exports already are what the profile runs.
    """
    from devices.profile import Profile, load_profile

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    export_dir = Path(export_dir)
    final = export_dir / TARGETS_DIR / profile.name
    plans = _plan(profile)
    if not plans:
        if final.is_dir():
            shutil.rmtree(final)
        return []

    source_onnx = export_dir / ONNX_FILES["fp32"]
    metadata = read_metadata(source_onnx)  # rejects a missing or unreadable export, naming it
    _, dims = onnx_input(source_onnx)
    shape = static_input_shape(profile, task, dims) if profile.static_shapes else None
    calibration = fit_to_batch(calibration, dims, shape[0] if shape else None, str(source_onnx))
    common = {"target_profile": profile.name}
    if shape is not None and "input_shape" in metadata:
        common["input_shape"] = list(shape)

    entries = []
    with scratch_dir(final.parent) as tmp:
        build = tmp / "build"
        build.mkdir()
        onnx_source = source_onnx
        if shape is not None and any(p["runtime"] == "onnxruntime" for p in plans):
            onnx_source = make_static_onnx(source_onnx, tmp / "static.onnx", shape)
        for plan in sorted(plans, key=lambda p: p["runtime"] != "onnxruntime"):  # ONNX first, then IR
            if plan["runtime"] == "onnxruntime":
                dst = build / ONNX_FILES[plan["precision"]]
                route, quantizer = _onnx_variant(plan, onnx_source, dst, calibration, per_channel, common)
                if shape is not None:
                    route = STATIC_ONNX_ROUTE if quantizer is None else f"{STATIC_ONNX_ROUTE}, then {route}"
            else:
                dst = build / IR_FILES[plan["precision"]]
                route, quantizer = _openvino_variant(plan, export_dir / IR_FILES["fp32"], dst, shape, calibration,
                                                     common, tmp)
            entries.append(_entry(profile, plan, export_dir, final / dst.relative_to(build), shape, route, quantizer))
        if final.exists():  # swap the new folder in whole; the old one moves aside first
            os.replace(final, tmp / "previous")
        os.replace(build, final)
    return entries


def evaluate_targets(export_dir: str | Path, entries: Sequence[Mapping], x_test: np.ndarray,
                     reference_outputs: list[np.ndarray], score) -> dict[str, dict]:
    """Task metric (`score`, see export.scoring), size and agreement with `reference_outputs` of every
    variant, keyed by its path.

    Measured on this host's CPU (onnxruntime CPUExecutionProvider, OpenVINO CPU), which runs every
    variant written here, the device's own runtime absent; "measured_with" says which. A variant
    that fails to run gets {"error": ...} instead of numbers, never an invented one.
    """
    from export.scoring import evaluate_variant

    export_dir = Path(export_dir)
    results = {}
    for entry in entries:
        path = export_dir / entry["path"]
        info = {k: entry[k] for k in ("profile", "runtime", "precision", "static_shape", "preset") if k in entry}
        info["measured_with"] = "onnxruntime CPUExecutionProvider" if path.suffix == ".onnx" else "OpenVINO CPU"
        try:
            results[entry["path"]] = {**info, **evaluate_variant(path, reference_outputs, x_test, score)}
        except Exception as exc:  # report and go on: one broken variant must not hide the others
            results[entry["path"]] = {**info, "error": f"{type(exc).__name__}: {exc}"}
    return results


def prepare_profiles(names: Sequence[str], export_dir: str | Path, calibration: np.ndarray, task: str,
                     x_test: np.ndarray, reference_outputs: list[np.ndarray], score, *,
                     per_channel: bool = True) -> dict[str, dict]:
    """prepare_for_profile + evaluate_targets for every named profile; the variants are listed in
    targets/manifest.json (written even when the standard exports serve every profile as they are)."""
    from devices.profile import load_profile

    export_dir = Path(export_dir)
    variants = {}
    for name in names:
        entries = prepare_for_profile(load_profile(name), export_dir, calibration, task, per_channel=per_channel)
        variants.update(evaluate_targets(export_dir, entries, x_test, reference_outputs, score))
    write_json(export_dir / TARGETS_DIR / "manifest.json", {"profiles": list(names), "variants": sorted(variants)})
    return variants


# --- what a profile needs -------------------------------------------------------------------------


def _plan(profile) -> list[dict]:
    """{runtime, precision, preset} of each variant to write: those the standard exports do not serve
    as they are (a static profile needs all of its own; a dynamic one only its preset's INT8)."""
    plans = []
    for runtime in profile.runtimes:
        preset_here = runtime_preset(runtime, profile.quantization_preset)
        for precision in profile.precisions:
            if runtime == "onnxruntime" and precision == "fp16":
                continue  # the project exports no fp16 ONNX (onnxruntime's CPU EP has few fp16 kernels)
            preset = preset_here if precision == "int8" else None
            if profile.static_shapes or preset:
                plans.append({"runtime": runtime, "precision": precision, "preset": preset})
    return plans


def _entry(profile, plan, export_dir: Path, path: Path, shape, route: str, quantizer: str | None) -> dict:
    return {
        "profile": profile.name,
        "path": path.relative_to(export_dir).as_posix(),
        "runtime": plan["runtime"],
        "precision": plan["precision"],
        "static_shape": shape is not None,
        "input_shape": list(shape) if shape is not None else None,
        "quantizer": quantizer,
        "preset": plan["preset"] if quantizer else None,
        "route": route,
    }


# --- one variant ----------------------------------------------------------------------------------


def _onnx_variant(plan: dict, src: Path, dst: Path, calibration: np.ndarray, per_channel: bool,
                  common: dict) -> tuple[str, str | None]:
    """Write one ONNX variant of `src` (static already, for a static profile) at `dst`; returns
    (how it was done, quantizer name or None)."""
    if plan["precision"] == "fp32":
        shutil.copyfile(src, dst)
        write_metadata(dst, {**common, "precision": "fp32"})
        return "", None
    quantizer = quantizer_for("onnxruntime", plan["preset"])
    quantizer.run(src, dst, calibration, per_channel)
    write_metadata(dst, common)
    return quantizer.route, quantizer.name


def _openvino_variant(plan: dict, ir_source: Path, dst: Path, shape, calibration: np.ndarray, common: dict,
                      tmp: Path) -> tuple[str, str | None]:
    """Write one IR variant at `dst`; returns (how it was done, quantizer name or None)."""
    from export.openvino import save_ir

    precision = plan["precision"]
    reused = _standard_int8_made_with(ir_source, plan["preset"]) if precision == "int8" else None
    model = reused if reused is not None else read_ir(ir_source)  # names a missing or unreadable file
    how = [reshape_ir(model, shape)] if shape is not None else []
    if precision in ("fp32", "fp16"):
        set_ir_metadata(model, {**common, "precision": precision})
        save_ir(model, dst, compress_to_fp16=precision == "fp16")
        return ", ".join([*how, f"saved as {precision.upper()} IR"]), None

    quantizer = quantizer_for("openvino", plan["preset"])
    if reused is not None:  # the standard INT8 was quantized with this preset: the same model, only its input fixed
        set_ir_metadata(model, common)
        save_ir(model, dst, compress_to_fp16=False)
        return ", ".join([f"{IR_FILES['int8']} (NNCF, preset {plan['preset']})", *how]), quantizer.name

    fp32 = ir_source
    if shape is not None:  # NNCF quantizes the static model the device compiles
        fp32 = save_ir(model, tmp / "static-fp32" / "model.xml", compress_to_fp16=False)
    quantizer.run(fp32, dst, calibration, True)
    quantized = read_ir(dst)  # the quantizer kept the source metadata and set precision, quantizer, preset
    set_ir_metadata(quantized, common)
    save_ir(quantized, dst, compress_to_fp16=False)
    return ", ".join([*how, quantizer.route]), quantizer.name


def _standard_int8_made_with(ir_source: Path, preset: str | None):
    """The export's standard openvino-int8 IR (beside openvino/fp32/) when NNCF made it with `preset`, else None."""
    path = ir_source.parents[2] / IR_FILES["int8"]
    if not preset or not path.is_file():
        return None
    model = read_ir(path)
    return model if get_ir_metadata(model).get("preset") == preset else None
