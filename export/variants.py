"""Per-device deployment variants: what a device profile needs beyond the standard exports.

    prepare_for_profile(profile, export_dir, calibration, task) -> [entry, ...]
    evaluate_targets(export_dir, entries, x_test, reference_outputs, score) -> {path: metrics}

The standard exports (model.onnx with a dynamic batch, openvino/{fp32,fp16}, model.int8.onnx,
openvino-int8) serve a profile as they are when it takes dynamic shapes and names no quantization
preset. Everything else is written under ``export_dir/targets/<profile>/`` with the standard layout:

    model.onnx                  fp32, static shape              (onnxruntime; static profiles)
    model.int8.onnx             INT8 QDQ with the profile's preset, static if the profile is
    openvino/{fp32,fp16}/       static-shape IR                 (openvino; static profiles)
    openvino-int8/model.xml     NNCF INT8 with the profile's preset, on the static IR if static

Only precisions in ``profile.precisions`` are written; a precision the standard exports already
serve is not copied. Each file keeps the source metadata, with "precision", "target_profile",
"input_shape" (the fixed shape, for static variants) and, for INT8, "quantizer" and "preset".

How each quantization preset is applied (``devices/profile.py`` QUANTIZATION_PRESETS):
  * arm64, avx2, avx512, avx512_vnni, ppc64le, tensorrt: optimum's ``ORTQuantizer`` with
    ``AutoQuantizationConfig.<preset>`` (static, QDQ), calibrated by MinMax on the given array.
    optimum's ``fit`` only iterates its "dataset" for {input name: sample} rows, so the array is
    passed as such a list, and the CalibrationConfig is built directly (AutoCalibrationConfig.minmax
    would only copy a ``datasets.Dataset``'s name, split and size into it): the ``datasets`` package
    is not a dependency of the project. As in export/quantize_onnx.py, only Conv/MatMul/Gemm are
    quantized. tensorrt is symmetric int8 for
    activations and weights (zero points 0), with QDQ pairs on the weights, as TensorRT takes them.
  * qnn-qdq-uint8: onnxruntime's ``qnn_preprocess_model`` + ``get_qnn_qdq_config`` (uint8
    activations and weights, every op quantized as the HTP needs) on the static-shape model.
    Per-tensor weights: QNN takes per-channel weights only as signed symmetric int8.
  * nncf-performance / nncf-mixed: NNCF post-training quantization with that QuantizationPreset
    (export/quantize_openvino.py), on the static IR for a static profile. When the standard
    openvino-int8 was quantized with the same preset, it is reused (reshaped for a static profile)
    instead: NNCF's statistics do not depend on the batch size.
A profile without a preset that needs static shapes gets the project's default INT8 quantizers run
on its static models.

Static shapes: the profile's first ``input_shapes[task]`` shape, else the model input with the batch
axis set to the profile's first batch size (what devices.compat and the latency runner use). ONNX:
onnxruntime's ``make_input_shape_fixed`` (the "batch" dim_param fixed throughout the graph), then
ONNX shape inference again; OpenVINO: ``Model.reshape``.

The target folder is built in a scratch folder and swapped in whole, so no stale variant of an
earlier run stays next to the new ones.
"""
from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from devices.io import atomic_path, scratch_dir
from export.quantize.calibration import check_calibration
from export.metadata import (get_ir_metadata, read_ir, read_metadata, set_ir_metadata, set_onnx_metadata,
                             write_metadata)
from export.quantize.openvino import PRESETS as NNCF_PRESET_NAMES
from export.quantize.openvino import QUANTIZER as QUANTIZER_NNCF
from export.quantize.openvino import profile_preset, quantize_openvino_int8

TARGETS_DIR = "targets"
OPTIMUM_PRESETS = ("arm64", "avx2", "avx512", "avx512_vnni", "ppc64le", "tensorrt")
QNN_PRESET = "qnn-qdq-uint8"
NNCF_PRESETS = {profile_preset(p): p for p in NNCF_PRESET_NAMES}  # profile preset -> NNCF preset
QUANTIZER_OPTIMUM = "optimum-ortquantizer"
QUANTIZER_QNN = "onnxruntime-qnn-qdq"
CALIBRATION_BATCH = 32
STATIC_ONNX_ROUTE = "input fixed by onnxruntime make_input_shape_fixed, shapes inferred again"

ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
IR_FILES = {"fp32": "openvino/fp32/model.xml", "fp16": "openvino/fp16/model.xml", "int8": "openvino-int8/model.xml"}


def prepare_for_profile(profile, export_dir: str | Path, calibration: np.ndarray, task: str, *,
                        per_channel: bool = True) -> list[dict]:
    """Write the variants `profile` needs under export_dir/targets/<profile name>/; one entry each.

    profile: a devices.profile.Profile or a profile name / .toml path. export_dir holds the
    standard exports (model.onnx, openvino/fp32/model.xml). calibration: float inputs as the model
    takes them (N, ...), N a multiple of a static batch (extra samples are dropped). per_channel:
    per-channel weights for the optimum presets. Each entry: {"profile", "path" (relative to
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
        _remove_tree(final)
        return []

    source_onnx = export_dir / "model.onnx"
    metadata = read_metadata(source_onnx)  # rejects a missing or unreadable export, naming it
    _, dims = _onnx_input(source_onnx)
    shape = static_input_shape(profile, task, dims) if profile.static_shapes else None
    batch = shape[0] if shape else None
    calibration = _fit_calibration(calibration, dims, batch, str(source_onnx))
    common = {"target_profile": profile.name}
    if shape is not None and "input_shape" in metadata:
        common["input_shape"] = list(shape)

    entries = []
    with scratch_dir(final.parent) as tmp:
        build = tmp / "build"
        build.mkdir()
        onnx_plans = [p for p in plans if p["runtime"] == "onnxruntime"]
        if onnx_plans:
            onnx_source = source_onnx
            if shape is not None:
                onnx_source = make_static_onnx(source_onnx, tmp / "static.onnx", shape)
            for plan in onnx_plans:
                dst = build / ONNX_FILES[plan["precision"]]
                if plan["precision"] == "fp32":
                    shutil.copyfile(onnx_source, dst)
                    write_metadata(dst, {**metadata, **common, "precision": "fp32"}, replace=True)
                    route, quantizer = STATIC_ONNX_ROUTE, None
                else:
                    route, quantizer = _quantize_onnx(plan, onnx_source, dst, calibration, per_channel,
                                                      {**metadata, **common})
                if shape is not None and quantizer is not None:
                    route = f"{STATIC_ONNX_ROUTE}, then {route}"
                entries.append(_entry(profile, plan, export_dir, final / dst.relative_to(build), shape, route,
                                      quantizer))
        ir_plans = [p for p in plans if p["runtime"] == "openvino"]
        if ir_plans:
            ir_source = export_dir / "openvino" / "fp32" / "model.xml"
            for plan in ir_plans:
                dst = build / IR_FILES[plan["precision"]]
                route, quantizer = _openvino_variant(plan, ir_source, dst, shape, calibration, common, tmp)
                entries.append(_entry(profile, plan, export_dir, final / dst.relative_to(build), shape, route,
                                      quantizer))
        _swap_in(build, final, tmp)
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


# --- what a profile needs -------------------------------------------------------------------------


def _plan(profile) -> list[dict]:
    """{runtime, precision, preset} of each variant to write: those the standard exports do not serve
    as they are (a static profile needs all of its own; a dynamic one only its preset's INT8)."""
    presets_of = {"onnxruntime": (*OPTIMUM_PRESETS, QNN_PRESET), "openvino": tuple(NNCF_PRESETS)}
    plans = []
    for runtime in profile.runtimes:
        runtime_preset = profile.quantization_preset if profile.quantization_preset in presets_of[runtime] else None
        for precision in profile.precisions:
            if runtime == "onnxruntime" and precision == "fp16":
                continue  # the project exports no fp16 ONNX (onnxruntime's CPU EP has few fp16 kernels)
            preset = runtime_preset if precision == "int8" else None
            if profile.static_shapes or preset:
                plans.append({"runtime": runtime, "precision": precision, "preset": preset})
    return plans


def static_input_shape(profile, task: str, dims: Sequence[int | None]) -> tuple[int, ...]:
    """The fixed input shape for a static profile: its first input_shapes[task] shape, else `dims`
    with the batch axis set to the profile's first batch size."""
    for shape in profile.shapes_for(task)[:1]:
        if len(shape) != len(dims) or any(d is not None and d != s for d, s in zip(dims, shape)):
            raise ValueError(f"profile '{profile.name}': input_shapes.{task} {list(shape)} does not fit the "
                             f"model input {['?' if d is None else d for d in dims]}")
        return tuple(shape)
    shape = [profile.batch_sizes[0] if (i == 0 and d is None) else d for i, d in enumerate(dims)]
    if any(d is None for d in shape):
        raise ValueError(f"profile '{profile.name}' needs static shapes, but the model input "
                         f"{['?' if d is None else d for d in dims]} has dynamic axes besides the batch and "
                         f"the profile lists no input_shapes for task '{task}'")
    return tuple(shape)


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


# --- ONNX -----------------------------------------------------------------------------------------


def make_static_onnx(src: str | Path, dst: str | Path, shape: Sequence[int],
                     metadata: Mapping[str, Any] | None = None) -> Path:
    """Copy of the ONNX model `src` with its input fixed to `shape`, written atomically to `dst`.

    The input's dim_params (the "batch" axis) are fixed everywhere they occur (onnxruntime's
    make_input_shape_fixed), then shapes are inferred again, so inputs, outputs and intermediate
    values all have fixed dims. Fails if an output stays dynamic. `metadata` entries are set on top
    of the source's.
    """
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    input_name, _ = _input_of(model)
    make_input_shape_fixed(model.graph, input_name, list(shape))
    fix_output_shapes(model)
    del model.graph.value_info[:]  # inferred again from the fixed input
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    dynamic = [v.name for v in [*model.graph.input, *model.graph.output]
               if any(not d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)]
    if dynamic:
        raise ValueError(f"{src}: {dynamic} stay dynamic with the input fixed to {list(shape)}")
    if metadata:
        set_onnx_metadata(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
    return dst


def _quantize_onnx(plan: dict, src: Path, dst: Path, calibration: np.ndarray, per_channel: bool,
                   metadata: dict) -> tuple[str, str]:
    """INT8 QDQ of `src` at `dst` with the plan's preset; returns (how it was done, quantizer name)."""
    preset = plan["preset"]
    if preset in OPTIMUM_PRESETS:
        quantize_with_optimum(src, dst, preset, calibration, per_channel=per_channel)
        route = f"optimum ORTQuantizer, AutoQuantizationConfig.{preset} (static QDQ, MinMax calibration)"
        quantizer = QUANTIZER_OPTIMUM
    elif preset == QNN_PRESET:
        quantize_for_qnn(src, dst, calibration)
        route = ("onnxruntime qnn_preprocess_model + get_qnn_qdq_config(activation_type=QUInt8, "
                 "weight_type=QUInt8) + quantize")
        quantizer = QUANTIZER_QNN
    else:
        from export.quantize.onnx import QUANTIZER, quantize_onnx_int8

        quantize_onnx_int8(src, dst, calibration, per_channel=per_channel)
        route = "export.quantize.onnx (onnxruntime quantize_static, U8S8 QDQ): the profile names no ONNX preset"
        quantizer = QUANTIZER
    extra = {"preset": preset} if preset else {}
    write_metadata(dst, {**metadata, "precision": "int8", "quantizer": quantizer, **extra}, replace=True)
    return route, quantizer


def quantize_with_optimum(src: str | Path, dst: str | Path, preset: str, calibration: np.ndarray, *,
                          per_channel: bool = True) -> Path:
    """Static QDQ INT8 of `src` with optimum's AutoQuantizationConfig.<preset>, at `dst` (atomic).

    Shape inference first (onnxruntime's quant_pre_process, as export/quantize_onnx.py does), then
    ORTQuantizer.fit (MinMax over the calibration array, symmetric ranges where the preset's
    activations are symmetric) and ORTQuantizer.quantize. Metadata is left as the quantizer writes
    it; the caller sets it.
    """
    import logging

    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig, CalibrationConfig

    from export.quantize.onnx import OP_TYPES

    if preset not in OPTIMUM_PRESETS:
        raise ValueError(f"optimum preset {preset!r}: expected one of {list(OPTIMUM_PRESETS)}")
    src, dst = Path(src), Path(dst)
    input_name, dims = _onnx_input(src)
    calibration = check_calibration(calibration, dims, str(src))
    factory = getattr(AutoQuantizationConfig, preset)
    kwargs = {"per_channel": per_channel, "operators_to_quantize": list(OP_TYPES)}
    if "is_static" in inspect.signature(factory).parameters:  # tensorrt is static-only and takes no is_static
        kwargs["is_static"] = True
    qconfig = factory(**kwargs)
    # One row per sample; optimum's reader stacks `batch_size` rows into one run (a fixed batch: exactly it).
    rows = [{input_name: sample} for sample in calibration]
    batch = dims[0] or CALIBRATION_BATCH
    calibration_config = CalibrationConfig(
        dataset_name="calibration array", dataset_config_name="numpy", dataset_split="calibration",
        dataset_num_samples=len(rows), method=CalibrationMethod.MinMax,
    )
    optimum_log = logging.getLogger("optimum.onnxruntime.quantization")
    with scratch_dir(dst.parent) as tmp:
        model_dir = tmp / "source"
        model_dir.mkdir()
        quant_pre_process(str(src), str(model_dir / "model.onnx"))
        level = optimum_log.level
        optimum_log.setLevel(logging.ERROR)  # "could not load the config": there is no transformers config
        try:
            quantizer = ORTQuantizer.from_pretrained(model_dir, file_name="model.onnx")
        finally:
            optimum_log.setLevel(level)
        ranges = quantizer.fit(
            dataset=rows, calibration_config=calibration_config,
            onnx_augmented_model_name=tmp / "augmented.onnx",
            operators_to_quantize=qconfig.operators_to_quantize, batch_size=min(batch, len(rows)),
            force_symmetric_range=qconfig.activations_symmetric,
        )
        out_dir = quantizer.quantize(quantization_config=qconfig, save_dir=tmp / "quantized",
                                     calibration_tensors_range=ranges)
        os.replace(out_dir / "model_quantized.onnx", dst)
    return dst


def quantize_for_qnn(src: str | Path, dst: str | Path, calibration: np.ndarray) -> Path:
    """QDQ INT8 for onnxruntime's QNN EP (HTP): uint8 activations and weights, every op quantized.

    `src` should have static shapes (QNN needs them). qnn_preprocess_model first (Erf sequence ->
    Gelu, ReduceMean sequence -> LayerNormalization), then get_qnn_qdq_config + quantize.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

    src, dst = Path(src), Path(dst)
    input_name, dims = _onnx_input(src)
    calibration = check_calibration(calibration, dims, str(src))
    batch = dims[0] or CALIBRATION_BATCH

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._feeds = ({input_name: calibration[i : i + batch]} for i in range(0, len(calibration), batch))

        def get_next(self):
            return next(self._feeds, None)

    with scratch_dir(dst.parent) as tmp:
        # onnxruntime 1.32's qnn_preprocess_model fails on any model with metadata_props (it dict.update()s
        # the protobuf entries): preprocess a copy without them; the caller sets the metadata afterwards.
        bare = onnx.load(str(src))
        del bare.metadata_props[:]
        preprocessed = tmp / "preprocessed.onnx"
        if qnn_preprocess_model(bare, str(preprocessed), fuse_layernorm=True):
            model = preprocessed
        else:
            model = tmp / "bare.onnx"
            onnx.save(bare, str(model))
        config = get_qnn_qdq_config(str(model), Reader(), activation_type=QuantType.QUInt8,
                                    weight_type=QuantType.QUInt8)
        quantized = tmp / "int8.onnx"
        quantize(str(model), str(quantized), config)
        os.replace(quantized, dst)
    return dst


# --- OpenVINO -------------------------------------------------------------------------------------


def _openvino_variant(plan: dict, ir_source: Path, dst: Path, shape, calibration: np.ndarray, common: dict,
                      tmp: Path) -> tuple[str, str | None]:
    """Write one IR variant at `dst`; returns (how it was done, quantizer name or None)."""
    import openvino as ov

    from export.openvino import save_ir

    precision = plan["precision"]
    reused = _standard_int8_made_with(ir_source, plan["preset"]) if precision == "int8" else None
    model = reused if reused is not None else read_ir(ir_source)  # names a missing or unreadable file
    metadata = get_ir_metadata(model)
    how = []
    if shape is not None:
        model.reshape({model.inputs[0]: ov.PartialShape(list(shape))})
        how.append(f"reshaped to {list(shape)}")
    if precision in ("fp32", "fp16"):
        set_ir_metadata(model, {**metadata, **common, "precision": precision})
        save_ir(model, dst, compress_to_fp16=precision == "fp16")
        return ", ".join([*how, f"saved as {precision.upper()} IR"]), None

    if reused is not None:  # the standard INT8 was quantized with this preset: the same model, only its input fixed
        set_ir_metadata(model, common)
        save_ir(model, dst, compress_to_fp16=False)
        return ", ".join([f"{IR_FILES['int8']} (NNCF, preset {plan['preset']})", *how]), QUANTIZER_NNCF

    fp32 = ir_source
    if shape is not None:  # NNCF quantizes the static model the device compiles
        fp32 = save_ir(model, tmp / "static-fp32" / "model.xml", compress_to_fp16=False)
    nncf_preset = NNCF_PRESETS.get(plan["preset"] or "")
    quantize_openvino_int8(fp32, dst.parent, calibration, preset=nncf_preset)
    # quantize_openvino_int8 keeps the source metadata and sets precision, quantizer and preset; add the target's.
    quantized = read_ir(dst)
    set_ir_metadata(quantized, common)
    save_ir(quantized, dst, compress_to_fp16=False)
    how.append(f"NNCF post-training quantization (export.quantize.openvino), preset "
               f"{(nncf_preset or 'default for the model type').upper()}")
    return ", ".join(how), QUANTIZER_NNCF


def _standard_int8_made_with(ir_source: Path, preset: str | None):
    """The export's standard openvino-int8 IR (beside openvino/fp32/) when NNCF made it with `preset`, else None."""
    path = ir_source.parents[2] / IR_FILES["int8"]
    if not preset or not path.is_file():
        return None
    model = read_ir(path)
    return model if get_ir_metadata(model).get("preset") == preset else None


# --- helpers --------------------------------------------------------------------------------------


def _input_of(model) -> tuple[str, list[int | None]]:
    from export.quantize.onnx import _graph_input

    return _graph_input(model)


def _onnx_input(path: Path) -> tuple[str, list[int | None]]:
    import onnx

    return _input_of(onnx.load(str(path), load_external_data=False))


def _fit_calibration(calibration: np.ndarray, dims, batch: int | None, name: str) -> np.ndarray:
    """Checked calibration (see check_calibration), cut to a multiple of a static batch."""
    array = check_calibration(calibration, [None, *dims[1:]], name)
    if batch:
        usable = len(array) - len(array) % batch
        if usable == 0:
            raise ValueError(f"{name}: {len(array)} calibration samples are fewer than the static batch {batch}")
        array = array[:usable]
    return array


def _swap_in(build: Path, final: Path, tmp: Path) -> None:
    """Replace the folder `final` by `build` (both on one filesystem): the old one moves aside first."""
    if final.exists():
        os.replace(final, tmp / "previous")
    os.replace(build, final)


def _remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
