"""robustness: the task metric on corrupted test inputs (modalities/<kind>/corruptions.py at the severities in
params.robustness), for every method's fine-tuned PyTorch model and its ONNX FP32, ORT INT8 and NNCF INT8
exports (pipeline/evaluation/robustness.py). Writes metrics/robustness/<task>.json and <task>_curves.csv."""
from __future__ import annotations

import sys
import time

from pipeline.evaluation.robustness import robustness_file, run_robustness, write_outputs
from pipeline.stages.common import start, task_modality


def main() -> None:
    began = time.perf_counter()
    args, params = start(__doc__, "task", stage="robustness")
    _, modality = task_modality(params, args.task)
    try:
        result = run_robustness(params, args.task, modality, started=began)
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(f"robustness {args.task}: {exc}")
    write_outputs(args.task, result)
    capped = f" (capped by robustness.max_samples {result['max_samples']})" if result["max_samples"] else ""
    print(f"robustness {args.task}: {len(result['corruptions'])} corruptions x severities {result['severities']} "
          f"on {result['test_samples']} test samples{capped} in {result['seconds']}s -> {robustness_file(args.task)}")
    for method, variants in result["models"].items():
        for variant, m in variants.items():
            mce = "n/a" if m["mce"] is None else f"{m['mce']:.3f}"
            print(f"  {method:7s} {variant:14s} clean {m['clean']:.4f}  mean corrupted {m['mean_corrupted']:.4f}  "
                  f"mCE {mce}")


if __name__ == "__main__":
    main()
