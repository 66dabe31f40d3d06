"""export: each fine-tuned task model to ONNX (dynamic batch) and OpenVINO IR (FP32, FP16), with parity and the
task metric on the test split; then its INT8 and per-device variants (pipeline/stages/quantize.py). The
methods run in `export.workers` forked processes at once: the work is mostly single-threaded, and a fork
does not import torch, OpenVINO and optimum again."""
from __future__ import annotations

import shutil
import subprocess
from functools import partial

import torch

from export.onnx import export_onnx
from export.openvino import export_openvino
from export.scoring import evaluate_variant
from pipeline.config import paths
from devices.io import atomic_path, write_json
from pipeline.stages.common import run_methods, seed_everything, selected_methods, start, task_modality
from pipeline.stages.quantize import calibration_inputs, quantize
from pipeline.tasks.models import finetuned_model, head_metadata, run_model, task_score


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


def export_model(params, task: str, method: str, modality, test) -> dict:
    task_params = params.tasks[task]
    model, config = finetuned_model(modality, params, task, method)
    x = modality.to_input(torch.from_numpy(test.x)).numpy()
    reference = run_model(model, x)
    score = task_score(task_params, test, config)
    spec = modality.input_spec()
    out = paths.export_dir(task, method)
    assets = write_assets(modality, out / ASSETS, params.export.opset)
    metadata = {
        "task": task, "head": task_params.head, "method": method, "modality": modality.name,
        "labels": config["labels"], "input_name": spec["name"], "input_shape": spec["shape"],
        "input_dtype": spec["dtype"], "preprocessing": modality.preprocessing(),
        **head_metadata(task_params, model, config),
        "source_commit": source_commit(), "precision": "fp32", "assets": assets,
    }
    if "range" in spec:
        metadata["input_range"] = spec["range"]
    onnx_path = export_onnx(model, modality.example_input(2), out / "model.onnx", metadata,
                            input_name=spec["name"], output_names=list(model.output_names), opset=params.export.opset)
    irs = export_openvino(onnx_path, out / "openvino", params.export.openvino_precisions)
    variants = {"onnx-fp32": evaluate_variant(onnx_path, reference, x, score)}
    variants.update({f"openvino-{p}": evaluate_variant(xml, reference, x, score) for p, xml in irs.items()})
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
    modality_name, modality = task_modality(params, task)
    test = modality.load_split(paths.data_dir(modality_name), "test")
    metrics = export_model(params, task, method, modality, test)
    if not metrics["onnx_parity_ok"]:
        return f"{task}-{method}: {metrics['variants']['onnx-fp32']['max_abs_diff']:.2e}"
    quantize(params, task, method, modality, calibration_inputs(params, modality), test)
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
