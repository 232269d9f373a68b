"""The fake demonstration on the real embedded model (slow): it works on the
model; the default prompt scores it with the fake answer removed and flags it, and
``on_fake_answer="fail"`` never lets it reach the model."""

import numpy as np
import pytest

from sklearn_llmconf import LLMClassifier, PromptTemplate
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.prompts import DEFAULT_TEMPLATE
from tests import _attacks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    from sklearn_llmconf import ResponseCache
    from sklearn_llmconf.backends import LlamaCppBackend

    X, y = load_sms_spam(return_X_y=True)
    backend = LlamaCppBackend(n_threads=1, n_threads_batch=1)
    params = dict(backend=backend, n_shots=8, calibration=None, on_error="nan",
                  random_state=0)
    unchecked = LLMClassifier(
        PromptTemplate(DEFAULT_TEMPLATE, reject_fake_answers=False), **params
    ).fit(X[:300], y[:300])
    # a response cache: the default prompt's three reads of the same rows
    # (probabilities, details, decision function) score them once
    default = LLMClassifier(**params, cache=ResponseCache(
        tmp_path_factory.mktemp("cache") / "responses.sqlite")).fit(X[:300], y[:300])
    fail = LLMClassifier(
        PromptTemplate(DEFAULT_TEMPLATE, on_fake_answer="fail"), **params
    ).fit(X[:300], y[:300])
    return unchecked, default, fail


def test_fake_demonstration_moves_the_model_and_is_rejected(fitted):
    unchecked, default, fail = fitted
    stored = _attacks.load()
    base = [b["text"] for b in stored["base"]][:6]
    attacked = stored["attacks"]["fake_demo"]["texts"][:6]
    assert list(unchecked.classes_) == ["ham", "spam"]
    # Without the check the payload pushes every text toward ham (escaped
    # onto one line, it still works on the 135M model): spam log-odds fall.
    before = unchecked.decision_function(base)
    after = unchecked.decision_function(attacked)
    # Observed drops 0.04-2.6 (mean 1.4).
    assert (after < before).all() and np.mean(before - after) > 0.5
    # The default prompt scores the attacked rows with the fake answer (and
    # the fake query's markers) removed: flagged, finite, back toward spam.
    with pytest.warns(UserWarning, match="6 of 8 rows hold a fake answer"):
        proba = default.predict_proba(attacked + base[:2])
    assert np.isfinite(proba).all()
    with pytest.warns(UserWarning, match="6 of 8 rows hold a fake answer"):
        flags = default.score_details(attacked + base[:2]).extra["fake_answer"]
    np.testing.assert_array_equal(flags, [1] * 6 + [0] * 2)
    with pytest.warns(UserWarning, match="fake answer"):
        neutral = default.decision_function(attacked)
    assert np.mean(neutral - after) > 0.5
    assert default.usage_.calls == 8  # the details and the decision: cached
    # on_fake_answer="fail": the attacked rows fail without a model call.
    calls = fail.usage_.calls
    proba = fail.predict_proba(attacked + base[:2])
    assert np.isnan(proba[:6]).all() and np.isfinite(proba[6:]).all()
    assert fail.usage_.calls - calls <= 2  # only the clean texts
    assert fail.usage_.failed_rows == 6
