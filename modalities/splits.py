"""The split types every modality prepares, and the one place samples are divided into train / val / test.

A `Split` holds raw samples (the stored dtype) and class ids; `DetectionSplit` adds boxes per image,
`AnomalySplit` a source per sample (its y is the anomaly kind, 0 = normal). Splitting:
- `split_parts`: a labelled pool (or a given train part) -> train / val / test, stratified by class
- `stratified_split`: exact shares of every stratum, even a small one (the embedded keywords)
- `holdout_normal`, `carve_val`: anomaly data, per source (machine id, footage clip), val normal only
- `planned_kinds`, `split_planned`: generated anomaly data, laid out in split order
All of them are seeded: the same seed gives the same samples in the same order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np

Part = TypeVar("Part")  # one part of a dataset with subset(indices): a clip file list, texts, or a Split

SPLITS = ("train", "val", "test")
CLASS_PADDING = -1  # class id of a padding row in a detection split's (N, max_boxes) arrays
NORMAL = "normal"  # anomaly kind 0
ANOMALY = "anomaly"  # the kind of a real dataset's anomalous sample (datasets do not say which fault it shows)
GOLDEN = (math.sqrt(5) - 1) / 2  # stratified_split's low-discrepancy step


class CorruptFileError(ValueError):
    """A data file that cannot be read; the message names it."""


def read_labelled(files, read, on_corrupt: str, skipped: list[str]) -> tuple[list, list[int]]:
    """(samples, labels) read from (path, label) pairs; a file `read` rejects (CorruptFileError) stops the
    read, or under on_corrupt 'skip' is listed in `skipped` and left out."""
    samples, labels = [], []
    for path, label in files:
        try:
            samples.append(read(path))
        except CorruptFileError:
            if on_corrupt != "skip":
                raise
            skipped.append(str(path))
            continue
        labels.append(label)
    return samples, labels


class DataSourceError(RuntimeError):
    """A data source that cannot be built here (a tool or package it needs is missing, or unusable)."""


# ---- split types -------------------------------------------------------------------------------------

@dataclass
class Split:
    """One split held in memory: raw samples (the stored dtype) and labels."""

    x: np.ndarray
    y: np.ndarray
    labels: list[str]

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise ValueError(f"split has {len(self.x)} samples but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def arrays(self) -> dict[str, np.ndarray]:
        """What a saved split holds: x, y and the per-sample extras of a subclass (boxes, sources)."""
        return {"x": self.x, "y": self.y}

    def subset(self, indices: np.ndarray) -> Split:
        return Split(self.x[indices], self.y[indices], self.labels)


@dataclass
class DetectionSplit(Split):
    """A prepared split of a detection source: x uint8 (N, C, S, S) images at the model's input size, plus
    boxes float32 (N, M, 4) xyxy in pixels of those images and classes int64 (N, M), -1 on padding rows.
    labels are the object classes; y is the class of each image's largest box, a stand-in image label
    so that classification-style stages (kNN / linear probe) run on detection data too."""

    boxes: np.ndarray | None = None
    classes: np.ndarray | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.boxes is None or self.classes is None:
            raise ValueError("a detection split needs boxes and classes")
        self.boxes = np.asarray(self.boxes, dtype=np.float32)
        self.classes = np.asarray(self.classes, dtype=np.int64)
        n = len(self.y)
        if self.boxes.ndim != 3 or self.boxes.shape[2] != 4 or self.boxes.shape[:2] != self.classes.shape \
                or len(self.classes) != n:
            raise ValueError(f"detection split: {n} samples, boxes {self.boxes.shape}, classes {self.classes.shape} "
                             "(need (N, M, 4) and (N, M))")

    @property
    def objects(self) -> int:
        return int((self.classes != CLASS_PADDING).sum())

    def arrays(self) -> dict[str, np.ndarray]:
        return {**super().arrays(), "boxes": self.boxes, "classes": self.classes}

    def subset(self, indices: np.ndarray) -> DetectionSplit:
        return DetectionSplit(self.x[indices], self.y[indices], self.labels, self.boxes[indices], self.classes[indices])


@dataclass
class AnomalySplit(Split):
    """y: anomaly kind per sample, an index into labels with labels[0] == "normal"; source: str (N,), where
    each sample came from, so metrics can be reported per machine as DCASE does."""

    source: np.ndarray | None = None

    def __post_init__(self):
        super().__post_init__()
        if not self.labels or self.labels[0] != NORMAL:
            raise ValueError(f"anomaly kinds must start with '{NORMAL}', got {self.labels}")
        self.source = np.full(len(self.y), "") if self.source is None else np.asarray(self.source, dtype=str)
        if len(self.source) != len(self.y):
            raise ValueError(f"split has {len(self.y)} samples but {len(self.source)} sources")

    @property
    def is_anomaly(self) -> np.ndarray:
        return self.y != 0

    @property
    def anomalous(self) -> int:
        return int(self.is_anomaly.sum())

    def arrays(self) -> dict[str, np.ndarray]:
        return {**super().arrays(), "source": self.source}

    def subset(self, indices: np.ndarray) -> AnomalySplit:
        return AnomalySplit(self.x[indices], self.y[indices], self.labels, self.source[indices])


def split_from_arrays(arrays, labels: list[str], where: str = "split") -> Split:
    """A saved split's arrays -> the Split subclass they make: DetectionSplit when they hold boxes,
    AnomalySplit when they hold a source per sample, else a plain Split."""
    files = set(arrays.files if hasattr(arrays, "files") else arrays)
    x, y = arrays["x"], arrays["y"]
    try:
        if "boxes" in files:
            return DetectionSplit(x, y, labels, boxes=arrays["boxes"], classes=arrays["classes"])
        if "source" in files:
            return AnomalySplit(x, y, labels, source=arrays["source"])
        return Split(x, y, labels)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def check_anomaly_splits(splits: dict[str, Split], what: str) -> None:
    """train and val hold normal samples only (the detector learns normal; val sets its threshold);
    test holds both normal and anomalous ones (else AUROC is undefined)."""
    for name in ("train", "val"):
        split = splits.get(name)
        if isinstance(split, AnomalySplit) and split.anomalous:
            raise ValueError(f"{what}: split '{name}' must hold normal samples only, but {split.anomalous} of its "
                             f"{len(split)} are anomalous ({sorted({split.labels[k] for k in split.y if k})})")
    test = splits.get("test")
    if isinstance(test, AnomalySplit) and not 0 < test.anomalous < len(test):
        raise ValueError(f"{what}: split 'test' must hold both normal and anomalous samples, it has "
                         f"{len(test) - test.anomalous} normal and {test.anomalous} anomalous")


def save_anomaly_split(split: AnomalySplit, path: str | Path) -> None:
    """A self-contained file (labels inside); a modality's save_split keeps labels in the manifest instead."""
    np.savez(path, **split.arrays(), labels=np.asarray(split.labels, dtype=str))


def load_anomaly_split(path: str | Path) -> AnomalySplit:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: anomaly split not found")
    with np.load(path, allow_pickle=False) as arrays:
        return AnomalySplit(arrays["x"], arrays["y"], arrays["labels"].tolist(), arrays["source"])


# ---- a cap on the samples ----------------------------------------------------------------------------

def seeded_sample(count: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random `limit` of `count` items (all of them without a limit), so a cap
    (max_samples) does not just take the first classes or files."""
    if not limit or limit >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:limit])


# ---- labelled pools: stratified by class -------------------------------------------------------------

def holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (kept, held-out) indices of y, `fraction` held out (rounded up), in a shuffled order;
    stratified by class where every class can give to both parts (else a plain random draw)."""
    from sklearn.model_selection import train_test_split  # slow to import; only prepare splits

    counts = np.bincount(y)
    classes, held = int((counts > 0).sum()), math.ceil(fraction * len(y))
    stratify = y if counts[counts > 0].min() >= 2 and classes <= held <= len(y) - classes else None
    return train_test_split(np.arange(len(y)), test_size=fraction, random_state=seed, stratify=stratify)


def three_way(y: np.ndarray, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Indices per split of one pool: test held out first, then val from the rest (val and test are
    fractions of the whole pool)."""
    rest, held = holdout(y, test, seed)
    keep, carved = holdout(y[rest], val / (1 - test), seed)
    return {"train": rest[keep], "val": rest[carved], "test": held}


def split_parts(parts: dict[str, Part], val: float, test: float, seed: int,
                classes: Callable[[Part], np.ndarray] = lambda part: part.y) -> dict[str, Part]:
    """{'all'}, {'train', 'test'} or all three parts (anything with `subset(indices)`; `classes` gives its
    class ids) -> train / val / test: `three_way` for a pool, val carved from a given train part."""
    if "val" in parts:
        return parts
    if "all" in parts:
        pool = parts["all"]
        return {name: pool.subset(idx) for name, idx in three_way(classes(pool), val, test, seed).items()}
    keep, carved = holdout(classes(parts["train"]), val / (1 - test), seed)
    return {"train": parts["train"].subset(keep), "val": parts["train"].subset(carved), "test": parts["test"]}


def stratified_split(strata: np.ndarray, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Indices per split, each stratum divided in the given fractions (totals within a sample or two).

    Samples are grouped by stratum in a seeded random order and given a golden-ratio sequence u in [0, 1):
    u < test -> test, u < test + val -> val, else train. The sequence is evenly spread over any run of
    consecutive positions, so even a stratum of 5 gets its share.
    """
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(strata)), strata))
    u = (rng.random() + GOLDEN * np.arange(len(order))) % 1.0
    return {"test": np.sort(order[u < test]), "val": np.sort(order[(u >= test) & (u < test + val)]),
            "train": np.sort(order[u >= test + val])}


# ---- anomaly data: per source, val normal only -------------------------------------------------------

def _shuffled_per_source(sources: np.ndarray, chosen: np.ndarray,
                         rng: np.random.Generator) -> Iterator[tuple[str, np.ndarray]]:
    """(source, its chosen sample indices in a seeded order) for every source, in sorted order."""
    for source in np.unique(sources):
        yield source, rng.permutation(np.flatnonzero((sources == source) & chosen))


def holdout_normal(split: AnomalySplit, val_fraction: float, seed: int) -> dict[str, AnomalySplit]:
    """One labelled pool -> train / val (normal only) / test, per source as DCASE built its sets from
    MIMII: test gets every anomaly plus as many of the source's normal samples, val a seeded
    `val_fraction` of the remaining normal ones, train the rest."""
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for source, normal in _shuffled_per_source(split.source, ~split.is_anomaly, np.random.default_rng(seed)):
        anomalous = np.flatnonzero((split.source == source) & split.is_anomaly)
        n_test, n_val = len(anomalous), int(round(val_fraction * (len(normal) - len(anomalous))))
        if len(normal) <= n_test + n_val:
            raise ValueError(f"source '{source}': {len(normal)} normal samples cannot give {n_test} to test, "
                             f"{n_val} to val and some to train")
        parts["test"] += [anomalous, normal[:n_test]]
        parts["val"].append(normal[n_test:n_test + n_val])
        parts["train"].append(normal[n_test + n_val:])
    return {name: split.subset(np.sort(np.concatenate(idx))) for name, idx in parts.items()}


def carve_val(train: AnomalySplit, val_fraction: float, seed: int) -> dict[str, AnomalySplit]:
    """A normal-only train part -> train / val, val a seeded `val_fraction` of every source's samples."""
    everything = np.ones(len(train), bool)
    val = [shuffled[: int(round(val_fraction * len(shuffled)))]
           for _, shuffled in _shuffled_per_source(train.source, everything, np.random.default_rng(seed))]
    val = np.sort(np.concatenate(val))
    return {"train": train.subset(np.setdiff1d(np.arange(len(train)), val)), "val": train.subset(val)}


# ---- generated anomaly data ----------------------------------------------------------------------------

def planned_kinds(train: int, val: int, test_normal: int, test_anomalous: int, kinds: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Kind per sample of a generated set, in split order: train and val normal, then test's normal and
    anomalous samples (spread evenly over kinds 1..kinds-1) in a seeded order."""
    if min(train, val, test_normal, test_anomalous) < 1:
        raise ValueError("every split needs at least one sample (and test at least one anomalous sample)")
    anomalous = 1 + np.arange(test_anomalous) % (kinds - 1)
    test = rng.permutation(np.concatenate([np.zeros(test_normal, np.int64), anomalous]))
    return np.concatenate([np.zeros(train + val, np.int64), test])


def split_planned(x: np.ndarray, kinds: np.ndarray, labels: list[str], sources: np.ndarray, train: int,
                  val: int) -> dict[str, AnomalySplit]:
    """A generated set in `planned_kinds` order -> train / val / test."""
    bounds = {"train": (0, train), "val": (train, train + val), "test": (train + val, len(kinds))}
    return {name: AnomalySplit(x[a:b], kinds[a:b], labels, sources[a:b]) for name, (a, b) in bounds.items()}
