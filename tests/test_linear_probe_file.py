"""A linear probe saved by the probe stage gives, loaded back, the fitted classifier's log-probabilities."""
import numpy as np
import pytest
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.evaluation.probes import LinearProbe, fit_linear_probe, save_linear_probe


@pytest.mark.parametrize("classes", [2, 4])
def test_loaded_probe_matches_the_classifier(tmp_path, classes):
    rng = np.random.default_rng(0)
    y = np.arange(120) % classes
    features = rng.normal(size=(120, 6)) * [1, 5, 0.1, 1, 1, 2] + y[:, None] * [1, 0, 0.2, 0, 0, 0]
    metrics, classifier = fit_linear_probe(features[:80], y[:80], features[80:100], y[80:100],
                                           features[100:], y[100:], [0.1, 1.0], seed=0)
    save_linear_probe(classifier, tmp_path / "probe.safetensors")
    loaded = LinearProbe(tmp_path / "probe.safetensors").log_proba(features[100:])
    np.testing.assert_allclose(loaded, classifier.predict_log_proba(features[100:]), rtol=1e-5, atol=1e-5)
    assert np.mean(loaded.argmax(1) == y[100:]) == pytest.approx(metrics["linear_test_accuracy"])


def test_a_class_missing_from_training_gets_no_probability(tmp_path):
    y = np.array([0, 2] * 10)
    features = np.random.default_rng(1).normal(size=(20, 3)) + y[:, None]
    save_linear_probe(make_pipeline(StandardScaler(), LogisticRegression()).fit(features, y), tmp_path / "p.safetensors")
    log_p = LinearProbe(tmp_path / "p.safetensors").log_proba(features)
    assert log_p.shape == (20, 3) and np.all(log_p[:, 1] == -np.inf)
    assert np.allclose(np.exp(log_p).sum(1), 1, atol=1e-5)


def test_a_file_that_is_not_a_probe_is_refused(tmp_path):
    save_file({"weight": np.zeros((2, 2), dtype=np.float32)}, str(tmp_path / "encoder.safetensors"))
    with pytest.raises(ValueError, match="encoder.safetensors: a linear probe holds the arrays"):
        LinearProbe(tmp_path / "encoder.safetensors")


def test_features_of_another_encoder_are_refused(tmp_path):
    y = np.arange(20) % 2
    features = np.random.default_rng(2).normal(size=(20, 3))
    save_linear_probe(make_pipeline(StandardScaler(), LogisticRegression()).fit(features, y), tmp_path / "p.safetensors")
    with pytest.raises(ValueError, match=r"features of shape \(5,\), it was fitted on \(3,\)"):
        LinearProbe(tmp_path / "p.safetensors").log_proba(np.zeros((2, 5)))
