"""Batch-1 latency end to end, for models an app must feed through a front end first.

An audio export ships ``assets/frontend.onnx`` (waveform -> log-mel) and a text export
``assets/tokenizer.json``; the model's metadata names them under "preprocessing". For such a model
the timed call is what an app runs per input: a raw input (a seeded random waveform of the model's
clip length at its sample rate, or a fixed English sentence) -> the modality's preprocessing (the
code devices.predict.Predictor runs) -> the model. Models whose metadata names no front end get
nothing. A front end that cannot be loaded or run is recorded with the reason, never raised.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from devices.latency import measure
from devices.metadata import decode_metadata, validate_metadata
from devices.predict import find_assets
from devices.preprocess import InputSpec, preprocess

SENTENCE = "The quick brown fox jumps over the lazy dog by the river bank."


def _waveform(spec: InputSpec) -> np.ndarray:
    """A seeded random waveform of clip_samples samples, taken to be at the model's sample rate."""
    samples = int(spec.preprocessing["clip_samples"])
    return np.random.default_rng(0).uniform(-0.5, 0.5, samples).astype(np.float32)


# modality -> (the "preprocessing" key naming its front-end asset, the raw input an app would have)
FRONT_ENDS = {
    "audio": ("frontend", _waveform),
    "text": ("tokenizer", lambda spec: SENTENCE),
}


def front_end_of(metadata: dict[str, Any]) -> str | None:
    """The asset file of the model's front end (e.g. "frontend.onnx"), or None if its metadata names none."""
    meta = decode_metadata(metadata)
    entry = FRONT_ENDS.get(meta.get("modality"))
    pre = meta.get("preprocessing")
    if entry is None or not isinstance(pre, dict) or not pre.get(entry[0]):
        return None
    return str(pre[entry[0]])


def measure_end_to_end(session, path: Path, profile) -> dict:
    """The end-to-end fields for the model's batch-1 row: {} without a front end; else "e2e_front_end"
    with "e2e_p50_ms", "e2e_p99_ms", "e2e_iterations", or with "e2e_error" saying why it was not measured."""
    name = front_end_of(session.metadata)
    if name is None:
        return {}
    try:
        assets = find_assets(path)
        # asset names come from the model file: checked as Predictor checks them before anything is opened
        validate_metadata(path, decode_metadata(session.metadata), session.input_shape, session.input_dtype, assets)
        spec = InputSpec.from_metadata(session.metadata, session.input_shape, session.input_dtype,
                                       session.input_name, assets)
        raw = FRONT_ENDS[spec.modality][1](spec)
        # a one-element stand-in makes measure count batch 1; the call itself starts from the raw input
        stats = measure(lambda _: session.run(preprocess(raw, spec)), np.zeros(1, np.float32),
                        profile.warmup_iterations, profile.min_iterations, profile.min_seconds)
    except Exception as exc:  # any failure of the front end is a finding for the report, not a crash
        return {"e2e_front_end": name, "e2e_error": f"{type(exc).__name__}: {exc}"}
    return {"e2e_front_end": name, "e2e_p50_ms": stats["p50_ms"], "e2e_p99_ms": stats["p99_ms"],
            "e2e_iterations": stats["iterations"]}
