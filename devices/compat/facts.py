"""What a model file holds for the checks: its inputs and outputs, metadata and quantization.

ONNX files are read with the onnx package where it is installed (the graph, for quantization), else
with onnxruntime; OpenVINO IR with openvino. A host without the format's reader gets NotCheckable,
so a device with one runtime still checks the models of that runtime.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from devices.metadata import metadata_of
from devices.model_files import UnknownModelFormat, runtime_of

CPU_PROVIDER = "CPUExecutionProvider"

# ONNX operators that make a graph "quantized" (QDQ, QOperator or integer-op formats).
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
              "ConvInteger", "DynamicQuantizeLinear", "QLinearAdd", "QLinearMul", "MatMulNBits"}
_OV_INT_TYPES = {"i8", "u8", "i4", "u4"}


class CompatError(ValueError):
    """A model file that cannot be inspected (missing, not a model, unreadable)."""


class NotCheckable(CompatError):
    """This host lacks the package that reads the model's format (openvino for an IR, say)."""


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


def shape_text(dims: list) -> str:
    return "[" + ",".join(str(d) if isinstance(d, int) else (d or "?") for d in dims) + "]"


def inspect_model(path: str | Path) -> ModelFacts:
    """Shapes, metadata and quantization of an .onnx or OpenVINO .xml file."""
    path = Path(path)
    if not path.is_file():
        raise CompatError(f"{path}: model file not found")
    try:
        runtime = runtime_of(path)
    except UnknownModelFormat as exc:
        raise CompatError(str(exc)) from None
    if runtime == "openvino":
        return _inspect_ir(path)
    try:
        import onnx  # noqa: F401
    except ImportError:  # what onnxruntime shows (no quantization details)
        return _inspect_onnx_with_ort(path)
    return _inspect_onnx(path)


def _reader(module: str, path: Path):
    """The package that reads the model's format, or NotCheckable naming what is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NotCheckable(f"{path}: cannot be checked here: {module} is not installed ({exc})") from exc
    except Exception as exc:  # installed but broken (a missing shared library, say): still not a model failure
        raise NotCheckable(f"{path}: cannot be checked here: {module} cannot be imported "
                           f"({type(exc).__name__}: {exc})") from exc


# --- ONNX ---------------------------------------------------------------------------------------------


def walk_nodes(graph):
    """Every node of an ONNX graph, subgraphs (If/Loop/Scan bodies) included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from walk_nodes(attr.g)
            for sub in attr.graphs:
                yield from walk_nodes(sub)


def _onnx_dims(value) -> list:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def _onnx_quantization(model) -> tuple[bool, set[str], bool]:
    """(quantized?, element types of quantized tensors, any non-zero zero point?) of an ONNX model."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    quantized, types, nonzero = False, set(), False
    for node in walk_nodes(model.graph):
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


def _inspect_onnx(path: Path) -> ModelFacts:
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf decode errors have no common base class
        raise CompatError(f"{path}: not a readable ONNX model: {exc}") from exc
    init_names = {i.name for i in model.graph.initializer}
    quantized, types, nonzero = _onnx_quantization(model)
    return ModelFacts(
        path=path, runtime="onnxruntime", metadata=metadata_of(model),
        inputs=[(v.name, _onnx_dims(v)) for v in model.graph.input if v.name not in init_names],
        outputs=[(v.name, _onnx_dims(v)) for v in model.graph.output],
        quantized=quantized, quant_types=types, nonzero_zero_points=nonzero,
    )


def ort_session(path: Path, providers: list[str], provider_options: list[dict] | None = None, **config):
    """An onnxruntime session, quiet, with session config entries (``config``) set."""
    ort = _reader("onnxruntime", path)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(path), options, providers=providers, provider_options=provider_options)


def _inspect_onnx_with_ort(path: Path) -> ModelFacts:
    try:
        session = ort_session(path, [CPU_PROVIDER])
    except NotCheckable:
        raise
    except Exception as exc:
        raise CompatError(f"{path}: onnxruntime cannot load this model: {exc}") from exc

    def dims(shape):
        return [d if isinstance(d, int) and d >= 0 else (d if isinstance(d, str) else None) for d in shape]

    return ModelFacts(
        path=path, runtime="onnxruntime", metadata=metadata_of(session),
        inputs=[(i.name, dims(i.shape)) for i in session.get_inputs()],
        outputs=[(o.name, dims(o.shape)) for o in session.get_outputs()],
        quantized=None,
    )


# --- OpenVINO IR --------------------------------------------------------------------------------------


def read_ir(path: Path):
    ov = _reader("openvino", path)
    try:
        return ov.Core().read_model(str(path))
    except Exception as exc:
        raise CompatError(f"{path}: OpenVINO cannot read this model: {exc}") from exc


def _ov_name(port) -> str:
    try:
        return port.get_any_name()
    except Exception:  # an output without tensor names
        return port.get_node().get_friendly_name()


def _inspect_ir(path: Path) -> ModelFacts:
    model = read_ir(path)

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
        path=path, runtime="openvino", metadata=metadata_of(model),
        inputs=[(i.get_any_name(), dims(i.get_partial_shape())) for i in model.inputs],
        outputs=[(_ov_name(o), dims(o.get_partial_shape())) for o in model.outputs],
        quantized=quantized, quant_types=types,
    )
