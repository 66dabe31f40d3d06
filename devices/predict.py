"""Run an exported model on raw inputs, the way an app would: no torch, metadata-driven.

    python -m devices.predict exports/digits/mae/model.onnx digit.png [more.png ...] [--top-k 3] [--json]

    from devices.predict import Predictor
    predictor = Predictor("exports/digits/mae/model.onnx")      # or an OpenVINO .xml
    predictor.predict("digit.png")            # [{"input": "digit.png", "label": "7", "index": 7, "score": 0.98,
                                              #   "top_k": [{"label": "7", "index": 7, "score": 0.98}, ...]}]
    predictor.predict(batch)                  # a model-ready float32 array [N, 1, 28, 28] in [0, 1]

The model's metadata (written by the exporter) says what it takes and what its classes are:
"modality" picks the preprocessing (devices/preprocess registry), "preprocessing" /
"input_shape" / "input_dtype" say how, "labels" names the classes, "output" says whether the
model returns logits (softmax is applied) or probabilities. "task_kind" says what the outputs are:
a classifier's logits (the default), a detector's boxes and scores (post-processed with the
metadata's "postprocess" thresholds: [{"label", "index", "score", "box": [x0, y0, x1, y1]}, ...] per
input), or an anomaly score (compared with the metadata's "threshold": {"score", "anomalous"}).
All of it is checked when the model is loaded (devices.metadata.validate_metadata), before any input is read:
a model file may come from anyone, so its metadata must agree with its graph and stay within sane limits.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from devices.metadata import MetadataError, decode_metadata, validate_metadata
from devices.model_files import UnknownModelFormat, runtime_of
from devices.preprocess import InputSpec, PreprocessError, preprocess


class ModelLoadError(ValueError):
    """A model file that cannot be loaded (not a model, truncated, unreadable)."""


class InputError(ValueError):
    """An input that does not match what the model takes."""


ASSETS_SEARCH_DEPTH = 5  # exports/<model>/targets/<profile>/openvino/fp16/model.xml -> exports/<model>/assets


def find_assets(model_path: Path) -> Path | None:
    """The export's assets/ folder: beside the model file or in a folder above it (OpenVINO IR, target variants)."""
    for folder in list(model_path.resolve().parents)[:ASSETS_SEARCH_DEPTH]:
        if (folder / "assets" / "manifest.json").is_file():
            return folder / "assets"
    return None


class Predictor:
    """An exported classifier with its metadata: preprocess raw inputs, predict labels and scores."""

    def __init__(self, model_path: str | Path, *, provider: str | None = None, device: str | None = None,
                 threads: int | None = None):
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model file not found")
        try:
            self.runtime = runtime_of(path)
        except UnknownModelFormat as exc:
            raise ModelLoadError(f"{path}: not an exported model (expected a .onnx file or an OpenVINO .xml)") from exc
        from devices.runtimes import open_session

        try:
            self.session = open_session(path, threads, provider=provider, device=device)
        except FileNotFoundError:
            raise
        except Exception as exc:  # onnxruntime / OpenVINO raise their own exception types
            message = str(exc)
            if not message.startswith(str(path)):
                message = f"{path}: cannot load this model: {message}"
            raise ModelLoadError(message) from exc
        self.path = path
        self.metadata: dict[str, Any] = decode_metadata(self.session.metadata)
        assets = find_assets(path)
        # before anything acts on it: sizes, thresholds and asset names come from a file the app did not make
        validate_metadata(path, self.metadata, self.session.input_shape, self.session.input_dtype, assets)
        self.spec = InputSpec.from_metadata(self.session.metadata, self.session.input_shape,
                                            self.session.input_dtype, self.session.input_name, assets)
        labels = self.metadata.get("labels")
        self.labels: list[str] | None = [str(label) for label in labels] if isinstance(labels, list) else None
        self.output_kind = str(self.metadata.get("output") or "logits")

    # --- inputs -----------------------------------------------------------------------------------

    def preprocess(self, item: Any) -> np.ndarray:
        """One raw input (image path, PIL image, uint8 pixels, ...) -> model input (1, ...)."""
        return preprocess(item, self.spec)

    def check_array(self, x: Any, name: str = "input") -> np.ndarray:
        """Validate a model-ready array: the model's dtype and shape (with its batch axis)."""
        expected = f"{self.spec.dtype} {self.spec.shape_text()}"
        if not isinstance(x, np.ndarray):
            raise InputError(f"{name}: expected a numpy array {expected}, got {type(x).__name__}")
        if x.dtype != self.spec.dtype:
            hint = " (raw pixels? pass the image file, or Predictor.preprocess the array first)" \
                if x.dtype == np.uint8 else ""
            raise InputError(f"{name}: model '{self.spec.name}' takes {expected}, got {x.dtype} {list(x.shape)}{hint}")
        shape = self.spec.shape
        if x.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape[1:], x.shape[1:])) \
                or x.shape[0] == 0:
            raise InputError(f"{name}: model '{self.spec.name}' takes {expected}, got {x.dtype} {list(x.shape)}")
        return x

    def _gather(self, inputs: Any) -> tuple[np.ndarray, list[str]]:
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise InputError("no inputs given")
        arrays, names = [], []
        for i, item in enumerate(items):
            if isinstance(item, np.ndarray):  # model-ready; raw pixel arrays go through preprocess()
                label = f"array[{i}]" if len(items) > 1 else "array"
                batch = self.check_array(item, label)
                arrays.append(batch)
                names += [f"{label}[{j}]" for j in range(len(batch))] if len(batch) > 1 else [label]
            else:
                arrays.append(self.preprocess(item))
                names.append(str(item) if isinstance(item, (str, Path)) else f"input[{i}]")
        return np.concatenate(arrays, axis=0), names

    # --- running ----------------------------------------------------------------------------------

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output of the model for a model-ready batch (chunked to a fixed batch size if it has one)."""
        x = np.ascontiguousarray(self.check_array(x))
        fixed = self.spec.shape[0] if self.spec.shape else None
        if fixed is None or fixed == len(x):
            return [np.asarray(o) for o in self.session.run_all(x)]
        parts = []
        for start in range(0, len(x), fixed):
            chunk = x[start:start + fixed]
            pad = fixed - len(chunk)
            if pad:  # the last chunk of a fixed-batch model: pad, then drop the padded rows
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            parts.append([np.asarray(o)[: fixed - pad] for o in self.session.run_all(np.ascontiguousarray(chunk))])
        return [np.concatenate(p, axis=0) for p in zip(*parts)]

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The model's first output (a classifier's logits) for a model-ready batch."""
        return self.outputs(x)[0]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        out = self.logits(x).astype(np.float64)
        if out.ndim != 2:
            raise ValueError(f"{self.path}: expected a [N, classes] output, got shape {list(out.shape)}")
        if self.output_kind in ("probabilities", "probs", "softmax"):
            return out
        out = out - out.max(axis=1, keepdims=True)
        np.exp(out, out=out)
        return out / out.sum(axis=1, keepdims=True)

    def predict(self, inputs: Any, top_k: int = 3) -> list[dict]:
        """Labels and scores for one input, a list of inputs, or a model-ready batch array.

        Each result: {"input", "label", "index", "score", "top_k": [{"label", "index", "score"}, ...]},
        score being the softmax probability.
        """
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
        x, names = self._gather(inputs)
        kind = self.metadata.get("task_kind", "classification")
        if kind == "detection":
            return self._detections(x, names)
        if kind == "anomaly":
            return self._anomaly_scores(x, names)
        probs = self.probabilities(x)
        classes = probs.shape[1]
        if self.labels is not None and len(self.labels) != classes:
            raise ValueError(f"{self.path}: metadata has {len(self.labels)} labels but the model outputs {classes} classes")
        labels = self.labels or [str(i) for i in range(classes)]
        results = []
        for name, row in zip(names, probs):
            order = np.argsort(-row, kind="stable")[: min(top_k, classes)]
            top = [{"label": labels[int(i)], "index": int(i), "score": float(row[i])} for i in order]
            results.append({"input": name, **top[0], "top_k": top})
        return results

    def _label(self, index: int) -> str:
        return self.labels[index] if self.labels and index < len(self.labels) else str(index)

    def _detections(self, x: np.ndarray, names: list[str]) -> list[dict]:
        from devices.postprocess.detection import postprocess

        boxes, scores = self.outputs(x)[:2]
        found = postprocess(boxes, scores, **self.metadata.get("postprocess", {}))
        return [{"input": name, "detections": [
                    {"label": self._label(int(c)), "index": int(c), "score": float(s), "box": [float(v) for v in b]}
                    for b, s, c in zip(image["boxes"], image["scores"], image["labels"])]}
                for name, image in zip(names, found)]

    def _anomaly_scores(self, x: np.ndarray, names: list[str]) -> list[dict]:
        threshold = float(self.metadata["threshold"])  # present and finite: validate_metadata checked it
        scores = self.outputs(x)[0].reshape(len(x), -1)[:, 0]
        return [{"input": name, "score": float(s), "threshold": threshold, "anomalous": bool(s > threshold)}
                for name, s in zip(names, scores)]


# --- command line -----------------------------------------------------------------------------------


def _load_input(text: str):
    path = Path(text)
    if path.suffix == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: input file not found")
        return np.load(path, allow_pickle=False)
    return text


def format_results(results: Iterable[dict]) -> str:
    lines = []
    for r in results:
        if "detections" in r:
            found = ", ".join(f"{d['label']} {d['score']:.2f} [{', '.join(f'{v:.0f}' for v in d['box'])}]"
                              for d in r["detections"])
            lines.append(f"{r['input']}: {len(r['detections'])} detections{': ' + found if found else ''}")
            continue
        if "anomalous" in r:
            verdict = "ANOMALOUS" if r["anomalous"] else "normal"
            lines.append(f"{r['input']}: {verdict} (score {r['score']:.4f}, threshold {r['threshold']:.4f})")
            continue
        others = ", ".join(f"{t['label']} {t['score']:.3f}" for t in r["top_k"])
        lines.append(f"{r['input']}: {r['label']} ({r['score']:.3f})  top-{len(r['top_k'])}: {others}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="exported model: .onnx (onnxruntime) or OpenVINO .xml")
    parser.add_argument("inputs", nargs="+", help="images, clips, sound files, texts (or .npy model-ready arrays)")
    parser.add_argument("--top-k", type=int, default=3, help="how many classes to list per input (default 3)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--provider", default=None, help="onnxruntime execution provider (default: CPU)")
    parser.add_argument("--device", default=None, help="OpenVINO device (default: CPU)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: runtime's)")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top-k must be >= 1")
    try:
        predictor = Predictor(args.model, provider=args.provider, device=args.device, threads=args.threads)
        results = []
        for text in args.inputs:  # one at a time, so each result is named after its file
            item = _load_input(text)
            for r in predictor.predict(item, top_k=args.top_k):
                if isinstance(item, np.ndarray):
                    r["input"] = text + r["input"].removeprefix("array")
                results.append(r)
    except (FileNotFoundError, ModelLoadError, MetadataError, InputError, PreprocessError, ValueError,
            RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(results, indent=2) if args.json else format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
