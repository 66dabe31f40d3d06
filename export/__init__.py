"""Deployment exports of a trained classifier.

torch -> single-file ONNX (with metadata) -> OpenVINO IR (FP32/FP16) and INT8 variants
(onnxruntime static QDQ, NNCF post-training quantization), plus parity helpers to compare
them against the float reference. Only `onnx_export` needs torch; the rest runs without it.
"""
