"""The simple models a careful engineer tries before a transformer, on the same splits and features a
modality names (Modality.baseline_features): what every task's model has to beat.

  * classification: logistic regression on standardised features, C picked on val;
  * anomaly: distance of a sample to the normal training data, Mahalanobis (Ledoit-Wolf covariance
    after PCA) and mean distance to the k nearest normal samples, both on standardised features;
  * detection: the training set's box prior, the same boxes for every image (k-means centres of each
    class's boxes, scored by how often boxes fall there): the floor a detector must clear.
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from modalities.splits import CLASS_PADDING
from pipeline.evaluation.probes import linear_probe

FEATURE_BATCH = 512  # samples turned into features at once (video features are built from float clips)


def features_of(modality, split) -> np.ndarray:
    return np.concatenate([modality.baseline_features(split.x[i:i + FEATURE_BATCH])
                           for i in range(0, len(split.x), FEATURE_BATCH)])


def logistic_regression(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], Cs, seed: int) -> dict:
    """Accuracy on test of the logistic regression whose C did best on val."""
    result = linear_probe(features["train"], labels["train"], features["val"], labels["val"],
                          features["test"], labels["test"], list(Cs), seed)
    return {"val_metric": result["linear_val_accuracy"], "test_metric": result["linear_test_accuracy"],
            "C": result["linear_C"]}


def distance_scorers(train: np.ndarray, max_components: int, k: int) -> dict:
    """name -> score function (features -> anomaly score, higher = further from the normal training data)."""
    scaler = StandardScaler().fit(train)
    normal = scaler.transform(train)
    pca = PCA(n_components=min(max_components, *normal.shape), random_state=0).fit(normal)
    covariance = LedoitWolf().fit(pca.transform(normal))
    neighbours = NearestNeighbors(n_neighbors=min(k + 1, len(normal))).fit(normal)

    def mahalanobis(x):
        return covariance.mahalanobis(pca.transform(scaler.transform(x)))

    def knn(x):
        # a training sample is its own nearest neighbour; scoring the training set is not done here
        distances, _ = neighbours.kneighbors(scaler.transform(x), n_neighbors=min(k, len(normal)))
        return distances.mean(1)

    return {"mahalanobis": mahalanobis, "knn": knn}


def box_prior(split, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (P, 4), scores (P, classes)) from a detection split: for each class the k-means centres of
    its boxes, each scored by the number of the class's boxes around it per image."""
    keep = split.classes != CLASS_PADDING
    boxes, classes = split.boxes[keep], split.classes[keep]
    num_classes = len(split.labels)
    prior_boxes, prior_scores = [], []
    for c in range(num_classes):
        own = boxes[classes == c]
        if len(own) == 0:
            continue
        k = min(per_class, len(own))
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(own)
        scores = np.zeros((k, num_classes), dtype=np.float32)
        scores[:, c] = np.minimum(np.bincount(km.labels_, minlength=k) / len(split), 1.0)
        prior_boxes.append(km.cluster_centers_.astype(np.float32))
        prior_scores.append(scores)
    if not prior_boxes:
        raise ValueError("the training split holds no boxes: no box prior to build")
    return np.concatenate(prior_boxes), np.concatenate(prior_scores)


def detector_outputs(prior: tuple[np.ndarray, np.ndarray], images: int) -> list[np.ndarray]:
    """The prior as a detector's outputs for `images` images: boxes (N, P, 4) and scores (N, P, classes)."""
    return [np.repeat(part[None], images, axis=0) for part in prior]
