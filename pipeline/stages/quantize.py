"""quantize: INT8 by onnxruntime static QDQ and by NNCF for OpenVINO, calibrated on training samples; then what
each device profile needs beyond that (static shapes, its INT8 preset, NPU IR) under targets/<profile>/.
Every variant is scored on the test split against the FP32 export."""
from __future__ import annotations

from devices.profile import load_profile
from devices.runtimes import open_session
from export.parity import evaluate_variant
from export.quantize_onnx import quantize_onnx_int8
from export.quantize_openvino import quantize_openvino_int8
from export.targets import TARGETS_DIR, evaluate_targets, prepare_for_profile
from pipeline import paths
from pipeline.data import calibration_indices, model_inputs
from pipeline.io import write_json
from pipeline.stages.common import start, task_modality


def target_variants(params, out, task: str, calibration, x, y, reference) -> dict:
    """Variants for every profile in bench.profiles, with their accuracy; listed in targets/manifest.json."""
    variants = {}
    for name in params.bench.profiles:
        entries = prepare_for_profile(load_profile(name), out, calibration, task,
                                      per_channel=params.quantize.per_channel)
        variants.update(evaluate_targets(out, entries, x, y, reference))
    # the folder is the stage's output even when every profile runs the standard exports as they are
    write_json(out / TARGETS_DIR / "manifest.json", {"profiles": params.bench.profiles, "variants": sorted(variants)})
    return variants


def main() -> None:
    args, params = start(__doc__, "task", "method")
    _, modality = task_modality(params, args.task)
    out = paths.export_dir(args.task, args.method)
    n_train = len(modality.load_split(paths.data_dir(modality.name), "train"))
    calibration, _ = model_inputs(modality, "train",
                                  calibration_indices(n_train, params.quantize.calibration_samples, params.seed))
    onnx_int8 = quantize_onnx_int8(out / "model.onnx", out / "model.int8.onnx", calibration,
                                   per_channel=params.quantize.per_channel)
    ov_int8 = quantize_openvino_int8(out / "openvino" / "fp32" / "model.xml", out / "openvino-int8", calibration)
    x, y = model_inputs(modality, "test")
    reference = open_session(out / "model.onnx").predict(x)  # INT8 is compared with the FP32 export
    variants = {"onnx-int8": evaluate_variant(onnx_int8, reference, x, y),
                "openvino-int8": evaluate_variant(ov_int8, reference, x, y)}
    variants.update(target_variants(params, out, args.task, calibration, x, y, reference))
    write_json(paths.metrics_file("quantize", f"{args.task}-{args.method}"), {
        "task": args.task, "method": args.method, "calibration_samples": len(calibration),
        "reference": "onnx-fp32", "variants": variants})
    for name, v in variants.items():
        detail = (f"failed: {v['error']}" if "error" in v else
                  f"accuracy {v['test_accuracy']:.4f}, top-1 agreement with fp32 {v['top1_agreement']:.4f}, "
                  f"{v['size_bytes'] / 2**20:.2f} MB")
        print(f"quantize {args.task}-{args.method} {name}: {detail}")


if __name__ == "__main__":
    main()
