"""finetune: a task head on a pretrained encoder (or the random-init one), trained end to end."""
from __future__ import annotations

import sys

import numpy as np
import torch
from dvclive import Live

from pipeline import paths
from pipeline.checkpoint import config_hash, save_weights
from pipeline.heads import Classifier, SupervisedObjective
from pipeline.io import file_sha256, split_sha256, write_json
from pipeline.models import pretrained_encoder
from pipeline.runtime import setup
from pipeline.stages.common import start, task_modality
from pipeline.train import train


@torch.no_grad()
def predict_logits(model, modality, x: np.ndarray, device, batch_size: int = 512) -> np.ndarray:
    model.eval().to(device)
    out = [model(modality.to_input(torch.from_numpy(x[i : i + batch_size]).to(device))).float().cpu()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def main() -> None:
    args, params = start(__doc__, "task", "method")
    modality_name, modality = task_modality(params, args.task)
    data_dir = paths.data_dir(modality_name)
    train_split = modality.load_split(data_dir, "train")
    val, test = modality.load_split(data_dir, "val"), modality.load_split(data_dir, "test")
    if params.tasks[args.task].head != "classification":
        sys.exit(f"tasks.{args.task}.head: only 'classification' is implemented")
    model = Classifier(pretrained_encoder(modality, params, args.method), len(train_split.labels))
    objective = SupervisedObjective(model, modality)
    name = f"{args.task}-{args.method}"
    optim = params.optim("finetune", modality_name)
    config = {"task": args.task, "method": args.method, "modality": modality_name, "labels": train_split.labels,
              "optim": optim.model_dump(), "encoder": params.encoder.model_dump(), "seed": params.seed,
              "modality_params": params.modality(modality_name).model_dump(),
              # a checkpoint only resumes on the same data and the same pretrained encoder
              "train_data": split_sha256(data_dir, "train"),
              "pretrained_encoder": file_sha256(paths.pretrain_dir(modality_name, args.method) / "encoder.safetensors")}
    rt = setup(amp=optim.amp)
    live = Live(str(paths.live_dir("finetune", name)), save_dvc_exp=False, dvcyaml=None)
    result = train(objective, torch.from_numpy(train_split.x), torch.from_numpy(train_split.y), modality.to_input,
                   optim, params.seed, rt, paths.checkpoint_dir("finetune", name), config_hash(config),
                   live=live, desc=f"finetune {name}")
    live.end()
    accuracy = {s: float((predict_logits(model, modality, d.x, rt.device).argmax(1) == d.y).mean())
                for s, d in (("val", val), ("test", test))}
    out = paths.finetune_dir(args.task, args.method)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model, out / "model.safetensors")
    write_json(out / "config.json", config)
    write_json(paths.metrics_file("finetune", name), {
        "task": args.task, "method": args.method, "metric": "accuracy",
        "val_accuracy": accuracy["val"], "test_accuracy": accuracy["test"],
        "test_samples": len(test), "epochs": result.epochs, "train_seconds": result.train_seconds,
        "samples_per_s": result.samples_per_s,
    })
    print(f"finetune {name}: val {accuracy['val']:.4f}, test {accuracy['test']:.4f}")


if __name__ == "__main__":
    main()
