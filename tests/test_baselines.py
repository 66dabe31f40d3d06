"""The simple baselines every task is compared with: they learn what is learnable, give chance on noise,
and each modality's features keep what its task needs."""
from __future__ import annotations

import numpy as np
import pytest

from modalities.splits import AnomalySplit, DetectionSplit
from pipeline.config.params import BaselineParams
from pipeline.evaluation.baselines import box_prior, detector_outputs, distance_scorers, logistic_regression
from pipeline.tasks.anomaly.metrics import auroc


def _blobs(n: int, dims: int, seed: int, shift: float = 4.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return rng.normal(size=(n, dims)) + shift * np.eye(3, dims)[y], y


def test_logistic_regression_learns_separable_classes_and_gives_chance_on_random_labels():
    parts = {name: _blobs(300, 10, seed) for name, seed in (("train", 0), ("val", 1), ("test", 2))}
    features = {name: x for name, (x, _) in parts.items()}
    learned = logistic_regression(features, {name: y for name, (_, y) in parts.items()}, [0.1, 1.0], seed=0)
    assert learned["test_metric"] > 0.9
    rng = np.random.default_rng(7)
    shuffled = {name: rng.integers(0, 3, len(y)) for name, (_, y) in parts.items()}
    chance = logistic_regression(features, shuffled, [0.1, 1.0], seed=0)
    assert chance["test_metric"] < 0.45  # 1/3 is chance


def test_distance_scorers_see_shifted_samples_and_not_normal_ones():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(400, 20))
    normal, shifted = rng.normal(size=(100, 20)), rng.normal(size=(100, 20)) + 1.5
    is_anomaly = np.r_[np.zeros(100, bool), np.ones(100, bool)]
    for name, scorer in distance_scorers(train, max_components=16, k=5).items():
        assert auroc(scorer(np.r_[normal, shifted]), is_anomaly) > 0.95, name
        same = scorer(np.r_[normal, rng.normal(size=(100, 20))])
        assert 0.35 < auroc(same, is_anomaly) < 0.65, name


def test_box_prior_puts_boxes_where_the_training_boxes_are():
    n = 40
    boxes = np.zeros((n, 2, 4), np.float32)
    boxes[:, 0] = [10, 10, 20, 20]
    boxes[:, 1] = [40, 40, 60, 50]
    classes = np.tile([0, 1], (n, 1))
    classes[: n // 2, 1] = -1  # half the images have no second box
    split = DetectionSplit(np.zeros((n, 1, 8, 8), np.uint8), np.zeros(n, np.int64), ["car", "person"], boxes, classes)
    prior_boxes, prior_scores = box_prior(split, per_class=1, seed=0)
    np.testing.assert_allclose(prior_boxes, [[10, 10, 20, 20], [40, 40, 60, 50]])
    np.testing.assert_allclose(prior_scores, [[1.0, 0.0], [0.0, 0.5]])
    outputs = detector_outputs((prior_boxes, prior_scores), 3)
    assert outputs[0].shape == (3, 2, 4) and outputs[1].shape == (3, 2, 2)


def test_box_prior_of_a_split_without_boxes_is_an_error():
    split = DetectionSplit(np.zeros((2, 1, 8, 8), np.uint8), np.zeros(2, np.int64), ["car"],
                           np.zeros((2, 1, 4), np.float32), np.full((2, 1), -1))
    with pytest.raises(ValueError, match="no boxes"):
        box_prior(split, per_class=2, seed=0)


def test_the_anomaly_task_scores_its_baseline_like_its_models(tiny_params):
    """AnomalyTask.baseline: both distances thresholded on val, scored by the task's own metric."""
    from pipeline.tasks.registry import get_task

    class Features:  # a modality whose samples are their own features
        baseline_features_name = "raw"

        @staticmethod
        def baseline_features(x):
            return x

    rng = np.random.default_rng(0)
    kinds = ["normal", "shift"]
    train = AnomalySplit(rng.normal(size=(200, 8)), np.zeros(200, np.int64), kinds)
    val = AnomalySplit(rng.normal(size=(60, 8)), np.zeros(60, np.int64), kinds)
    test = AnomalySplit(np.r_[rng.normal(size=(60, 8)), rng.normal(size=(60, 8)) + 2],
                        np.r_[np.zeros(60, np.int64), np.ones(60, np.int64)], kinds)
    params = tiny_params.model_copy(update={"baselines": BaselineParams(pca_components=4, knn_k=3)})
    task_params = next(t for t in params.tasks.values() if t.head == "anomaly")
    result = get_task("anomaly").baseline(task_params, Features(), {"train": train, "val": val, "test": test}, params)
    assert set(result["scorers"]) == {"mahalanobis", "knn"}
    assert result["test_metric"] == max(s["test_auroc"] for s in result["scorers"].values()) > 0.95
    for scores in result["scorers"].values():
        assert scores["test_false_alarm_rate"] <= 0.3 and "threshold" in scores


def test_modality_features_keep_what_their_task_needs(tiny_params):
    from modalities import get_modality

    text = get_modality("text", tiny_params)
    ids = np.array([[2, 5, 5, 0], [2, 7, 0, 0]])
    bag = text.baseline_features(ids)
    assert bag.shape == (2, tiny_params.modality("text").vocab_size)
    assert bag[0, 5] == pytest.approx(np.log(3)) and bag[1, 7] == pytest.approx(np.log(2)) and bag[:, 0].sum() == 0

    video = get_modality("video", tiny_params)
    p = tiny_params.modality("video")
    still = np.full((1, p.channels, p.frames, p.frame_size, p.frame_size), 100, np.uint8)
    moving = still.copy()
    moving[0, :, 3:, :4, :4] = 255  # a patch appears from frame 3 on
    still_f, moving_f = video.baseline_features(still), video.baseline_features(moving)
    assert still_f.shape == moving_f.shape and still_f.ndim == 2
    assert not np.allclose(still_f, moving_f)

    audio = get_modality("audio", tiny_params)
    a = tiny_params.modality("audio")
    quiet = np.zeros((1, 1, a.n_mels, a.frames), np.float32)
    click = quiet.copy()
    click[0, 0, :, a.frames // 2] = 5.0  # one loud frame: the band maxima see it
    assert audio.baseline_features(click)[0].max() == pytest.approx(5.0)
    assert audio.baseline_features(quiet).shape == (1, a.n_mels * 7)
