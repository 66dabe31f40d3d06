"""Frozen-encoder evaluation: features, kNN and linear-probe accuracy (scikit-learn)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@torch.no_grad()
def extract_features(encoder, modality, x: np.ndarray, batch_size: int, device="cpu") -> np.ndarray:
    encoder.eval().to(device)
    feats = []
    for i in range(0, len(x), batch_size):
        xb = modality.to_input(torch.from_numpy(x[i : i + batch_size]).to(device))
        feats.append(encoder.features(xb).float().cpu())
    return torch.cat(feats).numpy()


def knn_accuracy(train_f, train_y, test_f, test_y, k: int) -> float:
    """Cosine kNN with distance-weighted votes, fitted on train only."""
    k = min(k, len(train_y))
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", weights="distance")
    knn.fit(train_f, train_y)
    return float((knn.predict(test_f) == test_y).mean())


def linear_probe(train_f, train_y, val_f, val_y, test_f, test_y, Cs: list[float], seed: int) -> dict:
    """Logistic regression on standardised features; C picked on val, scored once on test."""
    best = None
    for C in Cs:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
        clf.fit(train_f, train_y)
        val_acc = float(clf.score(val_f, val_y))
        if best is None or val_acc > best[0]:
            best = (val_acc, C, clf)
    val_acc, C, clf = best
    return {"linear_val_accuracy": val_acc, "linear_C": C, "linear_test_accuracy": float(clf.score(test_f, test_y))}


def label_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified `fraction` of the labelled samples (at least one per class), seeded:
    the low-label case of the probes."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == c))[: max(1, round(fraction * np.sum(y == c)))] for c in np.unique(y)]
    return np.sort(np.concatenate(keep))
