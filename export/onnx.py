"""torch -> single-file ONNX with a dynamic batch axis and embedded metadata.

The exporter follows the opset (params.yaml export.opset) and the model (exporter_for):
  * opset >= 18: the torch.export-based exporter (dynamo=True), batch axis a torch.export.Dim; models
    whose dynamo graph a later step cannot take stay on the TorchScript exporter at LEGACY_OPSET, each
    with its reason in LEGACY_MODELS;
  * opset < 18: the TorchScript exporter (deprecated since torch 2.9). The dynamo exporter emits
    opset >= 18 only: asked for 17 it runs onnx's version converter, which fails on these graphs
    (Squeeze/ReduceMean axes adapter) and leaves the model at opset 18.
Both give the same outputs, INT8 figures and OpenVINO conversions for the project's models (classifiers,
detector, reconstruction scorer, audio front end); the dynamo export takes ~5-15 s per model, the
TorchScript one under a second.
"""
from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
import torch

from devices.io import atomic_path
from export.metadata import set_onnx_metadata

DYNAMO_MIN_OPSET = 18
BATCH_AXIS = "batch"
DYNAMO, TORCHSCRIPT = "dynamo", "torchscript"
# The legacy models' opset: at 18 the TorchScript graph of the video kNN scorer also trips onnxruntime's
# symbolic shape inference (the same Expand), at 17 it does not.
LEGACY_OPSET = 17
# Model class -> why the dynamo exporter's graph does not serve it (torch 2.14, onnxruntime 1.32).
LEGACY_MODELS = {
    "KnnAnomalyModel": "F.normalize becomes Expand(Clip(norm), Concat(Shape slices)), on which onnxruntime's "
                       "quant_pre_process (symbolic shape inference, before INT8 quantization) fails: "
                       "TypeError: object of type 'NoneType' has no len()",
}
LEGACY_MODELS["TemporalKnnAnomalyModel"] = LEGACY_MODELS["KnnAnomalyModel"]  # it normalises the same way


def exporter_for(model: torch.nn.Module, opset: int) -> tuple[str, str]:
    """(DYNAMO or TORCHSCRIPT, why) for exporting `model` at `opset`."""
    if opset < DYNAMO_MIN_OPSET:
        return TORCHSCRIPT, f"opset {opset}: the dynamo exporter emits opset >= {DYNAMO_MIN_OPSET} only"
    if type(model).__name__ in LEGACY_MODELS:
        return TORCHSCRIPT, LEGACY_MODELS[type(model).__name__]
    return DYNAMO, "torch.export-based exporter"


def export_onnx(
    model: torch.nn.Module,
    example_input: torch.Tensor,
    path: str | Path,
    metadata: Mapping[str, Any],
    input_name: str,
    output_names: Sequence[str],
    opset: int = DYNAMO_MIN_OPSET,
) -> Path:
    """Export `model` (in eval mode) to a self-contained .onnx file with a dynamic batch axis 0, with the
    exporter exporter_for picks.

    The graph is validated with onnx.checker (full check, incl. shape inference), `metadata` is
    stored in metadata_props, and the file is written atomically. Returns the path.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"{path}: ONNX output path must end in .onnx")
    if not isinstance(example_input, torch.Tensor) or example_input.ndim < 1 or example_input.shape[0] < 1:
        raise ValueError(f"example_input must be a tensor with a batch axis 0 of size >= 1, got {example_input!r:.80}")
    if not output_names:
        raise ValueError("output_names must name at least one output")

    was_training = model.training
    model.eval()
    try:
        _check_output_count(model, example_input, output_names)
        with tempfile.TemporaryDirectory(prefix="onnx-export-") as tmp:
            raw = Path(tmp) / "model.onnx"
            exporter, _ = exporter_for(model, opset)
            if type(model).__name__ in LEGACY_MODELS:
                opset = min(opset, LEGACY_OPSET)
            _torch_export(model, example_input, raw, input_name, list(output_names), opset, exporter == DYNAMO)
            proto = onnx.load(str(raw))  # also pulls in any external data the exporter split off
    finally:
        model.train(was_training)

    exported_outputs = [o.name for o in proto.graph.output]
    if exported_outputs != list(output_names):
        raise ValueError(
            f"{path}: model produced outputs {exported_outputs} but output_names were {list(output_names)}"
        )
    fixed = [v.name for v in [*proto.graph.input, *proto.graph.output] if not _has_symbolic_batch(v)]
    if fixed:
        raise ValueError(f"{path}: exported {fixed} without a dynamic batch axis 0 (the trace froze the batch size)")
    _drop_trace_notes(proto)
    set_onnx_metadata(proto, metadata)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ValueError(f"{path}: exported ONNX graph fails onnx.checker: {exc}") from exc
    with atomic_path(path) as tmp_path:
        # ModelProto over 2 GiB cannot be serialised into one file; these models are far smaller.
        onnx.save(proto, str(tmp_path))
    return path


def _has_symbolic_batch(value) -> bool:
    dims = value.type.tensor_type.shape.dim
    return len(dims) > 0 and bool(dims[0].dim_param)


def _drop_trace_notes(proto) -> None:
    """Remove the dynamo exporter's per-value notes (FX node names, stack traces with this checkout's
    absolute paths): the file then depends only on the model, not on where it was exported."""
    graph = proto.graph
    for item in [*graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        del item.metadata_props[:]
        item.doc_string = ""


def _check_output_count(model, example_input, output_names) -> None:
    """Fail early and clearly: torch's own message for a name mismatch is a RuntimeError deep in tracing."""
    with torch.no_grad():
        outputs = model(example_input)
    count = len(outputs) if isinstance(outputs, (tuple, list)) else 1
    if count != len(output_names):
        raise ValueError(f"output_names {list(output_names)} name {len(output_names)} outputs, but the model returns {count}")


def _torch_export(model, example_input, out: Path, input_name, output_names, opset, dynamo) -> None:
    if dynamo:
        # dynamic_shapes is keyed by forward()'s argument position; the output batch follows.
        torch.onnx.export(
            model, (example_input,), str(out), input_names=[input_name], output_names=output_names,
            opset_version=opset, dynamo=True, external_data=False, verbose=False,
            dynamic_shapes=({0: torch.export.Dim(BATCH_AXIS)},),
        )
        return
    axes = {name: {0: BATCH_AXIS} for name in [input_name, *output_names]}
    with warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (see module docstring); its deprecation notices
        # would otherwise repeat on every export. TracerWarnings stay visible: they flag Python
        # control flow that got frozen into the graph.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=r"The feature will be removed.*")
        torch.onnx.export(
            model, (example_input,), str(out), input_names=[input_name], output_names=output_names,
            opset_version=opset, dynamo=False, dynamic_axes=axes, do_constant_folding=True,
        )
