"""Calibration, prior corrections, conformal sets on real model scores (slow).

The SMS spam texts are scored once per module (260 texts, 4-shot) through a
response cache, so each test re-uses them and only pays for the calls it is
about: the calibration tests use the first 150 texts, the conformal test
(MAPIE) all 260. ~45 s on one llama.cpp thread.
"""

import numpy as np
import pytest
from scipy.special import log_softmax, softmax
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

pytest.importorskip("llama_cpp")

from sklearn_llmconf import (  # noqa: E402
    InFitCalibration,
    LLMClassifier,
    ResponseCache,
    TemperatureScaler,
)
from sklearn_llmconf.backends import LlamaCppBackend  # noqa: E402
from sklearn_llmconf.calibration._priors import CONTENT_FREE_INPUTS  # noqa: E402
from sklearn_llmconf.datasets import load_sms_spam  # noqa: E402
from sklearn_llmconf.metrics import expected_calibration_error  # noqa: E402

pytestmark = pytest.mark.slow

N_TEXTS = 150  # the calibration tests' texts
N_MORE = 110  # more texts for the conformal test's three disjoint splits


@pytest.fixture(scope="module")
def sms(tmp_path_factory):
    X, y = load_sms_spam(return_X_y=True)
    # demo pool and evaluation texts are disjoint (the data are de-duplicated)
    X_pool, X_rest, y_pool, y_rest = train_test_split(
        X, y, train_size=60, stratify=y, random_state=0
    )
    X_eval, X_rest, y_eval, y_rest = train_test_split(
        X_rest, y_rest, train_size=N_TEXTS, stratify=y_rest, random_state=0
    )
    X_more, _, y_more, _ = train_test_split(
        X_rest, y_rest, train_size=N_MORE, stratify=y_rest, random_state=0
    )
    X_eval, y_eval = [*X_eval, *X_more], np.concatenate([y_eval, y_more])
    cache = ResponseCache(tmp_path_factory.mktemp("cache") / "responses.sqlite")
    clf = LLMClassifier(
        n_shots=4, backend=LlamaCppBackend(), cache=cache, random_state=0,
        calibration=None,  # raw scores: the tests calibrate them explicitly
    ).fit(list(X_pool), y_pool)
    log_probs = clf.score_details(X_eval).log_proba
    assert clf.usage_.calls == N_TEXTS + N_MORE
    return clf, (list(X_pool), y_pool), (X_eval, y_eval), log_probs


@pytest.fixture(scope="module")
def sms150(sms):
    """The calibration tests' 150 texts and their raw log-probabilities."""
    clf, pool, (X, y), log_probs = sms
    return clf, pool, (X[:N_TEXTS], y[:N_TEXTS]), log_probs[:N_TEXTS]


def test_calibration_fitted_on_one_split_helps_on_another(sms150):
    clf, _, (X, y), _ = sms150
    X_cal, X_test, y_cal, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    raw = clf.predict_proba(X_test)
    raw_ll = log_loss(y_test, raw, labels=clf.classes_)
    raw_ece = expected_calibration_error(y_test, raw, labels=clf.classes_)
    for bias in (False, True):
        scaler = TemperatureScaler(FrozenEstimator(clf), bias=bias)
        proba = scaler.fit(X_cal, y_cal).predict_proba(X_test)
        ll = log_loss(y_test, proba, labels=clf.classes_)
        ece = expected_calibration_error(y_test, proba, labels=clf.classes_)
        assert ll < raw_ll, (bias, ll, raw_ll)
        assert ece < raw_ece, (bias, ece, raw_ece)
    # with a bias, the fitted log loss beats the constant base-rate predictor
    base = np.mean(np.asarray(y_cal) == clf.classes_[1])
    base_ll = log_loss(y_test, np.tile([1 - base, base], (len(y_test), 1)),
                       labels=clf.classes_)
    assert ll < base_ll


def test_prior_corrections_on_the_real_model(sms150):
    clf, (X_pool, y_pool), (X, y), log_probs = sms150
    ctx = clone(clf).set_params(
        calibration=InFitCalibration(method=None, prior_correction="contextual"))
    ctx.fit(X_pool, y_pool)
    # fit scores exactly the 3 content-free inputs; predictions hit the cache
    # (clone deep-copies the in-memory cache with its scores)
    assert ctx.usage_.calls == 3
    cf = clf.score_details(list(CONTENT_FREE_INPUTS)).log_proba
    np.testing.assert_allclose(
        ctx.content_free_prior_, softmax(cf, axis=1).mean(axis=0), rtol=1e-6
    )
    p_ctx = ctx.predict_proba(X)
    assert ctx.usage_.calls == 3
    batch = clone(clf).set_params(calibration="batch")
    p_batch = batch.fit(X_pool, y_pool).predict_proba(X)
    assert batch.usage_.calls == 0
    p_raw = softmax(log_probs, axis=1)
    np.testing.assert_allclose(
        p_batch,
        softmax(log_softmax(log_probs, axis=1) - np.log(p_raw.mean(axis=0)), axis=1),
        rtol=1e-6,
    )
    # binary: both corrections shift the log-odds by a constant, so the ranking
    # (AUC) is kept, while the model's bias towards "spam" is reduced
    is_spam = np.asarray(y) == "spam"
    auc = roc_auc_score(is_spam, p_raw[:, 1])
    for p in (p_ctx, p_batch):
        assert roc_auc_score(is_spam, p[:, 1]) == pytest.approx(auc)
        assert log_loss(y, p, labels=clf.classes_) < log_loss(
            y, p_raw, labels=clf.classes_
        )


def test_split_conformal_on_the_embedded_model_covers(sms):
    """MAPIE's split-conformal sets over the calibrated real classifier."""
    mapie_classification = pytest.importorskip("mapie.classification")
    clf, _, (X, y), _ = sms
    calls = clf.usage_.calls
    # MAPIE needs 2-D X: one object column fills the prompt's {text} field
    # (the same prompts as the 1-D texts: every score comes from the cache).
    order = np.random.default_rng(0).permutation(len(y))
    X = np.asarray(X, dtype=object)[order][:, None]
    y = np.asarray(y)[order]
    # Three disjoint splits: the scaler's, MAPIE's (its scores must be
    # exchangeable with the test rows'), the test rows.
    calibrated = TemperatureScaler(FrozenEstimator(clf), bias=True).fit(
        X[:60], y[:60])
    mapie = mapie_classification.SplitConformalClassifier(
        FrozenEstimator(calibrated), confidence_level=0.9, prefit=True)
    mapie.conformalize(X[60:160], y[60:160])
    _, sets = mapie.predict_set(X[160:260])
    assert sets.shape == (100, 2, 1)
    col = np.searchsorted(calibrated.classes_, y[160:260])
    coverage = sets[np.arange(100), col, 0].mean()
    size = sets[:, :, 0].sum(axis=1).mean()
    print(f"coverage {coverage:.3f} at 0.9, mean set size {size:.2f}")
    # split-conformal coverage >= 0.9 in expectation; sd ~0.03 over 100 test rows
    assert coverage >= 0.9 - 3 * np.sqrt(0.09 / 100)
    assert clf.usage_.calls == calls  # every prompt was already scored
