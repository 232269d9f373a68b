"""Reproductions of issue #22 (bad inputs): a clear error before any model call."""

import warnings

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator

from sklearn_llmconf import LLMClassifier, TemperatureScaler
from sklearn_llmconf.backends._base import BaseBackend, ScoreResult
from sklearn_llmconf.routing import ConfidenceRouter
from sklearn_llmconf.testing import KeywordBackend

X = ["win cash now", "see you at 6"] * 10
Y = ["spam", "ham"] * 10


def _calls(clf):
    return sum(len(c) for c in getattr(clf.backend, "calls_", []))


def test_router_refuses_x_y_of_different_lengths_before_scoring():
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=2).fit(X, Y)
    before = _calls(clf)
    with pytest.raises(ValueError, match=r"X has 20 rows but y has 19.*before any "
                                         r"row is scored"):
        ConfidenceRouter(FrozenEstimator(clf)).fit(X, Y[:-1])
    assert _calls(clf) == before


def test_nan_in_a_pandas_y_is_a_missing_label():
    pd = pytest.importorskip("pandas")
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0)
    with pytest.raises(ValueError, match=r"y contains nan at row 2 \(1 row\(s\) in "
                                         r"all\), a missing label"):
        clf.fit(pd.Series(["a", "b", "c"]), pd.Series(["spam", "ham", np.nan]))
    with pytest.raises(ValueError, match=r"y contains <NA> at row 0"):
        clf.fit(["a", "b"], pd.Series([pd.NA, "ham"], dtype=object))


def test_temperature_scaler_refuses_an_empty_calibration_set():
    zs = LLMClassifier(backend=KeywordBackend(), n_shots=0, calibration=None).fit(X, Y)
    for bias in (False, True):
        with pytest.raises(ValueError, match="empty set"):
            TemperatureScaler(FrozenEstimator(zs), bias=bias).fit([], [])


def test_temperature_scaler_warns_on_a_single_class():
    zs = LLMClassifier(backend=KeywordBackend(), n_shots=0, calibration=None).fit(X, Y)
    with pytest.warns(UserWarning, match=r"one class only \('spam', 10 rows\)"):
        TemperatureScaler(FrozenEstimator(zs)).fit(X[::2], Y[::2])


def test_labels_equal_after_stripping_are_refused():
    with pytest.raises(ValueError, match=r"\[' ham', 'ham'\] differ only in "
                                         r"surrounding spaces"):
        LLMClassifier(backend=KeywordBackend()).fit(X, ["ham", " ham"] * 10)


def test_x_none_is_named():
    with pytest.raises(ValueError, match="LLMClassifier needs X.*got None"):
        LLMClassifier(backend=KeywordBackend(), n_shots=0).fit(None, Y)


class _PositiveBackend(BaseBackend):
    """A server that answers log-probabilities above 0 for prompts with '!'."""

    def _score_labels(self, prompts, labels):
        out = np.log(np.full((len(prompts), len(labels)), 1.0 / len(labels)))
        for i, p in enumerate(prompts):
            if "!" in p.text:
                out[i, 0] = 0.7
        return ScoreResult(out)


def test_log_probs_above_zero_from_a_server_fail_the_row():
    result = _PositiveBackend().score_labels(["fine", "odd!"], [" a", " b"])
    assert np.isfinite(result.log_probs[0]).all()
    assert np.isnan(result.log_probs[1]).all()
    assert result.errors[0] is None
    assert "log-probability of 0.7 > 0" in result.errors[1]
    clf = LLMClassifier(backend=_PositiveBackend(), n_shots=0, calibration=None,
                        on_error="nan").fit(["a", "b"], ["x", "y"])
    proba = clf.predict_proba(["fine", "odd!"])
    assert np.isfinite(proba[0]).all() and np.isnan(proba[1]).all()


@pytest.mark.parametrize("thresholds", [[0.5, np.nan], [0.5, 1.2], [-0.1], []])
def test_router_thresholds_must_be_confidences(thresholds):
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0, calibration=None).fit(X, Y)
    with pytest.raises(ValueError, match=r"thresholds must be confidence levels in "
                                         r"\[0, 1\]"):
        ConfidenceRouter(FrozenEstimator(clf), thresholds=thresholds).fit(X, Y)
    assert _calls(clf) == 0


def test_tier_named_like_a_class_is_refused():
    y = ["escalate", "ham"] * 10
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0, calibration=None).fit(X, y)
    with pytest.raises(ValueError, match=r"tier names \['escalate'\] are also class "
                                         r"labels"):
        ConfidenceRouter(FrozenEstimator(clf)).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        router = ConfidenceRouter(FrozenEstimator(clf), fallback_tier="to_human",
                                  tiers=[("auto", 0.9)]).fit(X, y)
    assert list(router.tier_names_) == ["auto", "to_human"]
