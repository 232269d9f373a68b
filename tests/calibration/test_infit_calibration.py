"""In-fit calibration (``LLMClassifier(calibration="auto")``), with a fake backend."""

import warnings

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

from sklearn_llmconf import (
    InFitCalibration,
    LLMClassifier,
    ResponseCache,
    TemperatureScaler,
)
from sklearn_llmconf.testing import KeywordBackend


def _data(n=60, seed=0):
    """Texts whose label word shows up more often in the other class's texts.

    KeywordBackend scores a label by counting its word, so the raw scores are
    biased toward "spam"; the in-fit bias has something to repair.
    """
    rng = np.random.default_rng(seed)
    y = np.where(rng.uniform(size=n) < 0.3, "spam", "ham")
    words = {"spam": "spam spam offer", "ham": "spam ham lunch"}
    X = [f"{words[label]} number {i}" for i, label in enumerate(y)]
    return np.array(X, dtype=object), y


def _calls(backend):
    return sum(len(c) for c in getattr(backend, "calls_", []))


def test_fit_scores_non_demo_texts_once_and_predict_reuses_them():
    X, y = _data()
    backend = KeywordBackend()
    clf = LLMClassifier(backend=backend, n_shots=4, random_state=0).fit(X, y)
    idx = clf.calibration_indices_
    demo_texts = {d[0][0] for d in clf.demos_}
    assert len(idx) == len(X) - 4
    assert not demo_texts & set(X[idx])
    assert _calls(backend) == len(idx) == clf.usage_.calls
    # no new call for the calibration texts (in-memory cache, no cache set)
    clf.predict_proba(X[idx])
    assert _calls(backend) == len(idx)
    assert clf.usage_.cache_hits == len(idx)
    # other texts are scored as usual
    clf.predict_proba(["a new text"])
    assert _calls(backend) == len(idx) + 1


def test_max_calibration_samples_caps_fit_calls_and_is_stratified(tmp_path):
    X, y = _data(200)
    backend = KeywordBackend()
    cache = ResponseCache(tmp_path / "c.sqlite")
    clf = LLMClassifier(backend=backend, n_shots=2, random_state=0, cache=cache,
                        calibration=InFitCalibration(max_samples=50)).fit(X, y)
    assert len(clf.calibration_indices_) == 50 == _calls(backend)
    share = np.mean(y[clf.calibration_indices_] == "spam")
    assert abs(share - np.mean(y == "spam")) < 0.03
    clf.predict(X[clf.calibration_indices_])
    assert _calls(backend) == 50  # from the response cache


def test_calibration_improves_biased_scores_and_raw_stays_available():
    X, y = _data(300, seed=1)
    X_te, y_te = _data(300, seed=2)
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0, random_state=0)
    clf.fit(X, y)
    raw = LLMClassifier(backend=KeywordBackend(), n_shots=0, calibration=None)
    raw.fit(X, y)
    assert not hasattr(raw, "calibration_bias_") and len(raw.calibration_indices_) == 0
    p_cal, p_raw = clf.predict_proba(X_te), raw.predict_proba(X_te)
    assert log_loss(y_te, p_cal) < 0.8 * log_loss(y_te, p_raw)
    assert np.mean(clf.predict(X_te) == y_te) >= np.mean(y_te == "ham")
    # decision_function carries the calibration; fit decides it, so
    # set_params(calibration=None) takes effect at the next fit
    d = clf.decision_function(X_te)
    np.testing.assert_allclose(1 / (1 + np.exp(-d)), p_cal[:, 1])
    clf.set_params(calibration=None)
    np.testing.assert_array_equal(clf.predict_proba(X_te), p_cal)
    np.testing.assert_allclose(clf.fit(X, y).predict_proba(X_te), p_raw)


def test_too_few_labels_warn_and_fall_back():
    X, y = _data(12)
    with pytest.warns(UserWarning, match="only 4 training text"):
        clf = LLMClassifier(backend=KeywordBackend(), n_shots=8,
                            random_state=0).fit(X, y)
    assert clf.calibration_temperature_ == 1.0
    assert np.isfinite(clf.predict_proba(X)).all()
    with pytest.warns(UserWarning, match=r"\(none: raw scores\)"):
        clf = LLMClassifier(backend=KeywordBackend(), n_shots=12,
                            random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.calibration_bias_, 0.0)


def test_similar_demos_never_show_the_calibration_text_itself():
    X, y = _data(40)
    backend = KeywordBackend()
    LLMClassifier(backend=backend, n_shots=3, demo_selection="similar",
                  random_state=0).fit(X, y)
    prompts = [p for call in backend.calls_ for p in call]
    assert len(prompts) == 40
    for text, prompt in zip(X, prompts):
        assert prompt.count(f"Text: {text}\n") == 1  # only as the query


def test_failed_rows_stay_failures_with_in_fit_calibration():
    X, y = _data(60)
    clf = LLMClassifier(backend=KeywordBackend(fail_on="FAIL"), n_shots=0,
                        on_error="warn", random_state=0).fit(X, y)
    assert np.any(clf.calibration_bias_ != 0)
    with pytest.warns(UserWarning, match="1 of 2 rows"):
        proba = clf.predict_proba(["FAIL spam", "spam offer"])
    np.testing.assert_array_equal(proba[0], 0.5)
    clf.set_params(on_error="nan").fit(X, y)
    assert np.isnan(clf.predict_proba(["FAIL spam", "spam offer"])[0]).all()


def test_failed_calibration_rows_are_left_out():
    X, y = _data(60)
    X = X.copy()
    X[:5] = [f"FAIL {t}" for t in X[:5]]
    clf = LLMClassifier(backend=KeywordBackend(fail_on="FAIL"), n_shots=0,
                        random_state=0).fit(X, y)
    assert clf.usage_.failed_rows == 5
    assert np.isfinite(clf.calibration_bias_).all()


def test_explicit_compositions_with_the_default():
    X, y = _data(120)
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=2, random_state=0)
    clf.fit(X[:60], y[:60])
    frozen = FrozenEstimator(clf)
    for calibrator in (TemperatureScaler(frozen, bias=True),
                       CalibratedClassifierCV(frozen, method="sigmoid")):
        proba = calibrator.fit(X[60:90], y[60:90]).predict_proba(X[90:])
        assert proba.shape == (30, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    cv = StratifiedKFold(3)
    scores = cross_val_score(
        LLMClassifier(backend=KeywordBackend(), n_shots=2, random_state=0),
        X, y, cv=cv, scoring="neg_log_loss")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    search = GridSearchCV(
        LLMClassifier(backend=KeywordBackend(), n_shots=2, random_state=0),
        {"prompt": ["Text: {text}\nAnswer:", "Message: {text}\nLabel:"]},
        cv=cv, scoring="neg_log_loss",
    ).fit(X, y)
    assert search.best_params_["prompt"] in {"Text: {text}\nAnswer:",
                                             "Message: {text}\nLabel:"}


def test_in_fit_calibration_is_deterministic_and_pickles():
    import pickle

    X, y = _data(80)
    a = LLMClassifier(backend=KeywordBackend(), n_shots=2, random_state=0).fit(X, y)
    b = LLMClassifier(backend=KeywordBackend(), n_shots=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(a.calibration_indices_, b.calibration_indices_)
    assert a.calibration_temperature_ == b.calibration_temperature_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = pickle.loads(pickle.dumps(a))
    np.testing.assert_allclose(c.predict_proba(X[:5]), a.predict_proba(X[:5]))
