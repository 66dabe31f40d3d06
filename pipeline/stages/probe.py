"""probe: kNN and linear-probe accuracy of each frozen encoder (mae, simclr, and the random-init baseline),
then the MAE's reconstruction figure (pipeline/stages/reconstruct.py) when mae is among the methods.

A modality whose training split holds one class (anomaly data: normal samples only) has nothing to
classify; its metrics say so, and its encoders are scored by the anomaly task instead."""
from __future__ import annotations

from functools import partial

import numpy as np
import torch

from modalities import get_modality
from pipeline.config import paths
from pipeline.evaluation.probes import extract_features, knn_accuracy, label_subset, linear_probe
from devices.io import write_json
from pipeline.models.loading import pretrained_encoder
from pipeline.stages.common import run_methods, selected_methods, start
from pipeline.report.reconstructions import write_figure


def probe_encoder(encoder, modality, params, splits: dict, device: str) -> dict:
    """kNN and linear probe with all training labels and with `probe.label_fraction` of them."""
    feats = {s: extract_features(encoder, modality, d.x, params.probe.batch_size, device) for s, d in splits.items()}
    ys = {s: d.y for s, d in splits.items()}
    few = label_subset(ys["train"], params.probe.label_fraction, params.seed)

    def scores(train_f, train_y) -> dict:
        return {"knn_test_accuracy": knn_accuracy(train_f, train_y, feats["test"], ys["test"], params.probe.knn_k),
                **linear_probe(train_f, train_y, feats["val"], ys["val"], feats["test"], ys["test"],
                               params.probe.linear_C, params.seed)}

    return {**scores(feats["train"], ys["train"]),
            "low_labels": {"label_fraction": params.probe.label_fraction, "train_labels": len(few),
                           **scores(feats["train"][few], ys["train"][few])}}


def probe(modality, params, method: str, splits: dict, device: str) -> dict:
    metrics = {"modality": modality.name, "method": method, "knn_k": params.probe.knn_k,
               **probe_encoder(pretrained_encoder(modality, params, method), modality, params, splits, device),
               "test_samples": len(splits["test"])}
    if paths.equal_epochs_encoder(modality.name, method).is_file():  # also trained for the reference's epochs
        metrics["equal_epochs"] = probe_encoder(pretrained_encoder(modality, params, method, equal_epochs=True),
                                                modality, params, splits, device)
    return metrics


def probe_method(method: str, modality, params, splits: dict, device: str) -> None:
    if len(np.unique(splits["train"].y)) < 2:
        metrics = {"modality": modality.name, "method": method,
                   "note": "not applicable: the training split has one class (see the anomaly task)"}
        print(f"probe {modality.name}-{method}: {metrics['note']}")
    else:
        metrics = probe(modality, params, method, splits, device)
        print(f"probe {modality.name}-{method}: kNN {metrics['knn_test_accuracy']:.4f}, "
              f"linear {metrics['linear_test_accuracy']:.4f}", flush=True)
    write_json(paths.metrics_file("probe", modality.name, method), metrics)


def main() -> None:
    args, params = start(__doc__, "modality", optional=("method",))
    modality = get_modality(args.modality, params)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data_dir = paths.data_dir(args.modality)
    splits = {s: modality.load_split(data_dir, s) for s in ("train", "val", "test")}
    workers = 1 if device == "cuda" else params.probe.workers
    run_methods(partial(probe_method, modality=modality, params=params, splits=splits, device=device),
                selected_methods(args, params), workers)
    if "mae" in params.methods and not args.method:
        write_figure(modality, params)


if __name__ == "__main__":
    main()
