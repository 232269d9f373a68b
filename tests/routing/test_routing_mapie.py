"""Conformal prediction sets through MAPIE on the package's classifiers."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from sklearn_llmconf import LLMClassifier, TemperatureScaler
from sklearn_llmconf.testing import KeywordBackend

mapie_classification = pytest.importorskip("mapie.classification")
SplitConformalClassifier = mapie_classification.SplitConformalClassifier


def _covered(sets, y, classes):
    col = np.searchsorted(classes, y)
    return sets[np.arange(len(y)), col, 0]


def test_split_conformal_on_a_prefit_classifier_covers():
    X, y = make_classification(n_samples=4000, n_classes=3, n_informative=5,
                               random_state=0)
    X_fit, X_rest, y_fit, y_rest = train_test_split(X, y, train_size=1000,
                                                    random_state=0)
    X_conf, X_test, y_conf, y_test = train_test_split(X_rest, y_rest,
                                                      train_size=1000, random_state=0)
    clf = LogisticRegression(max_iter=1000).fit(X_fit, y_fit)
    mapie = SplitConformalClassifier(clf, confidence_level=0.9, prefit=True)
    mapie.conformalize(X_conf, y_conf)
    y_pred, sets = mapie.predict_set(X_test)
    assert sets.shape == (2000, 3, 1)
    coverage = _covered(sets, y_test, clf.classes_).mean()
    # Split-conformal: coverage in [0.9, 0.9 + 1/1001] in expectation; it varies
    # with the 1000 conformalization rows (sd ~0.009) and the 2000 test rows
    # (sd ~0.007).
    sd = np.sqrt(0.09 / 1000 + 0.09 / 2000)
    print(f"coverage {coverage:.3f} at 0.9")
    assert 0.9 - 3 * sd <= coverage <= 0.901 + 3 * sd
    np.testing.assert_array_equal(y_pred, clf.predict(X_test))


def test_split_conformal_on_a_calibrated_llm_classifier_takes_text_columns():
    # MAPIE needs 2-D X: one object column fills the prompt's {text} field.
    rng = np.random.default_rng(0)
    y = rng.choice(["ham", "spam"], size=400)
    noise = rng.choice(["ham", "spam"], size=400)
    X = np.array([f"{a} {b} message {i}" for i, (a, b) in enumerate(zip(y, noise))],
                 dtype=object)[:, None]
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0).fit(X[:100], y[:100])
    calibrated = TemperatureScaler(FrozenEstimator(clf)).fit(X[:100], y[:100])
    mapie = SplitConformalClassifier(calibrated, confidence_level=0.8, prefit=True)
    mapie.conformalize(X[100:250], y[100:250])
    y_pred, sets = mapie.predict_set(X[250:])
    assert sets.shape == (150, 2, 1)
    assert set(y_pred) <= {"ham", "spam"}
    coverage = _covered(sets, y[250:], calibrated.classes_).mean()
    assert coverage >= 0.8 - 3 * np.sqrt(0.16 / 150)
    assert sets.sum(axis=1).min() >= 1  # LAC sets here are never empty


# The same claim on the embedded model's scores is in
# tests/calibration/test_real_calibration.py, on the texts that file scores once.
