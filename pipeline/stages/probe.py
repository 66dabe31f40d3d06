"""probe: kNN and linear-probe accuracy of a frozen encoder (mae, simclr, or the random-init baseline)."""
from __future__ import annotations

import torch

from modalities import get_modality
from pipeline import paths
from pipeline.evaluate import extract_features, knn_accuracy, linear_probe
from pipeline.io import write_json
from pipeline.models import pretrained_encoder
from pipeline.stages.common import start


def main() -> None:
    args, params = start(__doc__, "modality", "method")
    modality = get_modality(args.modality, params)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder = pretrained_encoder(modality, params, args.method)
    data_dir = paths.data_dir(args.modality)
    splits = {s: modality.load_split(data_dir, s) for s in ("train", "val", "test")}
    feats = {s: extract_features(encoder, modality, d.x, params.probe.batch_size, device) for s, d in splits.items()}
    ys = {s: d.y for s, d in splits.items()}
    metrics = {
        "modality": args.modality, "method": args.method,
        "knn_k": params.probe.knn_k,
        "knn_test_accuracy": knn_accuracy(feats["train"], ys["train"], feats["test"], ys["test"], params.probe.knn_k),
        **linear_probe(feats["train"], ys["train"], feats["val"], ys["val"], feats["test"], ys["test"],
                       params.probe.linear_C, params.seed),
        "test_samples": len(ys["test"]),
    }
    write_json(paths.metrics_file("probe", f"{args.modality}-{args.method}"), metrics)
    print(f"probe {args.modality}-{args.method}: kNN {metrics['knn_test_accuracy']:.4f}, "
          f"linear {metrics['linear_test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
