"""Will an exported model run on a device profile? Static shapes, operators and precision, checked.

    python -m devices.compat --profile qualcomm-npu --models exports/ [--profile ...] [--json out.json]

``check_model(profile, model_path)`` returns::

    {"model": "...", "profile": "qualcomm-npu", "runtime": "onnxruntime", "target": "QNNExecutionProvider",
     "precision": "int8", "applicable": True, "ok": False,
     "checks": [{"check": "static_shapes", "ok": False, "reason": "..."},
                {"check": "operators", "ok": True, "reason": "...", "ops": [...], ...},
                {"check": "precision", "ok": True, "reason": "..."}]}

A model whose format the profile has no runtime for (an ONNX file on an OpenVINO-only profile)
gets one failing "runtime" check and ``"applicable": False``. A model this host cannot read (an
OpenVINO IR where openvino is not installed) gets ``"checkable": False`` and ``"ok": None``; so does one
that fails no check but has one this host cannot make (``"ok": None`` on the check: the operators of an
ONNX model for a provider not on this host, without the onnx package to list them).

The package, one concern a module: facts (what a model file holds), shapes, onnx_ops and
openvino_ops (operators: the runtime's answer where the target is on this host, else the documented
lists of op_lists), precision, checks (check_model, check_all) and cli.
Only numpy, the standard library and, lazily, onnx / onnxruntime / openvino: no torch.
"""
from devices.compat.checks import check_all, check_model, verdict
from devices.compat.cli import format_results, main
from devices.compat.facts import CompatError, ModelFacts, NotCheckable, inspect_model
from devices.compat.op_lists import OperatorList, load_operator_list, operator_list_path

__all__ = ["CompatError", "ModelFacts", "NotCheckable", "OperatorList", "check_all", "check_model", "format_results",
           "inspect_model", "load_operator_list", "main", "operator_list_path", "verdict"]
