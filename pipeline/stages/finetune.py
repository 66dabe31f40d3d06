"""finetune: the task's head on each pretrained encoder (mae, simclr) and on the random-init one.

How a head is fitted and scored is its task kind's business (pipeline/tasks/<head>/task.py):
classification and detection train encoder + head end to end; anomaly scorers are fitted on normal
data without labels, with a threshold set on validation normal data.
"""
from __future__ import annotations

from functools import partial

import torch

from devices.io import file_sha256, split_sha256, write_json
from pipeline.config import paths
from pipeline.models.loading import pretrained_encoder
from pipeline.stages.common import run_methods, seed_everything, selected_methods, start, task_modality
from pipeline.tasks.base import FitJob
from pipeline.tasks.registry import get_task
from pipeline.training.checkpoint import save_weights


def finetune(params, task: str, method: str, modality, splits: dict) -> dict:
    task_params = params.tasks[task]
    kind = get_task(task_params.head)
    config = {"task": task, "method": method, "modality": modality.name, "head": task_params.head,
              "labels": splits["train"].labels, "encoder": params.encoder.model_dump(), "seed": params.seed,
              "modality_params": params.modality(modality.name).model_dump(), "task_params": task_params.model_dump(),
              # a checkpoint only resumes on the same data and the same pretrained encoder
              "train_data": split_sha256(paths.data_dir(modality.name), "train"),
              "pretrained_encoder": file_sha256(paths.pretrain_dir(modality.name, method) / "encoder.safetensors")}
    job = FitJob(params, task, method, modality, splits, config)
    fitted = kind.fit(pretrained_encoder(modality, params, method).train(), job)
    config.update(fitted.config)
    metrics = {"task": task, "method": method, "head": task_params.head, "metric": task_params.metric,
               **kind.evaluate(fitted.model, job, config), "test_samples": len(splits["test"]), **fitted.cost}
    if "scorer" in fitted.config:
        metrics["scorer"] = fitted.config["scorer"]
    if fitted.alternatives:
        metrics["other_scorers"] = {name: kind.evaluate(m, job, c) for name, (m, c) in fitted.alternatives.items()}
    out = paths.finetune_dir(task, method)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(fitted.model, out / "model.safetensors")
    write_json(out / "config.json", config)
    write_json(paths.metrics_file("finetune", task, method), metrics)
    return metrics


def finetune_method(method: str, params, task: str, modality, splits: dict) -> None:
    """One method, seeded on its own, so the result does not depend on which process ran it or when."""
    seed_everything(params.seed)
    metrics = finetune(params, task, method, modality, splits)
    print(f"finetune {task}-{method}: {metrics['metric']} on test {metrics['test_metric']:.4f}"
          + (f" (val {metrics['val_metric']:.4f})" if "val_metric" in metrics else ""), flush=True)


def main() -> None:
    args, params = start(__doc__, "task", optional=("method",))
    modality_name, modality = task_modality(params, args.task)
    splits = {s: modality.load_split(paths.data_dir(modality_name), s) for s in ("train", "val", "test")}
    # small models do not use two cores well: two methods trained at once, one thread each, are ~2x faster
    workers = 1 if torch.cuda.is_available() else params.finetune.workers
    run_methods(partial(finetune_method, params=params, task=args.task, modality=modality, splits=splits),
                selected_methods(args, params), workers)


if __name__ == "__main__":
    main()
