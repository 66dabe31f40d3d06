"""The export's assets/ folder: what an app needs beside the model to feed it (the modality's deploy files,
e.g. text's tokenizer.json, and its feature front end, e.g. audio's log-mel, as frontend.onnx), listed in
manifest.json."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from devices.io import atomic_path, write_json
from devices.model_files import ASSETS_DIR
from export.metadata import modality_metadata
from export.onnx import export_onnx

FRONTEND = "frontend.onnx"


def write_assets(modality, out: str | Path, data_dir: str | Path, opset: int) -> list[str]:
    """Fill out/assets/ afresh from the modality (its prepared data in `data_dir`); returns the file names."""
    folder = Path(out) / ASSETS_DIR
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    names = []
    for source in modality.deploy_files(Path(data_dir)):
        with atomic_path(folder / source.name) as tmp:
            shutil.copyfile(source, tmp)
        names.append(source.name)
    frontend = modality.frontend()
    if frontend is not None:
        module, spec = frontend
        metadata = {"role": "frontend", **modality_metadata(modality), "input_name": spec["name"],
                    "input_shape": spec["shape"], "input_dtype": spec["dtype"], "precision": "fp32"}
        example = torch.zeros((2, *spec["shape"][1:]), dtype=getattr(torch, spec["dtype"]))
        export_onnx(module.eval(), example, folder / FRONTEND, metadata, input_name=spec["name"],
                    output_names=["features"], opset=opset)
        names.append(FRONTEND)
    write_json(folder / "manifest.json", {**modality_metadata(modality), "files": names})
    return names
