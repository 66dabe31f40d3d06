"""Precision: is the model's precision one the profile runs, does its graph match its label, and is its
quantization the scheme the target takes?"""
from __future__ import annotations

from devices.compat.facts import ModelFacts
from devices.profile import Profile

# What a quantization preset requires of QDQ tensors (ONNX models only). tensorrt: TensorRT's
# parser takes Quantize/DequantizeLinear only with zero point 0, and INT8 as its quantized type
# (onnx-tensorrt operator matrix; optimum's tensorrt preset is symmetric int8 for both).
# qnn-qdq-uint8: QNN HTP operators take uint8/uint16 quantized data (QNN EP documentation).
_PRESET_RULES = {
    "tensorrt": {"types": {"int8"}, "zero_points": "zero"},
    "qnn-qdq-uint8": {"types": {"uint8", "uint16"}, "zero_points": "any"},
}


def _scheme_problems(profile: Profile, facts: ModelFacts) -> list[str]:
    rules = _PRESET_RULES.get(profile.quantization_preset or "")
    if not (rules and facts.quantized and facts.runtime == "onnxruntime"):
        return []
    problems = []
    wrong = sorted(facts.quant_types - rules["types"])
    if wrong:
        problems.append(f"quantized tensors include {', '.join(wrong)} but the target takes "
                        f"{'/'.join(sorted(rules['types']))} (quantize with preset '{profile.quantization_preset}')")
    if rules["zero_points"] == "zero" and facts.nonzero_zero_points:
        problems.append("quantization is asymmetric (non-zero zero points) but the target needs zero points "
                        f"of 0 (quantize with preset '{profile.quantization_preset}')")
    return problems


def check_precision(profile: Profile, facts: ModelFacts, label: str) -> dict:
    problems = []
    if label not in profile.precisions:
        problems.append(f"model precision '{label}' is not one the profile runs {list(profile.precisions)}")
    known = facts.quantized is not None
    if known and label == "int8" and not facts.quantized:
        problems.append("the model is labelled int8 but its graph has no quantization (QDQ / FakeQuantize) nodes")
    if known and label in ("fp32", "fp16") and facts.quantized:
        problems.append(f"the model is labelled {label} but its graph is quantized")
    if profile.requires_quantized and not (facts.quantized or (not known and label == "int8")):
        problems.append(f"profile '{profile.name}' runs quantized models only and this graph is not quantized")
    problems += _scheme_problems(profile, facts)
    if problems:
        return {"check": "precision", "ok": False, "precision": label, "reason": "; ".join(problems)}
    detail = "" if known else " (graph not inspected: the onnx package is not installed)"
    if facts.quantized:
        detail = " (quantized" + (f": {', '.join(sorted(facts.quant_types))}" if facts.quant_types else "") + ")"
    reason = f"'{label}'{detail} is one of the profile's precisions {list(profile.precisions)}"
    if profile.preferred_precisions and profile.preferred_precisions[0] != label:
        reason += f"; the profile prefers {profile.preferred_precisions[0]}"
    return {"check": "precision", "ok": True, "precision": label, "reason": reason}
