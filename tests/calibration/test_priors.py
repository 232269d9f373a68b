"""Label-free prior corrections (contextual, batch), with a deterministic backend."""

import pickle

import numpy as np
import pytest
from scipy.special import log_softmax, softmax
from sklearn.base import clone

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends._base import ScoreResult
from sklearn_llmconf.calibration._priors import (
    CONTENT_FREE_INPUTS,
    apply_prior,
    estimate_prior,
    min_batch_size,
)
from sklearn_llmconf.testing import KeywordBackend
from sklearn_llmconf.utils._sklearn_compat import InvalidParameterError
from tests._data import X_BIN, Y_BIN

X_MANY = [f"message number {i} " + ("spam" if i % 3 else "ham") for i in range(30)]


class BiasedBackend(KeywordBackend):
    """KeywordBackend plus a fixed log-score bias per label (a prompt's prior)."""

    def __init__(self, bias=(4.0, 0.0), strength=2.0, fail_on=None, missing_on=None):
        super().__init__(strength=strength, fail_on=fail_on, missing_on=missing_on)
        self.bias = bias

    def score_labels(self, prompts, labels):
        result = super().score_labels(prompts, labels)
        return ScoreResult(
            result.log_probs + np.asarray(self.bias, dtype=float),
            errors=result.errors,
            usage=result.usage,
        )


# -- the correction math --------------------------------------------------------
def test_apply_prior_divides_and_renormalises():
    log_p = np.log(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
    prior = np.array([0.5, 0.25, 0.25])
    expected = np.array(
        [[0.2 / 0.5, 0.3 / 0.25, 0.5 / 0.25], [0.6 / 0.5, 0.3 / 0.25, 0.1 / 0.25]]
    )
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.exp(apply_prior(log_p, prior)), expected)
    # unnormalised label scores (mass left on other tokens) give the same result
    np.testing.assert_allclose(
        apply_prior(log_p - 3.0, prior), apply_prior(log_p, prior)
    )
    # a uniform prior changes nothing
    np.testing.assert_allclose(apply_prior(log_p, np.full(3, 1 / 3)), log_p)


def test_estimate_prior_averages_probabilities_of_finite_rows():
    log_p = np.log(np.array([[0.2, 0.8], [0.6, 0.4], [np.nan, 0.5]]))
    np.testing.assert_allclose(estimate_prior(log_p), [0.4, 0.6])
    with pytest.raises(ValueError, match="No row could be scored"):
        estimate_prior(np.full((2, 2), np.nan))


# -- contextual calibration ------------------------------------------------------
def test_contextual_fit_makes_three_content_free_calls():
    backend = KeywordBackend()
    clf = LLMClassifier(
        n_shots=0, backend=backend, calibration="contextual"
    )
    clf.fit(X_BIN, Y_BIN)
    assert len(backend.calls_) == 1
    prompts = backend.calls_[0]
    assert len(prompts) == 3
    for text, prompt in zip(CONTENT_FREE_INPUTS, prompts, strict=True):
        assert prompt.endswith(f"Text: {text}\nAnswer:")
    assert clf.usage_.calls == 3
    assert clf.content_free_prior_.shape == (2,)
    np.testing.assert_allclose(clf.content_free_prior_.sum(), 1.0)


def test_zero_shot_fit_without_correction_makes_no_call():
    for correction in (None, "batch"):
        backend = KeywordBackend()
        clf = LLMClassifier(
            n_shots=0, backend=backend, calibration=correction
        )
        clf.fit(X_BIN, Y_BIN)
        assert not hasattr(backend, "calls_")
        assert not hasattr(clf, "content_free_prior_")


def test_contextual_content_free_prompts_share_the_demonstrations():
    backend = KeywordBackend()
    clf = LLMClassifier(
        backend=backend,
        n_shots=2,
        calibration="contextual",
        random_state=0,
    ).fit(X_BIN, Y_BIN)
    cf_prompt = backend.calls_[0][0]
    query_prompt = clf._render([("query text",)])[0].text
    prefix = query_prompt[: query_prompt.rindex("Text: query text")]
    assert cf_prompt == prefix + "Text: N/A\nAnswer:"
    assert all(demo[0][0] in prefix for demo in clf.demos_)


def test_contextual_correction_is_exact():
    backend = BiasedBackend(bias=(3.0, 0.0))
    clf = LLMClassifier(
        n_shots=0, backend=backend, calibration="contextual"
    ).fit(X_BIN, Y_BIN)
    plain = LLMClassifier(n_shots=0, calibration=None, backend=backend).fit(
        X_BIN, Y_BIN
    )
    cf = plain.score_details(list(CONTENT_FREE_INPUTS)).log_proba
    prior = softmax(cf, axis=1).mean(axis=0)
    np.testing.assert_allclose(clf.content_free_prior_, prior)
    raw = plain.score_details(X_BIN).log_proba
    expected = log_softmax(log_softmax(raw, axis=1) - np.log(prior), axis=1)
    np.testing.assert_allclose(clf.predict_log_proba(X_BIN), expected)
    np.testing.assert_allclose(
        clf.decision_function(X_BIN), expected[:, 1] - expected[:, 0]
    )
    np.testing.assert_allclose(clf.predict_proba(X_BIN), np.exp(expected))


def test_contextual_correction_removes_a_label_bias():
    # The bias makes the raw model answer "ham" for everything; the content-free
    # inputs reveal it and the correction restores the keyword decisions.
    backend = BiasedBackend(bias=(4.0, 0.0))
    raw = LLMClassifier(n_shots=0, calibration=None, backend=backend).fit(X_BIN, Y_BIN)
    assert (raw.predict(X_BIN) == "ham").all()
    clf = LLMClassifier(
        n_shots=0, backend=backend, calibration="contextual"
    )
    clf.fit(X_BIN, Y_BIN)
    assert clf.content_free_prior_[0] > 0.9
    np.testing.assert_array_equal(clf.predict(X_BIN), Y_BIN)


def test_contextual_fills_every_field_of_a_2d_prompt():
    backend = KeywordBackend()
    clf = LLMClassifier(
        "Subject: {subject}\nBody: {body}\nAnswer:",
        backend=backend,
        calibration="contextual",
    )
    X = [[x, x] for x in X_BIN]
    clf.fit(X, Y_BIN)
    assert "Subject: [MASK]\nBody: [MASK]\nAnswer:" in backend.calls_[0][2]
    assert clf.predict_proba(X).shape == (6, 2)


@pytest.mark.parametrize("selection", ["similar", "similar_stratified"])
def test_contextual_with_per_text_demonstrations_raises(selection):
    backend = KeywordBackend()
    clf = LLMClassifier(
        backend=backend,
        n_shots=2,
        demo_selection=selection,
        calibration="contextual",
    )
    with pytest.raises(ValueError, match="fixed set of\\s+demonstrations"):
        clf.fit(X_BIN, Y_BIN)
    assert not hasattr(backend, "calls_")
    # zero-shot "similar" has no demonstrations: one prior is well defined
    clf.set_params(n_shots=0).fit(X_BIN, Y_BIN)
    assert clf.content_free_prior_.shape == (2,)


def test_contextual_set_after_fit_takes_effect_at_the_next_fit():
    clf = LLMClassifier(n_shots=0, calibration=None, backend=KeywordBackend()).fit(
        X_BIN, Y_BIN
    )
    before = clf.predict_proba(X_BIN)
    clf.set_params(calibration="contextual")
    np.testing.assert_array_equal(clf.predict_proba(X_BIN), before)
    assert not hasattr(clf, "content_free_prior_")
    clf.fit(X_BIN, Y_BIN)
    assert clf.content_free_prior_.shape == (2,)
    assert not np.array_equal(clf.predict_proba(X_BIN), before)


def test_refit_without_correction_drops_the_prior():
    clf = LLMClassifier(
        n_shots=0,
        backend=KeywordBackend(),
        calibration="contextual",
    )
    clf.fit(X_BIN, Y_BIN)
    clf.set_params(calibration=None).fit(X_BIN, Y_BIN)
    assert not hasattr(clf, "content_free_prior_")


def test_contextual_failures_of_content_free_inputs():
    # Some content-free inputs fail: the prior comes from the others.
    backend = KeywordBackend(fail_on="[MASK]")
    clf = LLMClassifier(
        n_shots=0,
        backend=backend,
        calibration="contextual",
    )
    clf.fit(X_BIN, Y_BIN)
    assert clf.usage_.failed_rows == 1
    plain = LLMClassifier(n_shots=0, calibration=None, backend=KeywordBackend()).fit(
        X_BIN, Y_BIN
    )
    cf = plain.score_details(["N/A", ""]).log_proba
    np.testing.assert_allclose(
        clf.content_free_prior_, softmax(cf, axis=1).mean(axis=0)
    )
    # All fail: a clear error naming the reason.
    backend = KeywordBackend(fail_on="Answer:")
    clf = LLMClassifier(
        n_shots=0, backend=backend, calibration="contextual"
    )
    with pytest.raises(RuntimeError, match="injected failure"):
        clf.fit(X_BIN, Y_BIN)


def test_contextual_survives_pickle_and_clone():
    clf = LLMClassifier(
        n_shots=0,
        backend=KeywordBackend(),
        calibration="contextual",
    )
    clf.fit(X_BIN, Y_BIN)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(restored.predict_proba(X_BIN), clf.predict_proba(X_BIN))
    assert clone(clf).get_params()["calibration"] == "contextual"


# -- batch calibration -------------------------------------------------------------
def test_batch_correction_is_exact_and_stateless():
    backend = BiasedBackend(bias=(2.0, 0.0))
    clf = LLMClassifier(
        n_shots=0, backend=backend, calibration="batch"
    ).fit(X_BIN, Y_BIN)
    assert not hasattr(backend, "calls_")  # fit makes no call
    plain = LLMClassifier(n_shots=0, calibration=None, backend=backend).fit(
        X_BIN, Y_BIN
    )
    raw = plain.score_details(X_MANY).log_proba
    prior = softmax(raw, axis=1).mean(axis=0)
    expected = log_softmax(log_softmax(raw, axis=1) - np.log(prior), axis=1)
    np.testing.assert_allclose(clf.predict_log_proba(X_MANY), expected)
    # after the correction, the batch's mean probability is closer to uniform
    mean_raw = softmax(raw, axis=1).mean(axis=0)
    mean_corrected = np.exp(expected).mean(axis=0)
    assert abs(mean_corrected[0] - 0.5) < abs(mean_raw[0] - 0.5)
    # the same text gets a different score in a different batch
    other = clf.predict_proba(X_MANY[:20] + ["ham"] * 20)
    assert not np.allclose(other[:20], np.exp(expected[:20]))


def test_batch_correction_warns_for_small_batches():
    clf = LLMClassifier(
        n_shots=0, backend=KeywordBackend(), calibration="batch"
    )
    clf.fit(X_BIN, Y_BIN)
    assert min_batch_size(2) == 20
    with pytest.warns(UserWarning, match="single text comes out uniform"):
        proba = clf.predict_proba(X_BIN[:1])
    np.testing.assert_allclose(proba, [[0.5, 0.5]])
    with pytest.warns(UserWarning, match="6 row"):
        clf.predict(X_BIN)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict_proba(X_MANY[:20])


def test_batch_correction_ignores_failed_rows():
    backend = KeywordBackend(fail_on="number 3 ")
    X = X_MANY[:25]
    nan_clf = LLMClassifier(
        n_shots=0,
        backend=backend,
        calibration="batch",
        on_error="nan",
    ).fit(X_BIN, Y_BIN)
    proba = nan_clf.predict_proba(X)
    assert np.isnan(proba[3]).all()
    ok = np.ones(len(X), bool)
    ok[3] = False
    plain = LLMClassifier(n_shots=0, calibration=None, backend=KeywordBackend()).fit(
        X_BIN, Y_BIN
    )
    raw = plain.score_details([x for x, k in zip(X, ok, strict=True) if k]).log_proba
    prior = softmax(raw, axis=1).mean(axis=0)
    expected = softmax(log_softmax(raw, axis=1) - np.log(prior), axis=1)
    np.testing.assert_allclose(proba[ok], expected)
    # "warn": the failed row stays uniform, the others are corrected the same way
    warn_clf = clone(nan_clf).set_params(on_error="warn").fit(X_BIN, Y_BIN)
    with pytest.warns(UserWarning, match="1 of 25 rows could not be scored"):
        proba = warn_clf.predict_proba(X)
    np.testing.assert_allclose(proba[3], [0.5, 0.5])
    np.testing.assert_allclose(proba[ok], expected)


def test_invalid_prior_correction_is_rejected():
    clf = LLMClassifier(
        n_shots=0,
        backend=KeywordBackend(),
        calibration="label-free",
    )
    with pytest.raises(InvalidParameterError, match="calibration"):
        clf.fit(X_BIN, Y_BIN)
