"""Tests for TemperatureScaler."""

import numpy as np
import pytest
from scipy.special import softmax
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from sklearn_llmconf import TemperatureScaler


class LogitClassifier(ClassifierMixin, BaseEstimator):
    """Test double: the columns of X *are* the logits.

    One column: binary log-odds of ``classes_[1]``; k columns: per-class
    log-scores. ``fit`` only records the classes (``labels`` if given), like a
    zero-shot LLM classifier. ``proba_only=True`` hides ``decision_function``
    so the ``log(predict_proba)`` path is exercised.
    """

    def __init__(self, labels=None, proba_only=False):
        self.labels = labels
        self.proba_only = proba_only

    def fit(self, X, y):
        self.classes_ = np.unique(y if self.labels is None else self.labels)
        return self

    def _logits(self, X):
        check_is_fitted(self)
        X = np.asarray(X, dtype=float)
        return X[:, 0] if X.shape[1] == 1 else X

    @available_if(lambda self: not self.proba_only)
    def decision_function(self, X):
        return self._logits(X)

    def predict_proba(self, X):
        z = self._logits(X)
        if z.ndim == 1:
            z = np.column_stack([np.zeros_like(z), z])
        return softmax(z, axis=1)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _multiclass_data(rng, n, temperature, bias, k=4, scale=3.0):
    """Logits L and labels drawn from softmax(L / temperature + bias)."""
    logits = rng.normal(0.0, scale, size=(n, k))
    proba = softmax(logits / temperature + bias, axis=1)
    y = (proba.cumsum(axis=1) > rng.uniform(size=(n, 1))).argmax(axis=1)
    return logits, y


def _binary_data(rng, n, temperature, bias, scale=3.0):
    """1-D log-odds d and labels drawn from sigmoid(d / temperature + bias)."""
    d = rng.normal(0.0, scale, size=n)
    p1 = 1.0 / (1.0 + np.exp(-(d / temperature + bias)))
    return d[:, None], (rng.uniform(size=n) < p1).astype(int)


def _frozen(X, y, **kwargs):
    return FrozenEstimator(LogitClassifier(**kwargs).fit(X, y))


# Over 10 seeds at n=20000, |T_hat - T| had standard deviation ~0.035 (largest
# 0.08) and bias errors <= 0.05; the tolerances below are about 4 sd.
T_TOL = 0.15
B_TOL = 0.1


@pytest.mark.parametrize("proba_only", [False, True])
def test_recovers_multiclass_temperature_and_bias(proba_only):
    rng = np.random.default_rng(0)
    true_t, true_b = 2.5, np.array([0.5, -0.2, 0.0, -0.3])
    X, y = _multiclass_data(rng, 20000, true_t, true_b)
    scaler = TemperatureScaler(_frozen(X, y, proba_only=proba_only), bias=True)
    scaler.fit(X, y)
    assert abs(scaler.temperature_ - true_t) < T_TOL
    # the bias is identified up to a constant: compare zero-sum versions
    assert scaler.bias_.shape == (4,)
    assert abs(scaler.bias_.sum()) < 1e-10
    np.testing.assert_allclose(scaler.bias_, true_b - true_b.mean(), atol=B_TOL)


def test_recovers_binary_temperature_and_bias():
    rng = np.random.default_rng(1)
    X, y = _binary_data(rng, 20000, temperature=2.5, bias=0.7)
    scaler = TemperatureScaler(_frozen(X, y), bias=True).fit(X, y)
    assert abs(scaler.temperature_ - 2.5) < T_TOL
    assert isinstance(scaler.bias_, float)
    assert abs(scaler.bias_ - 0.7) < B_TOL
    # binary decision_function is the 1-D calibrated log-odds of classes_[1]
    scores = scaler.decision_function(X[:5])
    assert scores.shape == (5,)
    np.testing.assert_allclose(
        scores, X[:5, 0] / scaler.temperature_ + scaler.bias_, rtol=1e-12
    )


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_temperature_agrees_with_sklearn(task):
    # On identical logits, TemperatureScaler(bias=False) and sklearn's
    # method="temperature" fit the same one-parameter family by the same loss.
    # Observed max |p_ours - p_sklearn|: 1.3e-5 (binary), 7e-7 (multiclass);
    # the difference is optimiser tolerance, so assert 1e-4.
    rng = np.random.default_rng(2)
    if task == "binary":
        X, y = _binary_data(rng, 5000, temperature=2.0, bias=0.0)
    else:
        X, y = _multiclass_data(rng, 5000, 2.0, np.zeros(4))
    ours = TemperatureScaler(_frozen(X, y)).fit(X, y)
    theirs = CalibratedClassifierCV(_frozen(X, y), method="temperature").fit(X, y)
    X_new = rng.normal(0, 3, size=(200, X.shape[1]))
    np.testing.assert_allclose(
        ours.predict_proba(X_new), theirs.predict_proba(X_new), atol=1e-4
    )
    # and the fitted temperature is far from 1, so the test is not vacuous
    assert abs(ours.temperature_ - 1.0) > 0.5


@pytest.mark.parametrize("ensemble", [True, False])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_cv_machinery_agrees_with_sklearn(ensemble, n_classes):
    # The cross-validation part (a clone per fold, or out-of-fold scores and
    # one refit) is scikit-learn's: same folds, same fits, one temperature
    # each. Measured max |p_ours - p_sklearn| 1e-7 to 3e-6 (optimiser
    # tolerance: on identical logits our L-BFGS stops within a relative 1e-5
    # of the temperature sklearn's bounded Brent search finds), so the
    # bias-free case is not delegated: its probabilities would move by that
    # much, and sklearn's calibrator cannot leave failed rows out of the fit
    # (tests/calibration/test_calibration_failures.py).
    X, y = make_classification(n_samples=1500, n_classes=n_classes,
                               n_informative=4, random_state=0)
    lr = LogisticRegression(C=100)
    ours = TemperatureScaler(lr, cv=3, ensemble=ensemble).fit(X[:1000], y[:1000])
    theirs = CalibratedClassifierCV(lr, method="temperature", cv=3,
                                    ensemble=ensemble).fit(X[:1000], y[:1000])
    assert len(ours.calibrated_classifiers_) == (3 if ensemble else 1)
    diff = np.abs(ours.predict_proba(X[1000:]) - theirs.predict_proba(X[1000:]))
    assert diff.max() < 2e-5
    assert np.abs(ours.predict_proba(X[1000:]) - lr.fit(X[:1000], y[:1000])
                  .predict_proba(X[1000:])).max() > 1e-3  # not vacuous


def test_bias_fixes_prior_shift_that_temperature_cannot():
    # Logits are well scaled (T=1) but every probability is pulled toward
    # class 0 by a constant offset, like an LLM that prefers one label word.
    rng = np.random.default_rng(3)
    true_b = np.array([-1.5, 0.5, 1.0])
    X, y = _multiclass_data(rng, 8000, 1.0, true_b, k=3)
    X_cal, y_cal, X_test, y_test = X[:4000], y[:4000], X[4000:], y[4000:]
    frozen = _frozen(X_cal, y_cal)
    loss = {}
    for bias in (False, True):
        scaler = TemperatureScaler(frozen, bias=bias).fit(X_cal, y_cal)
        loss[bias] = log_loss(y_test, scaler.predict_proba(X_test))
    raw = log_loss(y_test, frozen.predict_proba(X_test))
    assert loss[True] < loss[False] - 0.02
    assert loss[True] < raw
    # bias=False keeps the ranking: accuracy is exactly the base accuracy
    scaler = TemperatureScaler(frozen).fit(X_cal, y_cal)
    np.testing.assert_array_equal(scaler.predict(X_test), frozen.predict(X_test))


def test_frozen_estimator_keeps_classes_missing_from_calibration_labels():
    rng = np.random.default_rng(4)
    X, y = _multiclass_data(rng, 600, 1.5, np.zeros(3), k=3)
    keep = y != 2
    frozen = _frozen(X, y, labels=[0, 1, 2])
    scaler = TemperatureScaler(frozen).fit(X[keep], y[keep])
    np.testing.assert_array_equal(scaler.classes_, [0, 1, 2])
    assert scaler.predict_proba(X).shape == (600, 3)


def test_string_labels_and_consistent_outputs():
    rng = np.random.default_rng(5)
    X, y_int = _multiclass_data(rng, 1000, 2.0, np.zeros(3), k=3)
    names = np.array(["ham", "eggs", "spam"])[y_int]  # unsorted on purpose
    scaler = TemperatureScaler(_frozen(X, names)).fit(X, names)
    np.testing.assert_array_equal(scaler.classes_, ["eggs", "ham", "spam"])
    proba = scaler.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(scaler.decision_function(X)), proba)
    np.testing.assert_array_equal(
        scaler.predict(X), scaler.classes_[proba.argmax(axis=1)]
    )


@pytest.mark.parametrize("ensemble", [True, False])
def test_cross_validated_fit_in_pipeline_and_search(ensemble):
    X, y = make_classification(
        n_samples=240, n_classes=3, n_informative=4, random_state=0
    )
    pipe = make_pipeline(
        StandardScaler(),
        TemperatureScaler(LogisticRegression(), cv=3, ensemble=ensemble),
    )
    scores = cross_val_score(pipe, X, y, cv=2, scoring="neg_log_loss")
    assert scores.shape == (2,) and np.all(np.isfinite(scores))
    search = GridSearchCV(
        pipe,
        {"temperaturescaler__bias": [False, True]},
        cv=2,
        scoring="neg_log_loss",
    ).fit(X, y)
    fitted = search.best_estimator_[-1]
    assert len(fitted.calibrated_classifiers_) == (3 if ensemble else 1)
    temps = [pair.temperature for pair in fitted.calibrated_classifiers_]
    assert fitted.temperature_ == pytest.approx(np.mean(temps))


@pytest.mark.parametrize("shrinkage", [0.0, 10.0])
def test_sample_weight_is_used_for_calibration(shrinkage):
    # Doubling the weight of the rows is the same as duplicating them, also
    # for the bias penalty (counted per weighted row).
    rng = np.random.default_rng(6)
    X, y = _binary_data(rng, 2000, temperature=2.0, bias=0.3)
    w = rng.integers(1, 3, size=len(y))
    scaler = TemperatureScaler(bias=True, bias_shrinkage=shrinkage)
    weighted = clone(scaler).set_params(estimator=_frozen(X, y))
    weighted.fit(X, y, sample_weight=w)
    rows = np.repeat(np.arange(len(y)), w)
    repeated = clone(scaler).set_params(estimator=_frozen(X, y))
    repeated.fit(X[rows], y[rows])
    assert weighted.temperature_ == pytest.approx(repeated.temperature_, rel=1e-5)
    assert weighted.bias_ == pytest.approx(repeated.bias_, abs=1e-5)


def test_sample_weight_unsupported_by_estimator_warns():
    rng = np.random.default_rng(7)
    X, y = _binary_data(rng, 200, temperature=1.0, bias=0.0)
    scaler = TemperatureScaler(LogitClassifier(), cv=2)
    with pytest.warns(UserWarning, match="does not accept sample_weight"):
        scaler.fit(X, y, sample_weight=np.ones(len(y)))


def test_wrong_inputs_raise_clear_errors():
    rng = np.random.default_rng(8)
    X, y = _multiclass_data(rng, 100, 1.0, np.zeros(3), k=3)
    # a label the frozen classifier does not know
    frozen = _frozen(X, y, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="does not know"):
        TemperatureScaler(frozen).fit(X, np.where(y == 2, 7, y))
    # all logits non-finite
    with pytest.raises(ValueError, match="All 100 calibration rows failed"):
        TemperatureScaler(frozen).fit(np.full_like(X, np.nan), y)
    # logits with the wrong number of columns for the classes
    with pytest.raises(ValueError, match="expected"):
        TemperatureScaler(frozen).fit(X[:, :2], y)
    # parameter validation through _parameter_constraints
    with pytest.raises(ValueError, match="bias"):
        TemperatureScaler(frozen, bias="yes").fit(X, y)
    with pytest.raises(ValueError, match="estimator"):
        TemperatureScaler(object()).fit(X, y)
    # too few samples of a class for the requested folds
    with pytest.raises(ValueError, match="3-fold"):
        TemperatureScaler(LogisticRegression(), cv=3).fit(X[:5], [0, 0, 0, 1, 1])
    # unfitted
    with pytest.raises(ValueError, match="not fitted"):
        TemperatureScaler(frozen).predict_proba(X)


def test_metadata_routing_of_sample_weight():
    X, y = make_classification(n_samples=200, random_state=0)
    w = np.random.default_rng(9).uniform(0.5, 2.0, size=len(y))
    with config_context(enable_metadata_routing=True):
        requested = LogisticRegression().set_fit_request(sample_weight=True)
        routed = TemperatureScaler(requested, cv=2, ensemble=False).fit(
            X, y, sample_weight=w
        )
        # the estimator was fitted with the weights: same as fitting it directly
        direct = LogisticRegression().fit(X, y, sample_weight=w)
        np.testing.assert_allclose(
            routed.calibrated_classifiers_[0].estimator.coef_, direct.coef_
        )
        # weights passed but not requested by the estimator: sklearn's error
        with pytest.raises(UnsetMetadataPassedError):
            TemperatureScaler(LogisticRegression(), cv=2).fit(X, y, sample_weight=w)


def test_label_encoded_y_from_cross_val_predict_gets_a_hint():
    """cross_val_predict(method="predict_proba") label-encodes y; a frozen
    classifier with string classes cannot follow, and the error says why."""
    from sklearn.model_selection import cross_val_predict

    rng = np.random.default_rng(9)
    X = rng.normal(size=(60, 2))
    y = np.where(X[:, 0] + 0.3 * rng.normal(size=60) > 0, "spam", "ham")
    frozen = FrozenEstimator(LogisticRegression().fit(X, y))
    with pytest.raises(ValueError, match="looks label-encoded .* cross_val_predict"):
        cross_val_predict(TemperatureScaler(frozen), X, y, method="predict_proba",
                          cv=3)
    # Plain string labels, as cross_validate passes them, work.
    assert TemperatureScaler(frozen).fit(X, y).predict_proba(X).shape == (60, 2)
    # A genuinely unknown label gets no misleading hint.
    with pytest.raises(ValueError, match=r"does not know .*\)\.$"):
        TemperatureScaler(frozen).fit(X, np.where(y == "ham", "eggs", y))


@pytest.mark.parametrize("bias", [False, True])
def test_cross_validated_scaler_fits_its_clones_on_the_label_words(bias):
    # CalibratedClassifierCV(method="temperature", cv=k) label-encodes string
    # targets before fitting its clones (scikit-learn 1.8/1.9): an LLM clone
    # would prompt with "0"/"1". The scaler keeps the words, with or without
    # the bias (the bias-free case delegates to scikit-learn).
    from sklearn_llmconf import LLMClassifier
    from sklearn_llmconf.testing import KeywordBackend

    rng = np.random.default_rng(0)
    y = rng.choice(["ham", "spam"], size=60)
    X = [f"{label} message {i}" for i, label in enumerate(y)]
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0)
    scaler = TemperatureScaler(clf, bias=bias, cv=3).fit(X, y)
    assert len(scaler.calibrated_classifiers_) == 3
    for pair in scaler.calibrated_classifiers_:
        assert list(pair.estimator.classes_) == ["ham", "spam"]
    assert list(scaler.classes_) == ["ham", "spam"]
    sklearn_cv = CalibratedClassifierCV(clf, method="temperature", cv=3).fit(X, y)
    encoded = [list(p.estimator.classes_) for p in sklearn_cv.calibrated_classifiers_]
    # what the user guide's warning says; fails (and the warning goes) when
    # scikit-learn keeps the words
    assert encoded == [[0, 1]] * 3
