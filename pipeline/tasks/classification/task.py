"""Classification: encoder + linear head trained end to end (cross entropy); scored by accuracy."""
from __future__ import annotations

import numpy as np

from pipeline.report.tables import pct, table
from pipeline.evaluation.baselines import features_of, logistic_regression
from pipeline.tasks.base import Fitted, FitJob, Task, train_end_to_end
from pipeline.tasks.classification.model import Classifier, SupervisedObjective


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose argmax equals the label."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (N, classes) and labels (N,), got {logits.shape} and {labels.shape}")
    if len(labels) == 0:
        raise ValueError("cannot compute accuracy of zero samples")
    return float(np.mean(logits.argmax(-1) == labels))


class ClassificationTask(Task):
    head = "classification"

    def build(self, encoder, modality, params, config):
        return Classifier(encoder, len(config["labels"]))

    def fit(self, encoder, job: FitJob) -> Fitted:
        model = Classifier(encoder, len(job.splits["train"].labels))
        cost = train_end_to_end(SupervisedObjective(model, job.modality), job.splits["train"].y, job,
                                self.val_metric(model, job))
        return Fitted(model, cost=cost)

    def score(self, task_params, split, config, detail=False):
        labels = split.y

        def score(outputs: list[np.ndarray]) -> dict:
            value = accuracy(outputs[0], labels)
            return {"test_accuracy": value, "test_metric": value}

        return score

    def baseline(self, task_params, modality, splits, params):
        features = {name: features_of(modality, split) for name, split in splits.items()}
        labels = {name: split.y for name, split in splits.items()}
        result = logistic_regression(features, labels, params.baselines.linear_C, params.seed)
        return {"model": "logistic regression", "features": modality.baseline_features_name, **result}

    def metadata(self, task_params, model, config):
        return {"output": "logits"}

    def report_section(self, params, load):
        """kNN and linear probe on the frozen encoder beside the fine-tune, and what each pretraining
        method bought over the random-init encoder."""
        rows, verdicts = [], []
        for task, spec in params.tasks.items():
            if spec.head != self.head:
                continue
            results = {}
            for method in params.methods:
                probe = load("probe", spec.modality, method) or {}
                ft = load("finetune", task, method) or {}
                results[method] = (probe.get("knn_test_accuracy"), probe.get("linear_test_accuracy"),
                                   ft.get("test_accuracy"))
                rows.append([spec.modality, task, method, *(pct(v) for v in results[method])])
            base = results.get("random")
            for method, accs in results.items():
                if method == "random" or base is None:
                    continue
                wins = [name for name, a, b in zip(("kNN", "linear probe", "fine-tune"), accs, base)
                        if a is not None and b is not None and a > b]
                verdicts.append(f"- {spec.modality} / {method}: "
                                + (f"beats the random-init encoder on {', '.join(wins)}." if wins
                                   else "**does not beat the random-init encoder on kNN, linear probe or fine-tune.**"))
        return (["## Accuracy on the held-out test split", "",
                 "kNN and linear probe on the frozen encoder; fine-tune = encoder + head trained end to end. "
                 "`random` is the untrained encoder of the same shape (the baseline).", ""]
                + table(["modality", "task", "method", "kNN", "linear probe", "fine-tune"], rows) + verdicts + [""])

