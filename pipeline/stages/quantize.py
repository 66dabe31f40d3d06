"""quantize: INT8 by onnxruntime static QDQ and by NNCF for OpenVINO, calibrated on training samples; then what
each device profile needs beyond that (static shapes, its INT8 preset, NPU IR) under targets/<profile>/.
Every variant is scored on the test split (the task's metric) against the FP32 export."""
from __future__ import annotations

import torch

from devices.profile import load_profile
from export.scoring import evaluate_variant, run_outputs
from export.quantize.onnx import quantize_onnx_int8
from export.quantize.openvino import quantize_openvino_int8
from export.variants import TARGETS_DIR, evaluate_targets, prepare_for_profile
from pipeline.config import paths
from pipeline.evaluation.inputs import calibration_indices, model_inputs
from devices.io import read_json, write_json
from pipeline.stages.common import selected_methods, start, task_modality
from pipeline.tasks.models import task_score


def target_variants(params, out, task: str, calibration, x, reference, score) -> dict:
    """Variants for every profile in bench.profiles, with their task metric; listed in targets/manifest.json."""
    variants = {}
    for name in params.bench.profiles:
        entries = prepare_for_profile(load_profile(name), out, calibration, task,
                                      per_channel=params.quantize.per_channel)
        variants.update(evaluate_targets(out, entries, x, reference, score))
    # the folder is the stage's output even when every profile runs the standard exports as they are
    write_json(out / TARGETS_DIR / "manifest.json", {"profiles": params.bench.profiles, "variants": sorted(variants)})
    return variants


def quantize(params, task: str, method: str, modality, calibration, test) -> dict:
    out = paths.export_dir(task, method)
    config = read_json(paths.finetune_dir(task, method) / "config.json")
    score = task_score(params.tasks[task], test, config)
    onnx_int8 = quantize_onnx_int8(out / "model.onnx", out / "model.int8.onnx", calibration,
                                   per_channel=params.quantize.per_channel)
    ov_int8 = quantize_openvino_int8(out / "openvino" / "fp32" / "model.xml", out / "openvino-int8", calibration,
                                     preset=params.quantize.nncf_preset)
    x = modality.to_input(torch.from_numpy(test.x)).numpy()
    reference = run_outputs(out / "model.onnx", x)  # INT8 is compared with the FP32 export
    variants = {"onnx-int8": evaluate_variant(onnx_int8, reference, x, score),
                "openvino-int8": evaluate_variant(ov_int8, reference, x, score)}
    variants.update(target_variants(params, out, task, calibration, x, reference, score))
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


def calibration_inputs(params, modality):
    """A seeded subset of the training split as model input (never test data)."""
    n_train = len(modality.load_split(paths.data_dir(modality.name), "train"))
    return model_inputs(modality, "train",
                        calibration_indices(n_train, params.quantize.calibration_samples, params.seed))[0]


def main() -> None:
    """Quantize exports already made (the DVC `export` stage calls `quantize` itself after exporting)."""
    args, params = start(__doc__, "task", optional=("method",))
    _, modality = task_modality(params, args.task)
    calibration = calibration_inputs(params, modality)
    test = modality.load_split(paths.data_dir(modality.name), "test")
    for method in selected_methods(args, params):
        quantize(params, args.task, method, modality, calibration, test)


if __name__ == "__main__":
    main()
