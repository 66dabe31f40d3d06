"""Inference sessions over exported models, for onnxruntime and OpenVINO.

No torch here: this is what travels to a device and what an app embeds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from devices.metadata import metadata_of
from devices.model_files import runtime_of


class UnreadableModel(ValueError):
    """A model file its runtime cannot load (truncated, corrupt, not a model): an error naming the file."""


class Session:
    """A loaded model that maps a float32 batch to its first output.

    Besides ``run``/``predict``, every session describes its (first) input and
    the model's metadata, so a runner can build inputs without a framework:

    * ``input_shape``: one entry per axis, an ``int`` or ``None`` where dynamic;
    * ``input_dtype``: the numpy dtype the input expects (``None`` if unknown);
    * ``input_count``: how many inputs the model has;
    * ``metadata``: string key/values (ONNX ``metadata_props``, or the IR's
      ``rt_info["model_info"]``), e.g. ``{"precision": "int8", "task": "digits"}``.
    """

    runtime: str
    input_name: str
    input_shape: list[int | None] = []
    input_dtype: np.dtype | None = None
    input_count: int = 1
    metadata: dict[str, str] = {}

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def bind(self, x: np.ndarray):
        """A no-argument call that runs inference on x, bound once: what a latency loop times.

        Leaves out the per-call cost of handing an array to the runtime and copying the
        output back (~0.05-0.1 ms in Python), as OpenVINO's benchmark_app does.
        """
        return lambda: self.run(x)

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - interface
        """Every output of the model, in order (a detector has boxes and scores)."""
        raise NotImplementedError

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Run over a whole array in batches and concatenate the outputs."""
        outs = [self.run(np.ascontiguousarray(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        return np.concatenate(outs, axis=0)

    def predict_all(self, x: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
        """Every output over a whole array, in batches, each concatenated along the batch axis."""
        outs = [self.run_all(np.ascontiguousarray(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        return [np.concatenate(parts, axis=0) for parts in zip(*outs)]


class OnnxRuntimeSession(Session):
    runtime = "onnxruntime"

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ONNX model not found")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = providers or ["CPUExecutionProvider"]
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise RuntimeError(f"onnxruntime providers {missing} are not available here (available: {available})")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise UnreadableModel(f"{path}: onnxruntime cannot load this model: {exc}") from exc
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.input_count = len(inputs)
        self.input_shape = [d if isinstance(d, int) and d >= 0 else None for d in inputs[0].shape]
        self.input_dtype = _ORT_DTYPES.get(inputs[0].type)
        self.metadata = metadata_of(self.session)
        self.providers = self.session.get_providers()

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x})

    def bind(self, x: np.ndarray):
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(x))
        for output in self.session.get_outputs():
            binding.bind_output(output.name)
        return lambda: self.session.run_with_iobinding(binding)


class OpenVinoSession(Session):
    runtime = "openvino"

    def __init__(self, path: str | Path, device: str = "CPU", config: dict | None = None):
        import openvino as ov

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: OpenVINO model not found")
        core = ov.Core()
        if device not in core.available_devices:
            raise RuntimeError(f"OpenVINO device '{device}' is not available here (available: {core.available_devices})")
        try:
            model = core.read_model(str(path))
        except Exception as exc:
            raise UnreadableModel(f"{path}: OpenVINO cannot read this model: {exc}") from exc
        first = model.inputs[0]
        self.input_count = len(model.inputs)
        self.input_shape = [d.get_length() if d.is_static else None for d in first.get_partial_shape()]
        try:
            self.input_dtype = np.dtype(first.get_element_type().to_dtype())
        except Exception:  # element types numpy has no dtype for
            self.input_dtype = None
        self.metadata = metadata_of(model)
        self.compiled = core.compile_model(model, device, config or {"PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()
        self.input_name = self.compiled.inputs[0].get_any_name()
        self.device = device
        self._tensor = ov.Tensor

    def run(self, x: np.ndarray) -> np.ndarray:
        # Set the input as a tensor over x's memory and read output 0 directly:
        # same result as ``infer({0: x})[outputs[0]]`` without building the
        # result dict, which costs ~0.1-0.2 ms per call on a small model.
        if self.input_dtype is not None and x.dtype != self.input_dtype:
            x = x.astype(self.input_dtype)
        x = np.ascontiguousarray(x)
        self.request.set_input_tensor(self._tensor(x, shared_memory=True))
        self.request.infer()
        return self.request.get_output_tensor(0).data.copy()

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        self.run(x)
        return [self.request.get_output_tensor(i).data.copy() for i in range(len(self.compiled.outputs))]

    def bind(self, x: np.ndarray):
        x = np.ascontiguousarray(x.astype(self.input_dtype) if self.input_dtype is not None else x)
        request = self.compiled.create_infer_request()
        request.set_input_tensor(self._tensor(x, shared_memory=False))
        return request.infer


_ORT_DTYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}


def open_session(
    path: str | Path,
    threads: int | None = None,
    *,
    provider: str | None = None,
    device: str | None = None,
) -> Session:
    """Open a model file with the runtime its format implies (.onnx or .xml).

    ``provider`` (onnxruntime execution provider) and ``device`` (OpenVINO
    device) default to the CPU; an unavailable one raises, never falls back,
    and one given for the other runtime's format is an error, not ignored.
    """
    path = Path(path)
    runtime = runtime_of(path)
    if runtime == "onnxruntime" and device is not None:
        raise ValueError(f"{path}: device '{device}' (--device) is an OpenVINO device, but an .onnx model runs on "
                         "onnxruntime, whose target is an execution provider (--provider); for an OpenVINO "
                         "device, use the model's OpenVINO IR (.xml)")
    if runtime == "openvino" and provider is not None:
        raise ValueError(f"{path}: provider '{provider}' (--provider) is an onnxruntime execution provider, but "
                         "an OpenVINO IR (.xml) runs on OpenVINO, whose target is a device (--device)")
    if runtime == "onnxruntime":
        return OnnxRuntimeSession(path, providers=[provider] if provider else None, threads=threads)
    device = device or "CPU"
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if device == "CPU":
        # OpenVINO runs FP32 layers in bf16 on CPUs with AVX512-BF16 or AMX unless told otherwise: an FP32
        # (or INT8's float parts) model then answers differently from host to host (logits off by ~0.05)
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return OpenVinoSession(path, device=device, config=config)
