"""prepare: read a modality's source, split it, write data/<modality>/ with a manifest of hashes.

Detection data (DetectionSplit) also records the number of boxes per split (`objects`); anomaly data
(AnomalySplit) the number of anomalous samples (`anomalous`), and must have normal-only train and val
splits and a test split with both normal and anomalous samples."""
from __future__ import annotations

import sys

import numpy as np

from modalities import get_modality
from modalities.base import UNLABELLED_FILE
from modalities.splits import (SPLITS, AnomalySplit, CorruptFileError, DataSourceError, DetectionSplit,
                               check_anomaly_splits)
from pipeline.config import paths
from devices.io import atomic_path, file_sha256, write_json
from pipeline.stages.common import start


def main() -> None:
    args, params = start(__doc__, "modality")
    modality = get_modality(args.modality, params)
    try:
        prepared = modality.load_raw()
        check_anomaly_splits(prepared.splits, prepared.source)
    except (CorruptFileError, FileNotFoundError, ValueError, DataSourceError) as exc:
        sys.exit(f"prepare {args.modality}: {exc}")
    out = paths.data_dir(args.modality)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in prepared.files.items():  # what an app needs beside the model, e.g. text's tokenizer.json
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    manifest = {"modality": args.modality, "kind": modality.kind, "source": prepared.source, "labels": None, "splits": {},
                "skipped_count": len(prepared.skipped), "skipped": prepared.skipped}
    for name in SPLITS:
        split = prepared.splits[name]
        if len(split) == 0:
            sys.exit(f"prepare {args.modality}: split '{name}' is empty; the source has too few samples")
        manifest["labels"] = split.labels
        target = out / f"{name}.npz"
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                modality.save_split(split, f)
        counts = {label: int((split.y == i).sum()) for i, label in enumerate(split.labels)}
        manifest["splits"][name] = {"file": target.name, "samples": len(split), "sha256": file_sha256(target),
                                    "shape": list(split.x.shape[1:]), "dtype": str(split.x.dtype),
                                    "per_class": counts}
        if isinstance(split, DetectionSplit):
            manifest["splits"][name]["objects"] = split.objects
        if isinstance(split, AnomalySplit):
            manifest["splits"][name]["anomalous"] = split.anomalous
    if prepared.unlabelled is not None and len(prepared.unlabelled):  # self-supervised pretraining data
        target = out / UNLABELLED_FILE
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, x=prepared.unlabelled)
        manifest["unlabelled"] = {"file": target.name, "samples": len(prepared.unlabelled),
                                  "sha256": file_sha256(target)}
    write_json(out / "manifest.json", manifest)
    print(f"prepare {args.modality}: " + ", ".join(f"{k} {v['samples']}" for k, v in manifest["splits"].items())
          + (f", unlabelled {manifest['unlabelled']['samples']}" if "unlabelled" in manifest else "")
          + (f"; skipped {len(prepared.skipped)} unreadable files" if prepared.skipped else ""))


if __name__ == "__main__":
    main()
