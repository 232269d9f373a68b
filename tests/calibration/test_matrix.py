"""Matrix (Dirichlet-style) calibration and its choice in in-fit calibration."""

import numpy as np
import pytest
from scipy.optimize import check_grad
from scipy.special import log_softmax

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.calibration._infit import apply_calibration, fit_calibration
from sklearn_llmconf.calibration._matrix import (
    _objective,
    apply_matrix,
    as_log_probs,
    choose_calibrator,
    fit_matrix,
    mean_log_loss,
)
from sklearn_llmconf.testing import KeywordBackend


def _confused_scores(n, k=6, seed=0):
    """Scores that swap two pairs of classes: no temperature or bias fixes it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 2.5
    perm = np.arange(k)
    perm[[0, 1, 2, 3]] = [1, 0, 3, 2]  # the model says 1 for 0, 3 for 2 ...
    return log_softmax(logits[:, perm], axis=1), y


def _calibrated_scores(n, k=6, seed=0):
    """Scores that are already calibrated: the labels are drawn from them."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, k))
    p = np.exp(log_softmax(logits, axis=1))
    y = np.array([rng.choice(k, p=row) for row in p])
    return log_softmax(logits, axis=1), y


def test_gradient_is_exact():
    log_p, y = _confused_scores(40, k=4)
    log_p = as_log_probs(log_p)
    w = np.full(40, 1 / 40)
    fun = _objective(log_p, y, w, np.zeros(4), 0.3)
    theta = np.random.default_rng(1).normal(scale=0.3, size=1 + 16 + 4)
    err = check_grad(lambda t: fun(t)[0], lambda t: fun(t)[1], theta)
    assert err < 1e-5


def test_matrix_repairs_confused_classes_that_temperature_cannot():
    log_p, y = _confused_scores(400, k=5)
    train, test = slice(0, 200), slice(200, None)
    W, c, _ = fit_matrix(as_log_probs(log_p[train]), y[train], strength=3.0)
    matrix_loss = mean_log_loss(apply_matrix(as_log_probs(log_p[test]), W, c), y[test])
    T, b, _, m = fit_calibration(log_p[train], y[train], 5, "temperature")
    assert m is None
    temp = apply_calibration(log_p[test], T, b)
    temp_loss = mean_log_loss(temp, y[test])
    assert matrix_loss < 0.75 * temp_loss
    # accuracy too: the matrix learns which label the model means
    q = apply_matrix(as_log_probs(log_p[test]), W, c)
    acc = np.mean(np.argmax(q, 1) == y[test])
    assert acc > np.mean(np.argmax(temp, 1) == y[test]) + 0.2
    assert choose_calibrator(log_p[train], y[train], "auto")[0] == "matrix"


def test_auto_keeps_the_temperature_where_they_tie():
    log_p, y = _calibrated_scores(200, k=4)
    assert choose_calibrator(log_p, y, "auto") == ("temperature", None)
    chosen, strength = choose_calibrator(log_p, y, "matrix")
    assert chosen == "matrix" and strength > 0


def test_large_strength_leaves_the_temperature_and_label_free_correction():
    log_p, y = _calibrated_scores(200, k=3)
    W, c, _ = fit_matrix(as_log_probs(log_p), y, strength=1e7)
    off_diagonal = W - np.diag(np.diag(W))
    assert np.abs(off_diagonal).max() < 1e-3
    np.testing.assert_allclose(np.diag(W), W[0, 0], atol=1e-3)


def test_binary_log_odds_become_two_log_probabilities():
    z = np.array([-2.0, 0.0, 3.0])
    lp = as_log_probs(z)
    assert lp.shape == (3, 2)
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0)
    np.testing.assert_allclose(lp[:, 1] - lp[:, 0], z)


def _keyword_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["alpha", "beta", "gamma"])
    y = labels[rng.integers(0, 3, size=n)]
    # the text names the wrong label word for alpha/beta: a swap to learn
    swap = {"alpha": "beta", "beta": "alpha", "gamma": "gamma"}
    X = np.array([f"{swap[t]} note {i}" for i, t in enumerate(y)], dtype=object)
    return X, y


@pytest.mark.parametrize("method", ["matrix", "auto"])
def test_in_fit_matrix_calibration_of_the_classifier(method):
    X, y = _keyword_data()
    X_test, y_test = _keyword_data(90, seed=1)
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=3, random_state=0,
                        calibration=method).fit(X, y)
    assert clf.calibration_method_ == "matrix"
    assert clf.calibration_matrix_.shape == (3, 3)
    proba = clf.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    temp = LLMClassifier(backend=KeywordBackend(), n_shots=3, random_state=0,
                         calibration="temperature").fit(X, y)
    assert temp.calibration_method_ == "temperature"
    assert temp.calibration_matrix_ is None
    assert np.mean(clf.predict(X_test) == y_test) > 0.95
    assert np.mean(temp.predict(X_test) == y_test) < 0.6
