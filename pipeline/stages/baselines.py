"""baselines: the simple model each task is compared with, fitted on the task's training split and
scored on its test split (pipeline/evaluation/baselines.py; which model is the task kind's choice):
logistic regression for classification, Mahalanobis / kNN distance for anomaly detection, the box
prior for detection. Written to metrics/baselines/<task>.json; the report puts it beside the models."""
from __future__ import annotations

import time

from devices.io import write_json
from pipeline.config import paths
from pipeline.stages.common import start, task_modality
from pipeline.tasks.registry import get_task


def main() -> None:
    args, params = start(__doc__, "task")
    task_params = params.tasks[args.task]
    modality_name, modality = task_modality(params, args.task)
    splits = {s: modality.load_split(paths.data_dir(modality_name), s) for s in ("train", "val", "test")}
    began = time.perf_counter()
    result = get_task(task_params.head).baseline(task_params, modality, splits, params)
    metrics = {"task": args.task, "head": task_params.head, "metric": task_params.metric, **result,
               "test_samples": len(splits["test"]), "fit_seconds": round(time.perf_counter() - began, 2)}
    write_json(paths.baseline_file(args.task), metrics)
    print(f"baselines {args.task}: {metrics['model']} on {metrics['features']}: "
          f"{metrics['metric']} on test {metrics['test_metric']:.4f}")


if __name__ == "__main__":
    main()
