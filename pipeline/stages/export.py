"""export: the fine-tuned classifier to ONNX (dynamic batch) and OpenVINO IR (FP32, FP16), with parity on the test split."""
from __future__ import annotations

import shutil
import subprocess

import torch

from export.onnx_export import export_onnx
from export.openvino_export import export_openvino
from export.parity import accuracy, evaluate_variant
from pipeline import paths
from pipeline.data import model_inputs
from pipeline.io import atomic_path, write_json
from pipeline.models import finetuned_classifier
from pipeline.stages.common import start, task_modality


def source_commit() -> str:
    """The git commit the export was made from ('-dirty' when the tree has changes)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


ASSETS = "assets"  # beside model.onnx: what an app needs to feed the model (tokenizer, front end)


def write_assets(modality, folder, opset: int) -> list[str]:
    """Copy the modality's deploy files and export its front end into `folder`; returns the file names."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    names = []
    for source in modality.deploy_files(paths.data_dir(modality.name)):
        with atomic_path(folder / source.name) as tmp:
            shutil.copyfile(source, tmp)
        names.append(source.name)
    frontend = modality.frontend()
    if frontend is not None:
        module, spec = frontend
        metadata = {"role": "frontend", "modality": modality.name, "input_name": spec["name"],
                    "input_shape": spec["shape"], "input_dtype": spec["dtype"], "precision": "fp32"}
        example = torch.zeros((2, *spec["shape"][1:]), dtype=getattr(torch, spec["dtype"]))
        export_onnx(module.eval(), example, folder / "frontend.onnx", metadata, input_name=spec["name"],
                    output_names=["features"], opset=opset)
        names.append("frontend.onnx")
    write_json(folder / "manifest.json", {"modality": modality.name, "files": names})
    return names


def main() -> None:
    args, params = start(__doc__, "task", "method")
    modality_name, modality = task_modality(params, args.task)
    model, config = finetuned_classifier(modality, params, args.task, args.method)
    x, y = model_inputs(modality, "test")
    with torch.inference_mode():
        reference = model(torch.from_numpy(x)).numpy()
    spec = modality.input_spec()
    out = paths.export_dir(args.task, args.method)
    assets = write_assets(modality, out / ASSETS, params.export.opset)
    metadata = {
        "task": args.task, "head": params.tasks[args.task].head, "method": args.method, "modality": modality_name,
        "labels": config["labels"], "input_name": spec["name"], "input_shape": spec["shape"],
        "input_dtype": spec["dtype"], "preprocessing": modality.preprocessing(), "output": "logits",
        "source_commit": source_commit(), "precision": "fp32", "assets": assets,
    }
    if "range" in spec:
        metadata["input_range"] = spec["range"]
    onnx_path = export_onnx(model, modality.example_input(2), out / "model.onnx", metadata,
                            input_name=spec["name"], output_names=["logits"], opset=params.export.opset)
    irs = export_openvino(onnx_path, out / "openvino", params.export.openvino_precisions)
    variants = {"onnx-fp32": evaluate_variant(onnx_path, reference, x, y)}
    variants.update({f"openvino-{p}": evaluate_variant(xml, reference, x, y) for p, xml in irs.items()})
    metrics = {"task": args.task, "method": args.method, "torch_test_accuracy": accuracy(reference, y),
               "test_samples": len(y), "variants": variants}
    tolerance = params.export.parity_tolerance
    metrics["onnx_parity_ok"] = variants["onnx-fp32"]["max_abs_diff"] <= tolerance
    write_json(paths.metrics_file("export", f"{args.task}-{args.method}"), metrics)
    for name, v in variants.items():
        print(f"export {args.task}-{args.method} {name}: max |diff| {v['max_abs_diff']:.2e}, "
              f"top-1 agreement {v['top1_agreement']:.4f}, accuracy {v['test_accuracy']:.4f}")
    if not metrics["onnx_parity_ok"]:
        raise SystemExit(f"export {args.task}-{args.method}: ONNX output differs from PyTorch by "
                         f"{variants['onnx-fp32']['max_abs_diff']:.2e} > export.parity_tolerance {tolerance}")


if __name__ == "__main__":
    main()
