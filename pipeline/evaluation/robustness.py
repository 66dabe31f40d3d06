"""The task metric on corrupted test inputs, for each method's fine-tuned PyTorch model and its standard exports.

Corruptions (modalities/<kind>/corruptions.py) apply to the test split's raw inputs, what an app receives
(images, clips, waveforms, texts). Each corruption x severity corrupts them once (seeded) and encodes them
to model input once; every method x variant then runs on those same inputs and is scored with the task's
metric (pipeline/tasks, the scorer the export stage uses). Per model and variant: the clean metric, the
metric per corruption and severity, their mean, the relative drop from clean, and ImageNet-C's mean
corruption error against the random-init method's same variant: per corruption the errors (1 - metric)
summed over severities, divided by the random model's, averaged over corruptions (the random model's is
1.0). Anomaly tasks corrupt normal and anomalous clips alike (AUROC) and add the false-alarm rate at the
threshold the model ships with; detection keeps the boxes as they are.

Classification tasks also measure, always, the frozen pretrained encoders with the linear probe the probe stage
fitted (models/probe/): "linear-probe" is the encoder at its pretraining budget (equal compute),
"linear-probe-equal-epochs" the one trained for the reference method's epochs. The same protocol at
both budgets gives the MAE-versus-SimCLR robustness verdict at equal epochs as well as at equal compute,
without fine-tuning a second MAE per task.
"""
from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from devices.io import read_json, write_json, write_text
from export.standard import IR_FILES, ONNX_FILES
from pipeline.config import paths
from pipeline.evaluation.probes import LinearProbe, extract_features
from pipeline.models.loading import pretrained_encoder
from pipeline.tasks.models import finetuned_model, run_model, task_score

VARIANT_FILES = {"onnx-fp32": ONNX_FILES["fp32"], "onnx-int8": ONNX_FILES["int8"], "openvino-int8": IR_FILES["int8"]}
PROBE_VARIANTS = {"linear-probe": False, "linear-probe-equal-epochs": True}  # variant -> trained at equal epochs
REFERENCE_METHOD = "random"  # mCE is relative to the random-init encoder's model
CURVE_COLUMNS = ["method", "variant", "corruption", "severity", "metric"]
CHANCE = {"auroc": 0.5, "map": 0.0}  # accuracy: the majority class's share of the test samples

Run = Callable[[np.ndarray], list[np.ndarray]]


def robustness_file(task: str) -> Path:
    return paths.METRICS / "robustness" / f"{task}.json"


def curves_file(task: str) -> Path:
    return paths.METRICS / "robustness" / "curves" / f"{task}.csv"


# ---- inputs ---------------------------------------------------------------------------------------------

def capped_indices(y: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded pick of exactly `limit` samples, each class (anomaly kind) keeping its share
    (largest remainders round); all of them without a limit."""
    y = np.asarray(y)
    if not limit or limit >= len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    share = limit * counts / len(y)
    quota = np.floor(share).astype(int)
    quota[np.argsort(quota - share, kind="stable")[:limit - quota.sum()]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == c))[:n] for c, n in zip(classes, quota)]
    return np.sort(np.concatenate(picked))


def take(raw, indices: np.ndarray):
    """The raw inputs at `indices` (a list of texts or an array)."""
    return [raw[i] for i in indices] if isinstance(raw, list) else np.asarray(raw)[indices]


def _check_corrupted(name: str, raw, corrupted) -> None:
    """A corruption returns the batch's type, length, and for arrays its shape and dtype."""
    if isinstance(raw, list):
        ok = isinstance(corrupted, list) and len(corrupted) == len(raw)
        want = f"a list of {len(raw)}"
    else:
        ok = isinstance(corrupted, np.ndarray) and corrupted.shape == raw.shape and corrupted.dtype == raw.dtype
        want = f"an array {raw.shape} {raw.dtype}"
    if not ok:
        got = (f"a list of {len(corrupted)}" if isinstance(corrupted, list) else
               f"an array {corrupted.shape} {corrupted.dtype}" if isinstance(corrupted, np.ndarray) else
               type(corrupted).__name__)
        raise ValueError(f"corruption '{name}' returned {got}, expected {want} like its input")


def model_input(modality, stored: np.ndarray) -> np.ndarray:
    return modality.to_input(torch.from_numpy(np.ascontiguousarray(stored))).numpy()


def chance_level(metric: str, split) -> float:
    if metric in CHANCE:
        return CHANCE[metric]
    return float(np.bincount(split.y).max() / len(split))


# ---- models ---------------------------------------------------------------------------------------------

def _session_run(path: Path) -> Run:
    from devices.runtimes import open_session

    session = open_session(path)
    return lambda x: session.predict_all(x, batch_size=256)


def open_models(params, task: str, modality, methods: list[str], variants: list[str],
                log: Callable[[str], None] = print) -> dict[tuple[str, str], tuple[Run, dict]]:
    """{(method, variant): (run on model input, the fine-tune's config.json)}; an export file that is missing
    (its quantization failed) is left out with a note."""
    models = {}
    for method in methods:
        model, config = finetuned_model(modality, params, task, method)
        for variant in variants:
            if variant == "pytorch":
                models[method, variant] = (lambda x, model=model: run_model(model, x)), config
                continue
            path = paths.export_dir(task, method) / VARIANT_FILES[variant]
            if not path.is_file():
                log(f"robustness {task}: {path} not found; {method} {variant} left out")
                continue
            models[method, variant] = _session_run(path), config
    return models


def open_probes(params, modality, methods: list[str], configs: dict,
                log: Callable[[str], None] = print) -> dict[tuple[str, str], tuple[Run, dict]]:
    """{(method, probe variant): (run on model input, config)}: each frozen encoder with the linear probe the
    probe stage fitted on it. A method and budget whose encoder is the same (SimCLR, the reference, and random
    init at both budgets) share one run, so it is computed once per input."""
    runs, shared = {}, {}
    for method in methods:
        if method not in configs:
            log(f"robustness: the fine-tuned {method} model not found; its linear probes left out")
            continue
        for variant, at_equal_epochs in PROBE_VARIANTS.items():
            equal_epochs = at_equal_epochs and paths.equal_epochs_encoder(modality.name, method).is_file()
            if (method, equal_epochs) not in shared:
                probe_file = paths.linear_probe_file(modality.name, method, equal_epochs)
                if not probe_file.is_file():
                    raise FileNotFoundError(f"{probe_file}: no linear probe of the {method} encoder; run the probe "
                                            f"stage for modality '{modality.name}' first")
                encoder = pretrained_encoder(modality, params, method, equal_epochs=equal_epochs)
                shared[method, equal_epochs] = _linear_probe_run(encoder, LinearProbe(probe_file))
            runs[method, variant] = shared[method, equal_epochs], configs[method]
    return runs


def _linear_probe_run(encoder, probe: LinearProbe) -> Run:
    """The frozen encoder's features through the linear probe: class log-probabilities, which the classifier's
    scorer reads as logits."""
    return lambda x: [probe.log_proba(extract_features(encoder, None, x, 256))]


# ---- summary figures -----------------------------------------------------------------------------------

def corruption_error(by_corruption: dict[str, list[float]], reference: dict[str, list[float]]) -> float | None:
    """ImageNet-C's mCE: per corruption, sum over severities of (1 - metric) over the reference model's,
    averaged over corruptions; None where the reference makes no error on some corruption."""
    ratios = []
    for name, values in by_corruption.items():
        denominator = sum(1.0 - v for v in reference[name])
        if denominator <= 0:
            return None
        ratios.append(sum(1.0 - v for v in values) / denominator)
    return float(np.mean(ratios)) if ratios else None


def summarise(results: dict, corruptions: list[str]) -> dict:
    """results[(method, variant)] = {"clean", "by_corruption", optional "false_alarm_rate"} -> the JSON's
    "models": per method and variant also the mean over corruptions and severities, the relative drop and mCE."""
    models: dict[str, dict] = {}
    for (method, variant), r in results.items():
        values = [v for name in corruptions for v in r["by_corruption"][name]]
        mean = float(np.mean(values))
        entry = {"clean": r["clean"], "by_corruption": r["by_corruption"], "mean_corrupted": mean,
                 "relative_drop": (r["clean"] - mean) / r["clean"] if r["clean"] > 0 else None, "mce": None}
        reference = results.get((REFERENCE_METHOD, variant))
        if reference is not None:
            entry["mce"] = corruption_error(r["by_corruption"], reference["by_corruption"])
        if "false_alarm_rate" in r:
            entry["false_alarm_rate"] = r["false_alarm_rate"]
        models.setdefault(method, {})[variant] = entry
    return models


def curve_rows(models: dict, severities: list[int]) -> list[list]:
    """method, variant, corruption, severity, metric; severity 0 (clean) heads every corruption's curve."""
    rows = []
    for method, variants in models.items():
        for variant, entry in variants.items():
            for name, values in entry["by_corruption"].items():
                rows.append([method, variant, name, 0, entry["clean"]])
                rows += [[method, variant, name, s, v] for s, v in zip(severities, values)]
    return rows


# ---- the run ------------------------------------------------------------------------------------------

def run_robustness(params, task: str, modality, corruptions: dict | None = None,
                   log: Callable[[str], None] = print, started: float | None = None) -> dict:
    """Every method x variant of `task` on every corruption x severity of its test split: the JSON's content.
    `corruptions` defaults to the modality's; "seconds" counts from `started` (a perf_counter), else from now."""
    started = time.perf_counter() if started is None else started
    settings, task_params = params.robustness, params.tasks[task]
    corruptions = modality.corruptions() if corruptions is None else corruptions
    if not corruptions:
        raise ValueError(f"modality '{modality.name}' (kind {modality.kind}) lists no corruptions; "
                         f"add them in modalities/{modality.kind}/corruptions.py")
    data_dir = paths.data_dir(modality.name)
    test = modality.load_split(data_dir, "test")
    raw = modality.raw_inputs(data_dir, "test")
    if len(raw) != len(test):
        raise ValueError(f"{data_dir}: {len(raw)} raw test inputs but {len(test)} stored test samples; rerun prepare")
    chosen = capped_indices(test.y, settings.max_samples, params.seed)
    test, raw = test.subset(chosen), take(raw, chosen)
    models = open_models(params, task, modality, list(params.methods), list(settings.variants), log)
    configs = {method: config for (method, _), (_, config) in models.items()}
    if task_params.head == "classification":  # a linear probe stands in for a classification head only
        models.update(open_probes(params, modality, list(params.methods), configs, log))
    scorers = {method: task_score(task_params, test, config) for method, config in configs.items()}

    def evaluate(x: np.ndarray) -> dict[tuple[str, str], dict]:
        outputs = {}  # by run: a shared probe runs once
        for run, _ in models.values():
            if id(run) not in outputs:
                outputs[id(run)] = run(x)
        return {key: scorers[key[0]](outputs[id(run)]) for key, (run, _) in models.items()}

    clean = evaluate(model_input(modality, test.x))
    results = {key: {"clean": s["test_metric"], "by_corruption": {}} for key, s in clean.items()}
    anomaly = any("test_false_alarm_rate" in s for s in clean.values())
    if anomaly:
        for key, s in clean.items():
            results[key]["false_alarm_rate"] = {"clean": s["test_false_alarm_rate"]}
    for name, corruption in corruptions.items():
        began = time.perf_counter()
        for severity in settings.severities:
            corrupted = corruption(raw, severity, params.seed)
            _check_corrupted(name, raw, corrupted)
            scores = evaluate(model_input(modality, modality.encode_raw(corrupted, data_dir)))
            for key, s in scores.items():
                results[key]["by_corruption"].setdefault(name, []).append(s["test_metric"])
                if anomaly:
                    results[key]["false_alarm_rate"].setdefault(name, []).append(s["test_false_alarm_rate"])
        shown = ", ".join(f"{m} {results[m, 'pytorch']['by_corruption'][name][-1]:.3f}"
                          for m in params.methods if (m, "pytorch") in results)
        log(f"robustness {task}: {name} done in {time.perf_counter() - began:.1f}s"
            + (f" (PyTorch at severity {settings.severities[-1]}: {shown})" if shown else ""))
    names = list(corruptions)
    return {"task": task, "metric": task_params.metric, "severities": list(settings.severities),
            "corruptions": names, "test_samples": len(test), "seconds": round(time.perf_counter() - started, 1),
            "models": summarise(results, names), "max_samples": settings.max_samples,
            "chance": chance_level(task_params.metric, test)}


def write_outputs(task: str, result: dict) -> None:
    write_json(robustness_file(task), result)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    writer.writerows(curve_rows(result["models"], result["severities"]))
    write_text(curves_file(task), out.getvalue())


def read_result(task: str) -> dict | None:
    path = robustness_file(task)
    return read_json(path) if path.is_file() else None
