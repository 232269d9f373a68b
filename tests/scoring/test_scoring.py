"""Fast tests of the scoring engine (sklearn_llmconf.scoring._engine)."""

import numpy as np
import pytest

from sklearn_llmconf import LLMClassifier, ResponseCache
from sklearn_llmconf.backends import Prompt, ScoreResult
from sklearn_llmconf.backends._base import Usage
from sklearn_llmconf.scoring._engine import Scores, score_prompts, score_unique
from sklearn_llmconf.scoring._strategies import make_strategy
from sklearn_llmconf.utils._testing import KeywordBackend
from tests._data import X_BIN, Y_BIN

LABELS = [" ham", " spam"]
LOGPROBS = make_strategy("logprobs", label_words=["ham", "spam"],
                         classes=np.array(["ham", "spam"]))


def prompts_of(texts):
    return [Prompt(("Text: ", t, "\nAnswer:")) for t in texts]


class MassBackend(KeywordBackend):
    """KeywordBackend that also reports a per-row uncovered mass and a note."""

    def _score_labels(self, prompts, labels):
        result = super()._score_labels(prompts, labels)
        mass = np.array([len(p.fields[0]) / 100 for p in prompts])
        return ScoreResult(result.log_probs, errors=result.errors,
                           usage=result.usage,
                           extra={"uncovered_mass": mass, "scoring": "first_token"})


def test_score_prompts_dedupes_and_keeps_row_order():
    backend = KeywordBackend()
    texts = ["spam a", "ham b", "spam a", "ham c", "ham b"]
    scores = score_prompts(backend, prompts_of(texts), LABELS, strategy=LOGPROBS,
                           batch_size=2)
    assert scores.log_probs.shape == (5, 2)
    assert [len(c) for c in backend.calls_] == [2, 1]  # 3 unique, batches of 2
    np.testing.assert_array_equal(scores.log_probs[2], scores.log_probs[0])
    np.testing.assert_array_equal(scores.log_probs[4], scores.log_probs[1])
    assert scores.usage.calls == 3 and scores.usage.cache_hits == 0
    assert scores.errors == [None] * 5


def test_chunks_of_unique_prompts_concat_to_the_whole(tmp_path):
    """The contract parallel scoring relies on: chunks score independently."""
    prompts = prompts_of([f"text {i} " + ("spam" if i % 2 else "ham")
                          for i in range(7)])
    whole = score_unique(MassBackend(), prompts, LABELS, strategy=LOGPROBS)
    parts = [score_unique(MassBackend(), prompts[a:b], LABELS, strategy=LOGPROBS)
             for a, b in [(0, 3), (3, 7)]]
    joined = Scores.concat(parts, n_labels=2)
    np.testing.assert_array_equal(joined.log_probs, whole.log_probs)
    np.testing.assert_array_equal(joined.extra["uncovered_mass"],
                                  whole.extra["uncovered_mass"])
    assert joined.usage == whole.usage
    assert Scores.concat([], n_labels=2).log_probs.shape == (0, 2)


def test_cache_hits_and_interrupt_accounting(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    prompts = prompts_of(["spam 1", "ham 2", "spam 3"])
    running = Usage()
    first = score_prompts(MassBackend(), prompts[:2], LABELS, strategy=LOGPROBS,
                          cache=cache, usage=running)
    second = score_prompts(MassBackend(), prompts, LABELS, strategy=LOGPROBS,
                           cache=cache, usage=running)
    np.testing.assert_array_equal(second.log_probs[:2], first.log_probs)
    assert (second.usage.cache_hits, second.usage.calls) == (2, 1)
    assert (running.cache_hits, running.calls) == (2, 3)
    # Cached rows have no diagnostics: NaN, not a made-up number.
    mass = second.extra["uncovered_mass"]
    assert np.isnan(mass[:2]).all() and mass[2] == pytest.approx(0.06)
    assert "scoring" not in second.extra  # run-level notes are not per row


def test_classifier_surfaces_per_row_extra():
    # calibration=None: fit would score (and keep) these texts already
    clf = LLMClassifier(backend=MassBackend(), n_shots=0, calibration=None)
    clf.fit(X_BIN, Y_BIN)
    assert clf.last_score_extra_ == {}
    clf.predict_proba(X_BIN + X_BIN[:1])
    mass = clf.last_score_extra_["uncovered_mass"]
    expected = [len(t) / 100 for t in X_BIN + X_BIN[:1]]
    np.testing.assert_allclose(mass, expected)
    clf.predict(X_BIN[:2])
    assert clf.last_score_extra_["uncovered_mass"].shape == (2,)
    plain = LLMClassifier(backend=KeywordBackend(), n_shots=0).fit(X_BIN, Y_BIN)
    plain.predict(X_BIN)
    assert plain.last_score_extra_ == {}


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "decision_function", "predict_log_proba"]
)
def test_scoring_warnings_point_at_the_callers_line(method):
    X = ["spam here", "ham here", "FAIL spam"]
    clf = LLMClassifier(n_shots=0, backend=KeywordBackend(fail_on="FAIL"),
                        on_error="warn").fit(X, ["spam", "ham", "spam"])
    with pytest.warns(UserWarning, match="uniform probabilities") as record:
        getattr(clf, method)(X)
    assert [w.filename for w in record] == [__file__]
    clf.set_params(on_error="raise", prior_correction="batch")
    with pytest.warns(UserWarning, match="prior_correction='batch'") as record:
        getattr(clf, method)(X[:2])
    assert [w.filename for w in record] == [__file__]
