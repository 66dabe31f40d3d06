"""Anomaly metrics (scikit-learn): AUROC, partial AUROC, and the rates a threshold gives.

Scores are "higher = more anomalous"; labels are True / 1 for anomalous samples.

Two partial AUROCs over FPR <= max_fpr are reported, because papers mix them up:
  * `pauc`: DCASE task 2's definition, the area under the ROC curve for FPR in [0, max_fpr] divided
    by max_fpr (unstandardised; a random scorer gets max_fpr / 2, a perfect one 1);
  * `pauc_mcclish`: scikit-learn's roc_auc_score(max_fpr=...), McClish's standardisation of the same
    area to [0.5, 1] (a random scorer gets 0.5).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import auc, roc_auc_score, roc_curve

MAX_FPR = 0.1  # DCASE's p


def _check(scores: np.ndarray, is_anomaly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, is_anomaly = np.asarray(scores, dtype=np.float64), np.asarray(is_anomaly).astype(bool)
    if scores.shape != is_anomaly.shape or scores.ndim != 1:
        raise ValueError(f"expected scores (N,) and labels (N,), got {scores.shape} and {is_anomaly.shape}")
    if is_anomaly.all() or not is_anomaly.any():
        raise ValueError("AUROC needs both normal and anomalous samples")
    return scores, is_anomaly


def auroc(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    scores, is_anomaly = _check(scores, is_anomaly)
    return float(roc_auc_score(is_anomaly, scores))


def pauc(scores: np.ndarray, is_anomaly: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """DCASE's pAUC: (1 / max_fpr) x area under the ROC curve over FPR in [0, max_fpr] (unstandardised)."""
    if not 0 < max_fpr < 1:
        raise ValueError(f"max_fpr must be in (0, 1), got {max_fpr}")
    scores, is_anomaly = _check(scores, is_anomaly)
    fpr, tpr, _ = roc_curve(is_anomaly, scores)
    stop = np.searchsorted(fpr, max_fpr, side="right")
    tpr_at_max = np.interp(max_fpr, fpr[stop - 1:stop + 1], tpr[stop - 1:stop + 1])  # the curve cut at max_fpr
    return float(auc(np.append(fpr[:stop], max_fpr), np.append(tpr[:stop], tpr_at_max)) / max_fpr)


def pauc_mcclish(scores: np.ndarray, is_anomaly: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """scikit-learn's standardised partial AUROC (McClish correction), in [0.5, 1] for better-than-random."""
    scores, is_anomaly = _check(scores, is_anomaly)
    return float(roc_auc_score(is_anomaly, scores, max_fpr=max_fpr))


def rates_at(threshold: float, scores: np.ndarray, is_anomaly: np.ndarray) -> dict[str, float]:
    """Samples with score > threshold are flagged: the false-alarm rate (of normal samples) and the
    detection rate (of anomalous ones); a rate over an empty group is NaN."""
    flagged, is_anomaly = np.asarray(scores) > threshold, np.asarray(is_anomaly).astype(bool)
    return {"false_alarm_rate": float(flagged[~is_anomaly].mean()) if (~is_anomaly).any() else float("nan"),
            "detection_rate": float(flagged[is_anomaly].mean()) if is_anomaly.any() else float("nan")}


def anomaly_report(scores: np.ndarray, kinds: np.ndarray, labels: list[str], max_fpr: float = MAX_FPR) -> dict:
    """Overall AUROC / pAUCs (kind 0 = normal vs all others), and per anomaly kind (normal vs that kind)."""
    scores, kinds = np.asarray(scores), np.asarray(kinds)
    report = _scores(scores, kinds != 0, max_fpr)
    normal = kinds == 0
    report["per_kind"] = {label: _scores(scores[normal | (kinds == k)], kinds[normal | (kinds == k)] == k, max_fpr)
                          for k, label in enumerate(labels) if k and (kinds == k).any()}
    return report


def _scores(scores: np.ndarray, is_anomaly: np.ndarray, max_fpr: float) -> dict[str, float]:
    return {"auroc": auroc(scores, is_anomaly), "pauc": pauc(scores, is_anomaly, max_fpr),
            "pauc_mcclish": pauc_mcclish(scores, is_anomaly, max_fpr)}
