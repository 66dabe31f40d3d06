"""finetune: the task's head on each pretrained encoder (mae, simclr) and on the random-init one.

    classification  encoder + linear head, trained end to end (cross entropy)
    detection       encoder + dense head on the patch grid, trained end to end (pipeline/detection.py)
    anomaly         no labels to train on: the encoder (pretrained on normal data only) scores inputs
                    by distance to the k nearest normal training embeddings; an MAE also by its
                    reconstruction error. The threshold is set on validation normal data.
"""
from __future__ import annotations

import numpy as np
import torch
from dvclive import Live

from pipeline.config import paths
from pipeline.tasks.anomaly.scorers import KnnAnomalyModel, ReconstructionAnomalyModel, embedding_bank, fixed_masks, threshold_at_fpr
from pipeline.training.checkpoint import config_hash, load_weights, save_weights
from pipeline.tasks.detection.head import DetectionObjective, build_detector, pack_targets
from pipeline.tasks.classification import Classifier, SupervisedObjective
from devices.io import file_sha256, split_sha256, write_json
from pipeline.models.loading import pretrained_encoder
from pipeline.models.methods import build_objective
from pipeline.training.distributed import setup
from pipeline.stages.common import selected_methods, start, task_modality
from pipeline.tasks.models import run_model, task_score
from pipeline.training.loop import train


# Each FIT[head](encoder, ctx) -> (deployable model, config entries its loader needs, cost figures,
# {name: (model, config)} of other scorers to report beside it).

def train_head(model, objective, y_train: np.ndarray, ctx: dict) -> dict:
    """Train `objective` (encoder + head) end to end on the task's training split; the cost figures."""
    task, method, modality_name = ctx["task"], ctx["method"], ctx["modality"].name
    optim = ctx["params"].optim("finetune", modality_name)
    rt = setup(amp=optim.amp)
    live = Live(str(paths.live_dir("finetune", task, method)), save_dvc_exp=False, dvcyaml=None)
    result = train(objective, torch.from_numpy(ctx["train"].x), torch.from_numpy(y_train), ctx["modality"].to_input,
                   optim, ctx["params"].seed, rt, paths.checkpoint_dir("finetune", task, method),
                   config_hash({**ctx["config"], "optim": optim.model_dump()}), live=live,
                   desc=f"finetune {task}-{method}")
    live.end()
    return {"epochs": result.epochs, "train_seconds": result.train_seconds, "samples_per_s": result.samples_per_s}


def fit_classifier(encoder, ctx: dict):
    model = Classifier(encoder, len(ctx["train"].labels))
    cost = train_head(model, SupervisedObjective(model, ctx["modality"]), ctx["train"].y, ctx)
    return model, {}, cost, {}


def fit_detector(encoder, ctx: dict):
    train_split = ctx["train"]
    model = build_detector(encoder, ctx["modality"], len(train_split.labels))
    cost = train_head(model, DetectionObjective(model), pack_targets(train_split.boxes, train_split.classes).numpy(), ctx)
    return model, {}, cost, {}


def fit_anomaly_scorer(encoder, ctx: dict):
    """kNN scorer for every method; for MAE also the reconstruction scorer. Each gets its threshold on
    validation normal data; the one the task's `anomaly.scorer` names (kNN for encoders without an MAE
    decoder) is the deployable model, the others are scored for comparison."""
    params, modality, spec = ctx["params"], ctx["modality"], ctx["task_params"].anomaly
    x_train = modality.to_input(torch.from_numpy(ctx["train"].x))
    scorers = {"knn": KnnAnomalyModel(encoder, embedding_bank(encoder, x_train), min(spec.knn_k, len(x_train)))}
    if ctx["method"] == "mae":
        mae = build_objective("mae", encoder, modality, params)
        load_weights(mae, paths.pretrain_dir(modality.name, "mae") / "objective.safetensors")
        scorers["reconstruction"] = ReconstructionAnomalyModel(
            mae, fixed_masks(modality, spec.reconstruction_masks, params.seed))
    x_val = modality.to_input(torch.from_numpy(ctx["val"].x)).numpy()
    thresholds = {name: threshold_at_fpr(run_model(scorer, x_val)[0], spec.target_false_alarm_rate)
                  for name, scorer in scorers.items()}
    deployed = spec.scorer if spec.scorer in scorers else "knn"
    config = {"scorer": deployed, "threshold": thresholds[deployed], "k": scorers["knn"].k,
              "bank_size": len(scorers["knn"].bank), "masks": spec.reconstruction_masks}
    alternatives = {name: (scorers[name], {**config, "threshold": thresholds[name]}) for name in scorers if name != deployed}
    # nothing to resume, but the stage's checkpoint folder says why it is empty
    write_json(paths.checkpoint_dir("finetune", ctx["task"], ctx["method"]) / "state.json",
               {"epoch": 0, "note": "anomaly scorers are fitted, not trained"})
    return scorers[deployed], config, {"epochs": 0, "train_seconds": 0.0}, alternatives


FIT = {"classification": fit_classifier, "detection": fit_detector, "anomaly": fit_anomaly_scorer}


def evaluate(model, ctx: dict, config: dict) -> dict:
    """The task metric on test (and on val where val has labels to score: not for anomaly data, whose
    val split is normal only); anomaly models also report their false-alarm rate on val."""
    modality, task_params = ctx["modality"], ctx["task_params"]
    result = {}
    for split_name in ("val", "test"):
        split = ctx[split_name]
        outputs = run_model(model, modality.to_input(torch.from_numpy(split.x)).numpy())
        if task_params.head == "anomaly" and split_name == "val":
            result["val_false_alarm_rate"] = float((outputs[0] > config["threshold"]).mean())
            continue
        metrics = task_score(task_params, split, config, detail=split_name == "test")(outputs)
        result.update(metrics if split_name == "test" else {"val_metric": metrics["test_metric"]})
    return result


def finetune(params, task: str, method: str, modality, splits: dict) -> dict:
    task_params = params.tasks[task]
    data_dir = paths.data_dir(modality.name)
    encoder = pretrained_encoder(modality, params, method).train()
    config = {"task": task, "method": method, "modality": modality.name, "head": task_params.head,
              "labels": splits["train"].labels, "encoder": params.encoder.model_dump(), "seed": params.seed,
              "modality_params": params.modality(modality.name).model_dump(), "task_params": task_params.model_dump(),
              # a checkpoint only resumes on the same data and the same pretrained encoder
              "train_data": split_sha256(data_dir, "train"),
              "pretrained_encoder": file_sha256(paths.pretrain_dir(modality.name, method) / "encoder.safetensors")}
    ctx = {"params": params, "task": task, "method": method, "modality": modality, "task_params": task_params,
           "config": config, **splits}
    model, head_config, cost, alternatives = FIT[task_params.head](encoder, ctx)
    config.update(head_config)
    metrics = {"task": task, "method": method, "head": task_params.head, "metric": task_params.metric,
               **evaluate(model, ctx, config), "test_samples": len(splits["test"]), **cost}
    if "scorer" in head_config:
        metrics["scorer"] = head_config["scorer"]
    if alternatives:
        metrics["other_scorers"] = {name: evaluate(m, ctx, c) for name, (m, c) in alternatives.items()}
    out = paths.finetune_dir(task, method)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model, out / "model.safetensors")
    write_json(out / "config.json", config)
    write_json(paths.metrics_file("finetune", task, method), metrics)
    return metrics


def main() -> None:
    args, params = start(__doc__, "task", optional=("method",))
    modality_name, modality = task_modality(params, args.task)
    splits = {s: modality.load_split(paths.data_dir(modality_name), s) for s in ("train", "val", "test")}
    for method in selected_methods(args, params):
        metrics = finetune(params, args.task, method, modality, splits)
        print(f"finetune {args.task}-{method}: {metrics['metric']} on test {metrics['test_metric']:.4f}"
              + (f" (val {metrics['val_metric']:.4f})" if "val_metric" in metrics else ""))


if __name__ == "__main__":
    main()
