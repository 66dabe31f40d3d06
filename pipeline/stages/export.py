"""export: each fine-tuned task model to ONNX (dynamic batch) and OpenVINO IR (FP32, FP16), with parity and the
task metric on the test split; then its INT8 and per-device variants (pipeline/stages/quantize.py) and its model
card (MODEL_CARD.md, export/model_card.py). The methods run in `export.workers` forked processes at once: the
work is mostly single-threaded, and a fork does not import torch, OpenVINO and optimum again."""
from __future__ import annotations

import csv
import io
from functools import partial

import numpy as np
from sklearn.metrics import roc_curve

from devices.io import read_json, write_json, write_text
from export.assets import write_assets
from export.files import remove_stale_scratch
from export.metadata import flops_per_sample, model_metadata
from export.model_card import CARD_FILE, card_facts, card_metadata, render_card
from export.scoring import evaluate_variant
from export.standard import export_standard
from pipeline.config import paths
from pipeline.evaluation.inputs import model_inputs
from pipeline.stages.common import run_methods, seed_everything, selected_methods, start, task_modality
from pipeline.stages.quantize import quantize, task_calibration
from pipeline.tasks.models import finetuned_model, head_metadata, run_model, task_score


def export_model(params, task: str, method: str, modality, test, x_test) -> dict:
    """FP32 exports of one method's model, scored on the test split (`x_test`: it as model input)."""
    task_params = params.tasks[task]
    model, config = finetuned_model(modality, params, task, method)
    reference = run_model(model, x_test)
    score = task_score(task_params, test, config)
    torch_metrics = score(reference)
    out = paths.export_dir(task, method)
    assets = write_assets(modality, out, paths.data_dir(modality.name), params.export.opset)
    head_fields = head_metadata(task_params, model, config)
    metadata = model_metadata(modality, task=task, head=task_params.head, method=method, labels=config["labels"],
                              head_fields=head_fields, assets=assets)
    facts = card_facts(metadata, head_fields, metric=task_params.metric, test_metric=torch_metrics["test_metric"],
                       manifest=read_json(paths.data_dir(modality.name) / "manifest.json"),
                       pretrain=optional_json(paths.metrics_file("pretrain", modality.name, method)),
                       finetune=optional_json(paths.metrics_file("finetune", task, method)),
                       baseline=optional_json(paths.baseline_file(task)),
                       flops=flops_per_sample(model, modality.example_input(1)), profiles=params.bench.profiles)
    exports = export_standard(model, modality, out, {**metadata, **card_metadata(facts)}, opset=params.export.opset,
                              precisions=params.export.openvino_precisions)
    variants = {name: evaluate_variant(path, reference, x_test, score) for name, path in exports.items()}
    metrics = {"task": task, "method": method, "metric": task_params.metric, "torch_test_metric": torch_metrics["test_metric"],
               "test_samples": len(test), "flops_per_sample": facts["flops_per_sample"], "variants": variants,
               "model_card": facts}
    if "test_accuracy" in torch_metrics:
        metrics["torch_test_accuracy"] = torch_metrics["test_accuracy"]
    metrics["onnx_parity_ok"] = variants["onnx-fp32"]["max_abs_diff"] <= params.export.parity_tolerance
    write_json(paths.metrics_file("export", task, method), metrics)
    write_plot_data(task, method, metadata, test, reference)
    for name, v in variants.items():
        print(f"export {task}-{method} {name}: max |diff| {v['max_abs_diff']:.2e}, "
              f"{task_params.metric} {v['test_metric']:.4f} (PyTorch {metrics['torch_test_metric']:.4f})")
    return metrics


def optional_json(path):
    return read_json(path) if path.is_file() else None


def write_plot_data(task: str, method: str, metadata: dict, test, outputs: list) -> None:
    """What `dvc plots` draws beside the metrics: a classifier's true and predicted label per test sample
    (confusion matrix) or an anomaly scorer's ROC curve, chosen by the model's declared output."""
    if metadata.get("output") == "logits":
        labels = np.asarray(metadata["labels"], dtype=object)
        kind, rows = "confusion", [("actual", "predicted"), *zip(labels[test.y], labels[outputs[0].argmax(-1)])]
    elif metadata.get("output") == "score":
        fpr, tpr, _ = roc_curve(test.is_anomaly, outputs[0].reshape(-1))
        kind, rows = "roc", [("fpr", "tpr"), *((f"{f:.6f}", f"{t:.6f}") for f, t in zip(fpr, tpr))]
    else:
        return
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    write_text(paths.METRICS / "export" / task / kind / f"{method}.csv", text.getvalue())


def export_method(method: str, params, task: str) -> str | None:
    """Export and quantize one method's model (a process of its own, see run_methods); a parity failure, if any."""
    seed_everything(params.seed)
    _, modality = task_modality(params, task)
    remove_stale_scratch(paths.export_dir(task, method))  # what a killed export left behind
    test = modality.load_split(paths.data_dir(modality.name), "test")
    x_test = model_inputs(modality, test)  # once, for the FP32 exports and the INT8 ones
    metrics = export_model(params, task, method, modality, test, x_test)
    if not metrics["onnx_parity_ok"]:
        return f"{task}-{method}: {metrics['variants']['onnx-fp32']['max_abs_diff']:.2e}"
    quantized = quantize(params, task, method, task_calibration(params, modality), test, x_test)
    write_text(paths.export_dir(task, method) / CARD_FILE, render_card(metrics, quantized))
    return None


def main() -> None:
    args, params = start(__doc__, "task", optional=("method",))
    task_modality(params, args.task)  # an unknown task stops here, before any process starts
    results = run_methods(partial(export_method, params=params, task=args.task), selected_methods(args, params),
                          params.export.workers)
    failed = [failure for failure in results if failure]
    if failed:
        raise SystemExit(f"export: ONNX output differs from PyTorch by more than export.parity_tolerance "
                         f"{params.export.parity_tolerance}: " + "; ".join(failed))


if __name__ == "__main__":
    main()
