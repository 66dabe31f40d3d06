"""targets: what each device profile needs beyond the standard exports (static shapes, preset INT8, NPU IR),
written under exports/<task>-<method>/targets/<profile>/, each variant scored on the test split."""
from __future__ import annotations

from devices.profile import load_profile
from devices.runtimes import open_session
from export.targets import TARGETS_DIR, evaluate_targets, prepare_for_profile
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
    x, y = model_inputs(modality, "test")
    reference = open_session(out / "model.onnx").predict(x)  # variants are compared with the FP32 export
    variants = {}
    for name in params.bench.profiles:
        entries = prepare_for_profile(load_profile(name), out, calibration, args.task,
                                      per_channel=params.quantize.per_channel)
        variants.update(evaluate_targets(out, entries, x, y, reference))
    # the folder is the stage's output even when every profile runs the standard exports as they are
    write_json(out / TARGETS_DIR / "manifest.json", {"profiles": params.bench.profiles, "variants": sorted(variants)})
    write_json(paths.metrics_file("targets", f"{args.task}-{args.method}"), {
        "task": args.task, "method": args.method, "reference": "onnx-fp32", "variants": variants})
    for path, v in variants.items():
        detail = (f"error {v['error']}" if "error" in v else
                  f"accuracy {v['test_accuracy']:.4f}, top-1 agreement with fp32 {v['top1_agreement']:.4f}")
        print(f"targets {args.task}-{args.method} {path}: {detail}")


if __name__ == "__main__":
    main()
