"""export: each fine-tuned task model to ONNX (dynamic batch) and OpenVINO IR (FP32, FP16), with parity and the
task metric on the test split; then its INT8 and per-device variants (pipeline/stages/quantize.py). The
methods run in `export.workers` forked processes at once: the work is mostly single-threaded, and a fork
does not import torch, OpenVINO and optimum again."""
from __future__ import annotations

from functools import partial

from devices.io import write_json
from export.assets import write_assets
from export.files import remove_stale_scratch
from export.metadata import model_metadata
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
    out = paths.export_dir(task, method)
    assets = write_assets(modality, out, paths.data_dir(modality.name), params.export.opset)
    metadata = model_metadata(modality, task=task, head=task_params.head, method=method, labels=config["labels"],
                              head_fields=head_metadata(task_params, model, config), assets=assets)
    exports = export_standard(model, modality, out, metadata, opset=params.export.opset,
                              precisions=params.export.openvino_precisions)
    variants = {name: evaluate_variant(path, reference, x_test, score) for name, path in exports.items()}
    torch_metrics = score(reference)
    metrics = {"task": task, "method": method, "metric": task_params.metric, "torch_test_metric": torch_metrics["test_metric"],
               "test_samples": len(test), "variants": variants}
    if "test_accuracy" in torch_metrics:
        metrics["torch_test_accuracy"] = torch_metrics["test_accuracy"]
    metrics["onnx_parity_ok"] = variants["onnx-fp32"]["max_abs_diff"] <= params.export.parity_tolerance
    write_json(paths.metrics_file("export", task, method), metrics)
    for name, v in variants.items():
        print(f"export {task}-{method} {name}: max |diff| {v['max_abs_diff']:.2e}, "
              f"{task_params.metric} {v['test_metric']:.4f} (PyTorch {metrics['torch_test_metric']:.4f})")
    return metrics


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
    quantize(params, task, method, task_calibration(params, modality), test, x_test)
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
