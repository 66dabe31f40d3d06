"""quantize: INT8 by onnxruntime static QDQ and by NNCF for OpenVINO, calibrated on training samples; then what
each device profile needs beyond that (static shapes, its INT8 preset, NPU IR) under targets/<profile>/.
Every variant is scored on the test split (the task's metric) against the FP32 export."""
from __future__ import annotations

from devices.io import read_json, write_json
from export.scoring import evaluate_variant, run_outputs
from export.standard import ONNX_FILES, quantize_standard
from export.variants import prepare_profiles
from pipeline.config import paths
from pipeline.evaluation.inputs import calibration_inputs, model_inputs
from pipeline.stages.common import selected_methods, start, task_modality
from pipeline.tasks.models import task_score


def quantize(params, task: str, method: str, calibration, test, x_test) -> dict:
    """INT8 and device variants of one method's export; `x_test`: the test split as model input."""
    out = paths.export_dir(task, method)
    config = read_json(paths.finetune_dir(task, method) / "config.json")
    score = task_score(params.tasks[task], test, config)
    int8 = quantize_standard(out, calibration, per_channel=params.quantize.per_channel,
                             nncf_preset=params.quantize.nncf_preset)
    reference = run_outputs(out / ONNX_FILES["fp32"], x_test)  # INT8 is compared with the FP32 export
    variants = {name: evaluate_variant(path, reference, x_test, score) for name, path in int8.items()}
    variants.update(prepare_profiles(params.bench.profiles, out, calibration, task, x_test, reference, score,
                                     per_channel=params.quantize.per_channel))
    metrics = {"task": task, "method": method, "metric": params.tasks[task].metric,
               "fp32_test_metric": score(reference)["test_metric"], "calibration_samples": len(calibration),
               "reference": "onnx-fp32", "variants": variants}
    write_json(paths.metrics_file("quantize", task, method), metrics)
    for name, v in variants.items():
        detail = (f"failed: {v['error']}" if "error" in v else
                  f"{metrics['metric']} {v['test_metric']:.4f} (fp32 {metrics['fp32_test_metric']:.4f}), "
                  f"{v['size_bytes'] / 2**20:.2f} MB")
        print(f"quantize {task}-{method} {name}: {detail}")
    return metrics


def task_calibration(params, modality):
    """The calibration samples params.quantize asks for."""
    return calibration_inputs(modality, params.quantize.calibration_samples, params.seed)


def main() -> None:
    """Quantize exports already made (the DVC `export` stage calls `quantize` itself after exporting)."""
    args, params = start(__doc__, "task", optional=("method",), stage="export")  # export runs it in-process
    _, modality = task_modality(params, args.task)
    calibration = task_calibration(params, modality)
    test = modality.load_split(paths.data_dir(modality.name), "test")
    x_test = model_inputs(modality, test)
    for method in selected_methods(args, params):
        quantize(params, args.task, method, calibration, test, x_test)


if __name__ == "__main__":
    main()
