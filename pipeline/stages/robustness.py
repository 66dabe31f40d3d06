"""robustness: the task metric on corrupted test inputs (modalities/<kind>/corruptions.py at the severities in
params.robustness), for every task and every method's fine-tuned PyTorch model and its ONNX FP32, ORT INT8 and
NNCF INT8 exports (pipeline/evaluation/robustness.py). Writes metrics/robustness/<task>.json and
metrics/robustness/curves/<task>.csv. One stage for all tasks, so the imports and DVC's bookkeeping are paid once."""
from __future__ import annotations

import sys
import time

from pipeline.evaluation.robustness import robustness_file, run_robustness, write_outputs
from pipeline.stages.common import start, task_modality


def report(task: str, result: dict) -> None:
    capped = f" (capped by robustness.max_samples {result['max_samples']})" if result["max_samples"] else ""
    print(f"robustness {task}: {len(result['corruptions'])} corruptions x severities {result['severities']} "
          f"on {result['test_samples']} test samples{capped} in {result['seconds']}s -> {robustness_file(task)}")
    for method, variants in result["models"].items():
        for variant, m in variants.items():
            mce = "n/a" if m["mce"] is None else f"{m['mce']:.3f}"
            print(f"  {method:7s} {variant:25s} clean {m['clean']:.4f}  mean corrupted {m['mean_corrupted']:.4f}  "
                  f"mCE {mce}")


def main() -> None:
    began = time.perf_counter()
    args, params = start(__doc__, optional=("task",), stage="robustness")  # --task: one task, by hand
    tasks = [args.task] if args.task else list(params.tasks)
    for task in tasks:
        _, modality = task_modality(params, task)
        try:
            result = run_robustness(params, task, modality)
        except (FileNotFoundError, ValueError) as exc:
            sys.exit(f"robustness {task}: {exc}")
        write_outputs(task, result)
        report(task, result)
    print(f"robustness: {len(tasks)} tasks in {time.perf_counter() - began:.0f}s")


if __name__ == "__main__":
    main()
