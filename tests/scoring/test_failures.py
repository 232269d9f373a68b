"""The failed-rows protocol: a method, a registration, or the non-finite rows."""

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_llmconf import LLMClassifier, TemperatureScaler
from sklearn_llmconf.scoring import predict_with_failures, register_failure_delegate
from sklearn_llmconf.testing import KeywordBackend

X = ["spam offer", "FAIL ham lunch", "ham lunch", "FAIL spam", "spam prize", "ham"]
Y = ["spam", "ham", "ham", "spam", "spam", "ham"]
FAILED = [False, True, False, True, False, False]


@pytest.fixture(scope="module")
def clf():
    return LLMClassifier(backend=KeywordBackend(fail_on="FAIL"), n_shots=0,
                         calibration=None, on_error="warn").fit(X, Y)


def _call(estimator, method="predict_proba"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not be scored"
        return predict_with_failures(estimator, X, method)


def test_the_classifier_reports_uniform_placeholders_as_failed(clf):
    proba, failed, reasons = _call(clf)
    assert failed.tolist() == FAILED
    np.testing.assert_array_equal(proba[failed], 0.5)
    assert [r is None for r in reasons] == [not f for f in FAILED]


@pytest.mark.parametrize("wrap", [
    FrozenEstimator,
    lambda c: make_pipeline(FunctionTransformer(), c),
    lambda c: VotingClassifier([("a", FrozenEstimator(c)), ("b", FrozenEstimator(c))],
                               voting="soft", weights=[1, 3]).fit(X, Y),
], ids=["frozen", "pipeline", "soft-vote"])
def test_scikit_learns_containers_are_registered(clf, wrap):
    wrapped = wrap(clf)
    proba, failed, reasons = _call(wrapped)
    assert failed.tolist() == FAILED
    assert reasons == _call(clf)[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        np.testing.assert_allclose(proba, wrapped.predict_proba(X), rtol=0, atol=0)


class _Shift(ClassifierMixin, BaseEstimator):
    """A third-party-style wrapper: shifts the inner log-odds by ``b``."""

    def __init__(self, inner, b=1.0):
        self.inner = inner
        self.b = b

    def fit(self, X, y):
        self.classes_ = self.inner.classes_
        return self

    def decision_function(self, X):
        return self.inner.decision_function(X) + self.b


class _ShiftWithMethod(_Shift):
    def _predict_with_failures(self, X, method):
        values, failed, reasons = predict_with_failures(self.inner, X, method)
        return values + self.b, failed, reasons


def test_a_custom_wrapper_delegates_by_a_method(clf):
    wrapper = _ShiftWithMethod(FrozenEstimator(clf)).fit(X, Y)
    scores, failed, _ = _call(wrapper, "decision_function")
    assert failed.tolist() == FAILED
    np.testing.assert_allclose(scores[failed], 1.0)  # the placeholder, shifted
    # and a TemperatureScaler over it leaves those rows out of its fit
    with pytest.warns(UserWarning, match="2 of 6 calibration rows failed"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "2 of 6 rows could not be scored")
            TemperatureScaler(FrozenEstimator(wrapper)).fit(X, Y)


def test_a_custom_wrapper_delegates_by_a_registration(clf):
    class Registered(_Shift):
        pass

    class Child(Registered):
        pass

    plain = _Shift(FrozenEstimator(clf)).fit(X, Y)
    assert not _call(plain, "decision_function")[1].any()  # silently dropped

    @register_failure_delegate(Registered)
    def _through(wrapper, X, method):
        values, failed, reasons = predict_with_failures(wrapper.inner, X, method)
        return values + wrapper.b, failed, reasons

    for wrapper in (Registered(FrozenEstimator(clf)), Child(FrozenEstimator(clf))):
        scores, failed, _ = _call(wrapper.fit(X, Y), "decision_function")
        assert failed.tolist() == FAILED
        np.testing.assert_allclose(scores, _call(plain, "decision_function")[0])


def test_a_registration_may_fall_through(clf):
    class Opaque(_Shift):
        pass

    register_failure_delegate(Opaque, lambda est, X, method: NotImplemented)
    nan_clf = LLMClassifier(backend=KeywordBackend(fail_on="FAIL"), n_shots=0,
                            calibration=None, on_error="nan").fit(X, Y)
    scores, failed, reasons = _call(Opaque(FrozenEstimator(nan_clf)).fit(X, Y),
                                    "decision_function")
    assert failed.tolist() == FAILED  # NaN rows, found as non-finite
    assert [r for r, f in zip(reasons, failed) if f] == ["non-finite scores"] * 2

