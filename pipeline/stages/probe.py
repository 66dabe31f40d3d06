"""probe: kNN and linear-probe accuracy of each frozen encoder (mae, simclr, and the random-init baseline),
then the MAE's reconstruction figure (pipeline/stages/reconstruct.py) when mae is among the methods. Each
linear probe fitted on all the training labels is kept (models/probe/<modality>/<method>/; the robustness
stage scores it on corrupted inputs).

A modality whose training split holds one class (anomaly data: normal samples only) has nothing to
classify; its metrics say so, and its encoders are scored by the anomaly task instead."""
from __future__ import annotations

import shutil
from functools import partial

import numpy as np
import torch

from modalities import get_modality
from pipeline.config import paths
from pipeline.evaluation.probes import (extract_features, fit_linear_probe, knn_accuracy, label_subset,
                                        save_linear_probe)
from devices.io import write_json
from pipeline.models.loading import pretrained_encoder
from pipeline.stages.common import run_methods, selected_methods, start
from pipeline.report.reconstructions import write_figure


def probe_encoder(encoder, modality, params, splits: dict, device: str, probe_file) -> dict:
    """kNN and linear probe with all training labels (that linear probe saved to probe_file) and with
    `probe.label_fraction` of them."""
    feats = {s: extract_features(encoder, modality, d.x, params.probe.batch_size, device) for s, d in splits.items()}
    ys = {s: d.y for s, d in splits.items()}
    few = label_subset(ys["train"], params.probe.label_fraction, params.seed)

    def scores(train_f, train_y):
        linear, classifier = fit_linear_probe(train_f, train_y, feats["val"], ys["val"], feats["test"], ys["test"],
                                              params.probe.linear_C, params.seed)
        knn = knn_accuracy(train_f, train_y, feats["test"], ys["test"], params.probe.knn_k)
        return {"knn_test_accuracy": knn, **linear}, classifier

    all_labels, classifier = scores(feats["train"], ys["train"])
    save_linear_probe(classifier, probe_file)
    return {**all_labels,
            "low_labels": {"label_fraction": params.probe.label_fraction, "train_labels": len(few),
                           **scores(feats["train"][few], ys["train"][few])[0]}}


def probe(modality, params, method: str, splits: dict, device: str) -> dict:
    metrics = {"modality": modality.name, "method": method, "knn_k": params.probe.knn_k,
               **probe_encoder(pretrained_encoder(modality, params, method), modality, params, splits, device,
                               paths.linear_probe_file(modality.name, method)),
               "test_samples": len(splits["test"])}
    if paths.equal_epochs_encoder(modality.name, method).is_file():  # also trained for the reference's epochs
        metrics["equal_epochs"] = probe_encoder(pretrained_encoder(modality, params, method, equal_epochs=True),
                                                modality, params, splits, device,
                                                paths.linear_probe_file(modality.name, method, equal_epochs=True))
    return metrics


def probe_method(method: str, modality, params, splits: dict, device: str) -> None:
    probe_dir = paths.linear_probe_file(modality.name, method).parent
    shutil.rmtree(probe_dir, ignore_errors=True)  # no probe of an earlier run outlives this one
    if len(np.unique(splits["train"].y)) < 2:
        metrics = {"modality": modality.name, "method": method,
                   "note": "not applicable: the training split has one class (see the anomaly task)"}
        print(f"probe {modality.name}-{method}: {metrics['note']}")
        write_json(probe_dir / "note.json", {"note": metrics["note"]})  # the stage's output says why it has no probe
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
