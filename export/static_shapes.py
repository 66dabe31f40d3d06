"""Fixed input shapes for devices that need them (profile.static_shapes): which shape, and the model with it.

The shape: the profile's first ``input_shapes[task]`` shape, else the model input with the batch axis set
to the profile's first batch size (what devices.compat and the latency runner use). ONNX: onnxruntime's
``make_input_shape_fixed`` (the "batch" dim_param fixed throughout the graph), then ONNX shape inference
again; OpenVINO: ``Model.reshape``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devices.io import atomic_path
from export.metadata import set_onnx_metadata
from export.quantize.onnx import graph_input

ONNX_ROUTE = "input fixed by onnxruntime make_input_shape_fixed, shapes inferred again"


def static_input_shape(profile, task: str, dims: Sequence[int | None]) -> tuple[int, ...]:
    """The fixed input shape for a static profile: its first input_shapes[task] shape, else `dims`
    with the batch axis set to the profile's first batch size."""
    for shape in profile.shapes_for(task)[:1]:
        if len(shape) != len(dims) or any(d is not None and d != s for d, s in zip(dims, shape)):
            raise ValueError(f"profile '{profile.name}': input_shapes.{task} {list(shape)} does not fit the "
                             f"model input {_fmt(dims)}")
        return tuple(shape)
    shape = [profile.batch_sizes[0] if (i == 0 and d is None) else d for i, d in enumerate(dims)]
    if any(d is None for d in shape):
        raise ValueError(f"profile '{profile.name}' needs static shapes, but the model input {_fmt(dims)} has "
                         f"dynamic axes besides the batch and the profile lists no input_shapes for task '{task}'")
    return tuple(shape)


def make_static_onnx(src: str | Path, dst: str | Path, shape: Sequence[int],
                     metadata: Mapping[str, Any] | None = None) -> Path:
    """Copy of the ONNX model `src` with its input fixed to `shape`, written atomically to `dst`.

    The input's dim_params (the "batch" axis) are fixed everywhere they occur, then shapes are inferred
    again, so inputs, outputs and intermediate values all have fixed dims. Fails if an output stays
    dynamic. `metadata` entries are set on top of the source's.
    """
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    input_name, _ = graph_input(model)
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


def reshape_ir(model, shape: Sequence[int]) -> str:
    """Fix an openvino.Model's one input to `shape` (in place); returns how, in words."""
    import openvino as ov

    model.reshape({model.inputs[0]: ov.PartialShape(list(shape))})
    return f"reshaped to {list(shape)}"


def _fmt(dims: Sequence[int | None]) -> list:
    return ["?" if d is None else d for d in dims]
