"""Frozen-encoder evaluation: features, kNN and linear-probe accuracy (scikit-learn)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from devices.io import atomic_path


@torch.no_grad()
def extract_features(encoder, modality, x: np.ndarray, batch_size: int, device="cpu") -> np.ndarray:
    """The encoder's pooled features of stored samples x; modality None: x is already the model input."""
    encoder.eval().to(device)
    feats = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(device)
        feats.append(encoder.features(xb if modality is None else modality.to_input(xb)).float().cpu())
    return torch.cat(feats).numpy()


def knn_accuracy(train_f, train_y, test_f, test_y, k: int) -> float:
    """Cosine kNN with distance-weighted votes, fitted on train only."""
    k = min(k, len(train_y))
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", weights="distance")
    knn.fit(train_f, train_y)
    return float((knn.predict(test_f) == test_y).mean())


def linear_probe(train_f, train_y, val_f, val_y, test_f, test_y, Cs: list[float], seed: int) -> dict:
    """Logistic regression on standardised features; C picked on val, scored once on test."""
    return fit_linear_probe(train_f, train_y, val_f, val_y, test_f, test_y, Cs, seed)[0]


def fit_linear_probe(train_f, train_y, val_f, val_y, test_f, test_y, Cs: list[float], seed: int):
    """linear_probe's figures and its classifier (a StandardScaler + LogisticRegression pipeline)."""
    best = None
    for C in Cs:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
        clf.fit(train_f, train_y)
        val_acc = float(clf.score(val_f, val_y))
        if best is None or val_acc > best[0]:
            best = (val_acc, C, clf)
    val_acc, C, clf = best
    return {"linear_val_accuracy": val_acc, "linear_C": C,
            "linear_test_accuracy": float(clf.score(test_f, test_y))}, clf


def save_linear_probe(clf, path: Path) -> None:
    """A fitted linear probe as plain arrays (safetensors: nothing executes on loading)."""
    scaler, logistic = clf[0], clf[-1]
    with atomic_path(path) as tmp:
        arrays = {"mean": scaler.mean_, "scale": scaler.scale_, "coef": logistic.coef_,
                  "intercept": logistic.intercept_, "classes": logistic.classes_.astype(np.int64)}
        # safetensors writes the raw buffer: a Fortran-ordered array (sklearn's coef_) would come back transposed
        save_file({name: np.ascontiguousarray(a) for name, a in arrays.items()}, str(tmp))


class LinearProbe:
    """A linear probe saved by save_linear_probe: features -> class log-probabilities, one column per label
    id (as the classifier's predict_log_proba gives them; a label absent in training gets -inf)."""

    def __init__(self, path: Path):
        arrays = load_file(str(path))
        expected = {"mean", "scale", "coef", "intercept", "classes"}
        if set(arrays) != expected:
            raise ValueError(f"{path}: a linear probe holds the arrays {sorted(expected)}, found {sorted(arrays)}")
        self.mean, self.scale, self.coef = arrays["mean"], arrays["scale"], arrays["coef"]
        self.intercept, self.classes = arrays["intercept"], arrays["classes"]

    def log_proba(self, features: np.ndarray) -> np.ndarray:
        if features.shape[1:] != self.mean.shape:
            raise ValueError(f"linear probe: features of shape {features.shape[1:]}, it was fitted on {self.mean.shape}")
        z = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        # a binary logistic regression has one decision function z: p(class 1) = sigmoid(z) = softmax([0, z])
        if self.coef.shape[0] == 1:
            z = np.hstack([np.zeros_like(z), z])
        log_p = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
        out = np.full((len(features), int(self.classes.max()) + 1), -np.inf, dtype=np.float32)
        out[:, self.classes] = log_p
        return out


def label_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified `fraction` of the labelled samples (at least one per class), seeded:
    the low-label case of the probes."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == c))[: max(1, round(fraction * np.sum(y == c)))] for c in np.unique(y)]
    return np.sort(np.concatenate(keep))
