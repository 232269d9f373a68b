"""Fast tests of the scoring engine (sklearn_llmconf.scoring._engine)."""

import numpy as np
import pytest
from scipy.special import softmax

from sklearn_llmconf import LLMClassifier, ResponseCache
from sklearn_llmconf.backends import Prompt, ScoreResult
from sklearn_llmconf.backends._base import Usage
from sklearn_llmconf.scoring._engine import (
    concat,
    score_prompts,
    score_rows,
    score_unique,
)
from sklearn_llmconf.scoring._failures import NOT_SENT
from sklearn_llmconf.scoring._strategies import LogProbs, make_strategy
from sklearn_llmconf.testing import KeywordBackend
from tests._data import X_BIN, Y_BIN

LABELS = [" ham", " spam"]
LOGPROBS = make_strategy(LogProbs(), label_words=["ham", "spam"],
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
    joined = concat(parts, n_labels=2)
    np.testing.assert_array_equal(joined.log_probs, whole.log_probs)
    np.testing.assert_array_equal(joined.extra["uncovered_mass"],
                                  whole.extra["uncovered_mass"])
    assert joined.usage == whole.usage
    assert concat([], n_labels=2).log_probs.shape == (0, 2)


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
    details = clf.score_details(X_BIN + X_BIN[:1])
    expected = [len(t) / 100 for t in X_BIN + X_BIN[:1]]
    np.testing.assert_allclose(details.extra["uncovered_mass"], expected)
    np.testing.assert_array_equal(details.failed, np.zeros(len(expected), bool))
    assert details.reasons == [None] * len(expected)
    np.testing.assert_array_equal(softmax(details.log_proba, axis=1),
                                  clf.predict_proba(X_BIN + X_BIN[:1]))
    assert clf.score_details(X_BIN[:2]).extra["uncovered_mass"].shape == (2,)
    plain = LLMClassifier(backend=KeywordBackend(), n_shots=0).fit(X_BIN, Y_BIN)
    assert plain.score_details(X_BIN).extra == {}


def test_failed_rows_travel_with_the_details_and_never_raise():
    clf = LLMClassifier(backend=KeywordBackend(fail_on="win"), n_shots=0,
                        calibration=None).fit(X_BIN, Y_BIN)
    texts = ["win cash now", "see you at 6", "win again"]
    details = clf.score_details(texts)
    np.testing.assert_array_equal(details.failed, [True, False, True])
    assert details.reasons[1] is None
    assert details.reasons[0] is not None and details.reasons[2] is not None
    assert np.isnan(details.log_proba[[0, 2]]).all()
    with pytest.raises(RuntimeError, match="2 of 3 rows could not be scored"):
        clf.predict_proba(texts)  # on_error="raise" (the default)


def _sent(backend):
    """Prompts the backend received (and forget them)."""
    return sum(map(len, backend.__dict__.pop("calls_", [])))


@pytest.mark.parametrize("chunk_size", [8, 1024])
def test_stop_on_failure_sends_nothing_after_a_failed_batch(tmp_path, chunk_size):
    rows = [(f"text {i}" + (" FAIL" if i == 5 else ""),) for i in range(40)]
    backend = KeywordBackend(fail_on="FAIL")
    cache = ResponseCache(tmp_path / "c.sqlite")

    def score(**params):
        return score_rows(backend, rows, lambda rs: prompts_of([r[0] for r in rs]),
                          LABELS, strategy=LOGPROBS, cache=cache, batch_size=4,
                          **params)

    scores = score(chunk_size=chunk_size, stop_on_failure=True)
    # Batches [0-3] and [4-7] were sent; nothing after the failed row's batch.
    assert _sent(backend) == scores.usage.calls == 8
    np.testing.assert_array_equal(np.flatnonzero(scores.failed),
                                  [5] + list(range(8, 40)))
    assert scores.errors[5] == "injected failure"
    assert set(scores.errors[8:]) == {NOT_SENT}
    assert all(e is None for e in scores.errors[:5] + scores.errors[6:8])
    # The answered rows are cached: the next call sends only what is left.
    again = score()
    assert (again.usage.cache_hits, again.usage.calls) == (7, 33)
    np.testing.assert_array_equal(again.log_probs[:5], scores.log_probs[:5])


def test_on_error_raise_stops_sending_at_the_first_failed_batch():
    X = [f"message {i}" + (" FAIL" if i == 5 else "") for i in range(40)]
    backend = KeywordBackend(fail_on="FAIL")
    clf = LLMClassifier(backend=backend, n_shots=0, calibration=None,
                        batch_size=4).fit(X_BIN, Y_BIN)
    _sent(backend)
    with pytest.raises(RuntimeError, match=(
        r"^1 of 40 rows could not be scored \(first reason: injected failure\); "
        r"32 more were not sent after it\."
    )):
        clf.predict_proba(X)
    assert _sent(backend) == 8
    # The other policies keep every row: all 40 are sent.
    clf.set_params(on_error="warn").fit(X_BIN, Y_BIN)
    _sent(backend)
    with pytest.warns(UserWarning, match="1 of 40 rows could not be scored"):
        clf.predict_proba(X)
    assert _sent(backend) == 40
    # score_details never stops (it reports every row).
    assert not any(r == NOT_SENT for r in clf.score_details(X).reasons)


def test_stop_on_failure_in_parallel_workers():
    from joblib import parallel_config

    texts = [f"text {i}" + (" FAIL" if i == 0 else "") for i in range(64)]
    with parallel_config(backend="threading"):
        scores = score_prompts(KeywordBackend(fail_on="FAIL"), prompts_of(texts),
                               LABELS, strategy=LOGPROBS, batch_size=4, n_jobs=2,
                               stop_on_failure=True)
    assert scores.errors[0] == "injected failure"
    assert scores.usage.calls < 64
    assert all(e in (None, NOT_SENT) for e in scores.errors[1:])
    np.testing.assert_array_equal(scores.failed[1:],
                                  [e == NOT_SENT for e in scores.errors[1:]])


def test_score_rows_renders_distinct_rows_in_bounded_chunks():
    rendered = []

    def render(rows):
        rendered.append(len(rows))
        return prompts_of([r[0] for r in rows])

    rows = [(f"text {i % 7} " + ("spam" if i % 2 else "ham"),) for i in range(40)]
    scores = score_rows(MassBackend(), rows, render, LABELS, strategy=LOGPROBS,
                        chunk_size=3)
    whole = score_prompts(MassBackend(), render(rows), LABELS, strategy=LOGPROBS)
    np.testing.assert_array_equal(scores.log_probs, whole.log_probs)
    n_distinct = len(set(rows))
    assert rendered[:-1] == [3] * (n_distinct // 3) + [n_distinct % 3]
    assert scores.usage.calls == whole.usage.calls == n_distinct


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
    # fit decides the policy and the correction: they take effect at fit
    clf.set_params(on_error="raise", calibration="batch")
    clf.fit(X, ["spam", "ham", "spam"])
    with pytest.warns(UserWarning, match="prior_correction='batch'") as record:
        getattr(clf, method)(X[:2])
    assert [w.filename for w in record] == [__file__]


def test_parameters_changed_after_fit_take_effect_at_the_next_fit():
    clf = LLMClassifier(backend=KeywordBackend(fail_on="FAIL"), n_shots=0,
                        on_error="warn", calibration=None).fit(X_BIN, Y_BIN)
    texts = X_BIN[:3] + ["FAIL spam"]
    with pytest.warns(UserWarning, match="uniform probabilities"):
        before = clf.predict_proba(texts)
    clf.set_params(on_error="raise", calibration="batch")
    with pytest.warns(UserWarning, match="uniform probabilities"):
        np.testing.assert_array_equal(clf.predict_proba(texts), before)
    with pytest.raises(RuntimeError, match="1 of 4 rows could not be scored"):
        clf.fit(X_BIN, Y_BIN).predict_proba(texts)
