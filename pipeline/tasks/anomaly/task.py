"""Anomaly detection without labels: the encoder (pretrained on normal data only) scores inputs by the
distance to the k nearest normal training embeddings, or to the k nearest normal token differences along
time; an MAE also by its reconstruction error. The threshold is set on validation normal data at the
task's target false-alarm rate; scored by AUROC."""
from __future__ import annotations

import numpy as np
import torch

from pipeline.config import paths
from pipeline.models.methods import build_objective
from pipeline.report.tables import finetuned, num, pct, table
from pipeline.tasks.anomaly.metrics import anomaly_report, rates_at
from pipeline.tasks.anomaly.scorers import (KnnAnomalyModel, ReconstructionAnomalyModel, TemporalKnnAnomalyModel,
                                            anomaly_metadata, embedding_bank, fixed_masks, temporal_differences,
                                            threshold_at_fpr)
from pipeline.evaluation.baselines import distance_scorers, features_of
from pipeline.tasks.base import Fitted, FitJob, Task, outputs_on, run_model
from pipeline.training.checkpoint import load_weights
from devices.io import write_json


# the time axis of each modality kind's token grid (`modality.grid`): video (time, height, width), audio
# (mel bands, time); the temporal kNN scorer differences the tokens along it
TOKEN_TIME_AXIS = {"video": 0, "audio": 1}


def temporal_scorer(encoder, modality, k: int, x_train: torch.Tensor | None = None,
                    bank_size: int = 0) -> TemporalKnnAnomalyModel:
    """The temporal kNN scorer on `modality`'s token grid, its bank from the normal training inputs x_train;
    without them an empty bank of bank_size rows (to load saved weights into)."""
    if modality.kind not in TOKEN_TIME_AXIS:
        raise ValueError(f"anomaly.scorer temporal_knn: modality '{modality.name}' (kind {modality.kind}) has no "
                         f"known time axis; it applies to kinds {sorted(TOKEN_TIME_AXIS)}")
    grid, axis = tuple(modality.grid), TOKEN_TIME_AXIS[modality.kind]
    if x_train is None:
        bank = torch.zeros(bank_size, TemporalKnnAnomalyModel.feature_size(grid, axis, encoder.embed_dim))
    else:
        bank = embedding_bank(encoder, x_train, features=lambda x: temporal_differences(encoder, x, grid, axis))
    return TemporalKnnAnomalyModel(encoder, bank, k, grid, axis)


class AnomalyTask(Task):
    head = "anomaly"

    def build(self, encoder, modality, params, config):
        if config["scorer"] == "knn":
            return KnnAnomalyModel(encoder, torch.zeros(config["bank_size"], encoder.embed_dim), config["k"])
        if config["scorer"] == "temporal_knn":
            return temporal_scorer(encoder, modality, config["k"], bank_size=config["bank_size"])
        mae = build_objective("mae", encoder, modality, params)
        return ReconstructionAnomalyModel(mae, fixed_masks(modality, config["masks"], params.seed))

    def fit(self, encoder, job: FitJob) -> Fitted:
        """kNN scorers (pooled, and temporal where the modality has a time axis) for every method; for MAE
        also the reconstruction scorer. Each gets its threshold on validation normal data; the one the task's
        `anomaly.scorer` names (kNN for encoders without an MAE decoder) is the deployable model, the others
        are scored for comparison."""
        params, modality, settings = job.params, job.modality, job.task_params.anomaly
        x_train = modality.to_input(torch.from_numpy(job.splits["train"].x))
        k = min(settings.knn_k, len(x_train))
        scorers = {"knn": KnnAnomalyModel(encoder, embedding_bank(encoder, x_train), k)}
        if modality.kind in TOKEN_TIME_AXIS or settings.scorer == "temporal_knn":  # else: a clear error
            scorers["temporal_knn"] = temporal_scorer(encoder, modality, k, x_train)
        if job.method == "mae":
            mae = build_objective("mae", encoder, modality, params)
            load_weights(mae, paths.pretrain_dir(modality.name, "mae") / "objective.safetensors")
            scorers["reconstruction"] = ReconstructionAnomalyModel(
                mae, fixed_masks(modality, settings.reconstruction_masks, params.seed))
        thresholds = {name: threshold_at_fpr(outputs_on(scorer, modality, job.splits["val"])[0],
                                             settings.target_false_alarm_rate)
                      for name, scorer in scorers.items()}
        deployed = settings.scorer if settings.scorer in scorers else "knn"
        config = {"scorer": deployed, "threshold": thresholds[deployed], "k": k,
                  "bank_size": len(scorers["knn"].bank), "masks": settings.reconstruction_masks}
        alternatives = {name: (scorers[name], {**config, "threshold": thresholds[name]})
                        for name in scorers if name != deployed}
        # nothing to resume, but the stage's checkpoint folder says why it is empty
        write_json(paths.checkpoint_dir("finetune", job.task, job.method) / "state.json",
                   {"epoch": 0, "note": "anomaly scorers are fitted, not trained"})
        return Fitted(scorers[deployed], config, {"epochs": 0, "train_seconds": 0.0}, alternatives)

    def evaluate(self, model, job: FitJob, config: dict) -> dict:
        """The metric on test; val holds normal samples only, so it gives the false-alarm rate instead."""
        val_scores = outputs_on(model, job.modality, job.splits["val"])[0]
        test = self.score(job.task_params, job.splits["test"], config, detail=True)(
            outputs_on(model, job.modality, job.splits["test"]))
        return {"val_false_alarm_rate": float((val_scores > config["threshold"]).mean()), **test}

    def score(self, task_params, split, config, detail=False):
        """AUROC and pAUC (FPR <= anomaly.max_fpr) of the score output, overall and per anomaly kind, and
        the false-alarm and detection rates at the threshold set on validation normal data."""
        settings, threshold = task_params.anomaly, config["threshold"]

        def score(outputs: list[np.ndarray]) -> dict:
            scores = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
            report = anomaly_report(scores, split.y, split.labels, settings.max_fpr)
            rates = rates_at(threshold, scores, split.is_anomaly)
            return {"test_auroc": report["auroc"], "test_pauc": report["pauc"], "per_kind": report["per_kind"],
                    "threshold": threshold, "test_false_alarm_rate": rates["false_alarm_rate"],
                    "test_detection_rate": rates["detection_rate"], "test_metric": report["auroc"]}

        return score

    def baseline(self, task_params, modality, splits, params):
        """Mahalanobis and kNN distance to the normal training features, each thresholded on val like the
        model; `test_metric` is the better of the two on test, a deliberately high bar for the model."""
        features = {name: features_of(modality, split) for name, split in splits.items()}
        settings = params.baselines
        scorers = distance_scorers(features["train"], settings.pca_components, settings.knn_k)
        results = {}
        for name, scorer in scorers.items():
            threshold = threshold_at_fpr(scorer(features["val"]), task_params.anomaly.target_false_alarm_rate)
            results[name] = self.score(task_params, splits["test"], {"threshold": threshold}, detail=True)(
                [scorer(features["test"])])
        best = max(results, key=lambda name: results[name]["test_metric"])
        return {"model": f"{best} distance to normal training data", "features": modality.baseline_features_name,
                "test_metric": results[best]["test_metric"], "scorers": results}

    def metadata(self, task_params, model, config):
        return anomaly_metadata(model, config["threshold"], task_params.anomaly.target_false_alarm_rate)

    def report_section(self, params, load):
        rows = []
        for task, method, ft in finetuned(params, self.head, load):
            other = ", ".join(f"{name}: AUROC {num(o.get('test_auroc'))}" for name, o in ft.get("other_scorers", {}).items())
            kinds = ", ".join(f"{kind} {num(v.get('auroc'), '.2f')}" for kind, v in ft.get("per_kind", {}).items())
            rows.append([task, method, ft.get("scorer", "n/a"), num(ft.get("test_auroc")), num(ft.get("test_pauc")),
                         pct(ft.get("val_false_alarm_rate")), pct(ft.get("test_false_alarm_rate")),
                         pct(ft.get("test_detection_rate")), other or "-", kinds])
        if not rows:
            return []
        return (["## Anomaly detection (test split: normal and anomalous samples)", "",
                 "pAUC: AUROC over false-positive rates up to each task's `anomaly.max_fpr`, divided by that rate "
                 "(DCASE's pAUC). The threshold is set on validation normal samples at the task's target false-alarm "
                 "rate; the rates it gives on test are beside it.", ""]
                + table(["task", "method", "scorer", "AUROC", "pAUC", "val false alarms", "test false alarms",
                         "test detections", "other scorer", "AUROC per kind"], rows))
