"""quantize: INT8 by onnxruntime static QDQ and by NNCF for OpenVINO, calibrated on training samples."""
from __future__ import annotations

from devices.runtimes import open_session
from export.parity import evaluate_variant
from export.quantize_onnx import quantize_onnx_int8
from export.quantize_openvino import quantize_openvino_int8
from pipeline import paths
from pipeline.data import calibration_indices, model_inputs
from pipeline.io import write_json
from pipeline.stages.common import start, task_modality


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
    write_json(paths.metrics_file("quantize", f"{args.task}-{args.method}"), {
        "task": args.task, "method": args.method, "calibration_samples": len(calibration),
        "reference": "onnx-fp32", "variants": variants})
    for name, v in variants.items():
        print(f"quantize {args.task}-{args.method} {name}: accuracy {v['test_accuracy']:.4f}, "
              f"top-1 agreement with fp32 {v['top1_agreement']:.4f}, {v['size_bytes'] / 2**20:.2f} MB")


if __name__ == "__main__":
    main()
