"""Model metadata that travels inside the model files.

ONNX: `metadata_props` (string key -> string value). OpenVINO IR: rt_info under "model_info".
Strings are stored as they are; every other value is JSON-encoded. Reading JSON-decodes each
value where it decodes, so a string that is itself valid JSON (e.g. "17" or "true") comes back
decoded; store such values as their real type.

What a deployable model carries (model_metadata): its task, labels, input contract, the modality's
kind (which app-side preprocessor to run) and name (which configured data it was trained on),
preprocessing, head-specific fields, the source version and precision, the key facts of its model card
(export/model_card.py) and its FLOPs per inference.

Reading needs only onnxruntime (ONNX) or openvino (IR): what an app on a device has.
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devices.io import atomic_path

IR_SECTION = "model_info"


def modality_metadata(modality) -> dict[str, str]:
    """Apps look preprocessors up by "modality" (the kind: image, video, audio, text); the configured
    instance ("scenes", "machines", ...) is recorded beside it."""
    return {"modality": modality.kind, "modality_name": modality.name}


def model_metadata(modality, *, task: str, head: str, method: str, labels: list, head_fields: Mapping[str, Any],
                   assets: list[str]) -> dict[str, Any]:
    """The FP32 export's metadata (see the module docstring)."""
    spec = modality.input_spec()
    metadata = {
        "task": task, "head": head, "method": method, **modality_metadata(modality),
        "labels": labels, "input_name": spec["name"], "input_shape": spec["shape"],
        "input_dtype": spec["dtype"], "preprocessing": modality.preprocessing(),
        **head_fields, "source_commit": source_commit(), "precision": "fp32", "assets": assets,
    }
    if "range" in spec:
        metadata["input_range"] = spec["range"]
    return metadata


def int8_metadata(source: Mapping[str, Any], quantizer: str, preset: str | None = None) -> dict[str, Any]:
    """An INT8 variant's metadata: the source's, plus "precision", "quantizer" and, when one was named,
    the device-profile "preset"."""
    return {**source, "precision": "int8", "quantizer": quantizer, **({"preset": preset} if preset else {})}


DVC_BOOKKEEPING = ("dvc.lock",)  # rewritten by every run, not source


def source_commit(root: str | Path = ".") -> str:
    """The git commit of the repository at `root` the export was made from, or "<commit> dirty: <files>"
    naming the tracked source files that differ from it. DVC's own bookkeeping (dvc.lock) and outputs
    (the outs, metrics and plots of dvc.yaml's stages, gitignored paths) are not source: the run rewrites
    them itself, so they never make an export look dirty."""
    def git(*args: str, stdin: str | None = None, check: bool = True) -> str:
        return subprocess.run(["git", *args], cwd=root, input=stdin, capture_output=True, text=True,
                              check=check).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain=v1", "-z", "--untracked-files=no", "--no-renames").split("\0")
        changed = [entry[3:] for entry in status if len(entry) > 3]
        # exit status 1 means "none ignored"; an error leaves them all as source
        ignored = set(git("check-ignore", "--no-index", "-z", "--stdin", stdin="\0".join(changed),
                          check=False).split("\0")) if changed else set()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    outputs = dvc_outputs(Path(root) / "dvc.yaml")
    source = [path for path in changed if path not in DVC_BOOKKEEPING and path not in ignored
              and not any(_is_under(path, out) for out in outputs)]
    return commit + (f" dirty: {', '.join(source)}" if source else "")


def dvc_outputs(dvc_yaml: str | Path) -> list[str]:
    """Every stage output (outs, metrics, plots) that `dvc_yaml` declares; a path with a ${...} template
    stands for every path that starts like it (kept up to the template, e.g. "metrics/baselines/${")."""
    import yaml

    try:
        stages = (yaml.safe_load(Path(dvc_yaml).read_text()) or {}).get("stages") or {}
    except FileNotFoundError:
        return []
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{dvc_yaml}: cannot read its stages: {exc}") from exc
    found = []
    for stage in stages.values():
        body = stage.get("do") or stage
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind) or []:
                path = entry if isinstance(entry, str) else next(iter(entry))
                found.append(path.split("${")[0] + "${" if "${" in path else path.rstrip("/"))
    return [path for path in found if path != "${"]


def _is_under(path: str, output: str) -> bool:
    if output.endswith("${"):
        return path.startswith(output[:-2])
    return path == output or path.startswith(output + "/")


def flops_per_sample(model, example) -> int:
    """Floating-point operations of one forward pass of `model` on `example` (batch 1), as torch's
    FlopCounterMode counts them: matrix multiplies, convolutions and attention (run with the math kernel,
    whose matmuls it sees; the fused CPU kernel it does not count). Element-wise operations are left out."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter, torch.inference_mode():
        model(example)
    return int(counter.get_total_flops())


def encode_value(key: str, value: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"metadata keys must be non-empty strings, got {key!r}")
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"metadata '{key}': value {value!r} of type {type(value).__name__} is not JSON-serializable"
        ) from exc


def decode_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def encode_all(metadata: Mapping[str, Any]) -> dict[str, str]:
    return {key: encode_value(key, value) for key, value in metadata.items()}


def set_onnx_metadata(model, metadata: Mapping[str, Any], replace: bool = False) -> None:
    """Set entries on an onnx.ModelProto in memory: same keys are overwritten, other existing
    entries kept, or dropped with replace=True."""
    encoded = encode_all(metadata)
    kept = [] if replace else [(p.key, p.value) for p in model.metadata_props if p.key not in encoded]
    del model.metadata_props[:]
    for key, value in [*kept, *encoded.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def write_metadata(onnx_path: str | Path, metadata: Mapping[str, Any], *, replace: bool = False) -> None:
    """Store `metadata` in the ONNX file's metadata_props, rewriting the file atomically.

    Existing entries with other keys are kept, unless replace=True.
    """
    import onnx

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path}: ONNX model not found")
    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # protobuf decode errors have no common base class
        raise ValueError(f"{onnx_path}: not a readable ONNX model: {exc}") from exc
    set_onnx_metadata(model, metadata, replace)
    with atomic_path(onnx_path) as tmp:
        onnx.save(model, str(tmp))


def read_metadata(onnx_path: str | Path) -> dict[str, Any]:
    """The ONNX file's metadata_props, read with onnxruntime (no onnx or torch package needed)."""
    import onnxruntime as ort

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path}: ONNX model not found")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # only the header is wanted
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ValueError(f"{onnx_path}: onnxruntime cannot load this model: {exc}") from exc
    return {key: decode_value(value) for key, value in session.get_modelmeta().custom_metadata_map.items()}


def set_ir_metadata(model, metadata: Mapping[str, Any]) -> None:
    """Set entries in an openvino.Model's rt_info["model_info"] (saved into the .xml)."""
    for key, value in encode_all(metadata).items():
        model.set_rt_info(value, [IR_SECTION, key])


def get_ir_metadata(model) -> dict[str, Any]:
    """rt_info["model_info"] of an in-memory openvino.Model, decoded."""
    if not model.has_rt_info([IR_SECTION]):
        return {}
    section = model.get_rt_info()[IR_SECTION]
    return {key: decode_value(value.astype(str)) for key, value in section.items()}


def read_ir(model_xml: str | Path):
    """An OpenVINO IR file (.xml) as an openvino.Model; a missing or unreadable file is named."""
    import openvino as ov

    model_xml = Path(model_xml)
    if not model_xml.is_file():
        raise FileNotFoundError(f"{model_xml}: OpenVINO model not found")
    try:
        return ov.Core().read_model(str(model_xml))
    except Exception as exc:
        raise ValueError(f"{model_xml}: OpenVINO cannot read this model: {exc}") from exc


def read_ir_metadata(model_xml: str | Path) -> dict[str, Any]:
    """The metadata of an OpenVINO IR file (.xml), read with openvino."""
    return get_ir_metadata(read_ir(model_xml))
