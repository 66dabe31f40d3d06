"""Deployment exports of a trained task model.

    standard.py       torch -> model.onnx (onnx.py) -> OpenVINO IR FP32/FP16 (openvino.py); their INT8
    metadata.py       what the model files carry, written and read
    assets.py         what an app needs beside the model (tokenizer, front end)
    quantize/         one table of quantization presets -> quantizers (presets.py), one calibration reader
    static_shapes.py  fixed input shapes for devices that need them
    variants.py       per-device-profile variants under targets/<profile>/
    scoring.py        a variant's task metric, size and agreement with the float reference
    files.py          outputs moved into place (0644), leftovers of killed runs removed

Only onnx.py and assets.py need torch; the rest runs without it.
"""
