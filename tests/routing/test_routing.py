"""ConfidenceRouter: certified thresholds, routing, failed rows, report."""

import warnings

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator

from sklearn_llmconf import LLMClassifier, TemperatureScaler
from sklearn_llmconf.routing import (
    ConfidenceRouter,
    RefittedWarning,
    required_calibration_size,
    routing_report,
)
from sklearn_llmconf.routing._stats import ltt_threshold, plugin_threshold
from sklearn_llmconf.testing import KeywordBackend

# --- the guarantee, on a perfectly calibrated synthetic model ----------------
#
# Top-label confidence c = 1 - u**3 / 2 with u ~ U(0, 1), and the prediction is
# correct with probability exactly c. Among predictions with c >= lam the
# precision is then E[c | c >= lam] = 1 - (1 - lam) / 4 (lam >= 0.5): a
# threshold meets target t on new data iff lam >= 1 - 4 (1 - t).


def _true_precision(lam):
    return 1.0 - (1.0 - np.maximum(lam, 0.5)) / 4.0


def _violation_rates(n_cal, target, delta, n_reps, seed):
    rng = np.random.default_rng(seed)
    conf = 1.0 - rng.uniform(size=(n_reps, n_cal)) ** 3 / 2.0
    correct = rng.uniform(size=(n_reps, n_cal)) < conf
    ltt = np.array([ltt_threshold(c, k, target, delta) for c, k in zip(conf, correct)])
    plug = np.array([plugin_threshold(c, k, target) for c, k in zip(conf, correct)])
    # A threshold that accepts nothing cannot miss the target.
    miss_ltt = np.isfinite(ltt) & (_true_precision(ltt) < target)
    miss_plug = np.isfinite(plug) & (_true_precision(plug) < target)
    return miss_ltt.mean(), miss_plug.mean(), np.isfinite(ltt).mean()


@pytest.mark.parametrize("n_cal, target", [(300, 0.95), (3000, 0.99)])
def test_ltt_misses_target_at_most_delta_plugin_far_more(n_cal, target):
    delta, n_reps = 0.05, 2000
    ltt, plug, certified = _violation_rates(n_cal, target, delta, n_reps, seed=0)
    noise = 3 * np.sqrt(delta * (1 - delta) / n_reps)
    print(f"n_cal={n_cal} target={target}: LTT misses {ltt:.4f}, plug-in misses "
          f"{plug:.4f}, LTT certified in {certified:.3f} of {n_reps} draws")
    assert ltt <= delta + noise
    # measured 0.41 (n=300, 0.95) and 0.20 (n=3000, 0.99)
    assert plug >= 3 * delta
    # measured 0.88 and 0.93: the guarantee is not bought by accepting nothing
    assert certified >= 0.8


def test_required_calibration_size_matches_binomial_test():
    # (0.99)^299 <= 0.05 < (0.99)^298: zero errors in 299 accepted rows.
    assert required_calibration_size(0.99, delta=0.05) == 299
    assert 0.99**299 <= 0.05 < 0.99**298
    n = required_calibration_size(0.99, delta=0.05, error_rate=0.005)
    assert binomtest(n // 200, n, 0.01, alternative="less").pvalue <= 0.05
    assert required_calibration_size(0.99, error_rate=0.01) is None
    with pytest.raises(ValueError, match="must lie in"):
        required_calibration_size(1.0)


# --- the estimator on a plain classifier ----------------------------------


class _ProbaColumns(ClassifierMixin, BaseEstimator):
    """Classifier whose input columns are its predicted probabilities."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.asarray(X, dtype=float)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _calibrated_sample(n, rng):
    """Probabilities of 3 classes and labels drawn from them (calibrated)."""
    top = 1.0 - rng.uniform(size=n) ** 3 / 2.0
    second = (1.0 - top) * rng.uniform(size=n)
    proba = np.column_stack([top, second, 1.0 - top - second])
    proba = rng.permuted(proba, axis=1)
    y = (rng.uniform(size=n)[:, None] > np.cumsum(proba, axis=1)).sum(axis=1)
    return proba, np.minimum(y, 2)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X_cal, y_cal = _calibrated_sample(4000, rng)
    X_test, y_test = _calibrated_sample(2000, rng)
    clf = FrozenEstimator(_ProbaColumns().fit(X_cal, np.arange(3)))
    return clf, X_cal, y_cal, X_test, y_test


def test_fit_sets_attributes_and_certified_bounds(data):
    clf, X_cal, y_cal, X_test, y_test = data
    router = ConfidenceRouter(clf, tiers=[("accept", 0.99), ("review", 0.9)])
    router.fit(X_cal, y_cal)
    assert router.estimator_ is clf
    np.testing.assert_array_equal(router.classes_, [0, 1, 2])
    assert router.tier_names_.tolist() == ["accept", "review", "escalate"]
    assert router.thresholds_.shape == (2,)
    assert router.certified_.all()
    assert router.thresholds_[0] >= router.thresholds_[1]
    assert router.delta_per_test_ == pytest.approx(0.025)
    assert router.n_calibration_ == 4000 and router.n_failed_calibration_ == 0
    # The certified bound is the Clopper-Pearson bound, at least the target.
    k = router.n_accepted_ - router.n_errors_
    for t in range(2):
        ci = binomtest(int(k[t]), int(router.n_accepted_[t]),
                       alternative="greater").proportion_ci(1 - 0.025)
        assert router.precision_lower_bound_[t] == pytest.approx(ci.low)
    assert np.all(router.precision_lower_bound_ >= router.targets_)
    conf = clf.predict_proba(X_cal).max(axis=1)
    assert router.n_accepted_[0] == np.sum(conf >= router.thresholds_[0])


def test_route_predict_and_report(data):
    clf, X_cal, y_cal, X_test, y_test = data
    router = ConfidenceRouter(clf).fit(X_cal, y_cal)
    tiers = router.route(X_test)
    conf = clf.predict_proba(X_test).max(axis=1)
    expected = np.where(conf >= router.thresholds_[0], "accept",
                        np.where(conf >= router.thresholds_[1], "review", "escalate"))
    np.testing.assert_array_equal(tiers, expected)
    y_pred = router.predict(X_test)
    assert y_pred.dtype == object  # int classes mixed with tier names
    top = tiers == "accept"
    np.testing.assert_array_equal(y_pred[top].astype(int), clf.predict(X_test)[top])
    assert set(y_pred[~top]) <= {"review", "escalate"}
    report = router.routing_report(X_test, y_test)
    assert list(report) == ["accept", "review", "escalate"]
    assert sum(r["n"] for r in report.values()) == len(y_test)
    assert report["escalate"]["cumulative_share"] == pytest.approx(1.0)
    acc = clf.predict(X_test)[top] == y_test[top]
    assert report["accept"]["precision"] == pytest.approx(acc.mean())
    assert report["accept"]["share"] == pytest.approx(top.mean())


def test_tiers_from_proba_equals_route_and_sends_failed_rows_last(data):
    clf, X_cal, y_cal, X_test, _ = data
    router = ConfidenceRouter(clf).fit(X_cal, y_cal)
    proba = clf.predict_proba(X_test)
    tier, pred, scored = router.tiers_from_proba(proba)
    np.testing.assert_array_equal(router.tier_names_[tier], router.route(X_test))
    np.testing.assert_array_equal(pred, np.argmax(proba, axis=1))
    assert scored.all()
    proba[:3] = np.nan  # not finite: failed unless told otherwise
    tier, _, scored = router.tiers_from_proba(proba)
    assert tier[:3].tolist() == [2, 2, 2] and not scored[:3].any()
    failed = np.zeros(len(proba), dtype=bool)
    failed[5] = True
    assert router.tiers_from_proba(clf.predict_proba(X_test), failed)[0][5] == 2
    with pytest.raises(NotFittedError):
        ConfidenceRouter(clf).tiers_from_proba(proba)


def test_string_classes_predict_a_string_array(data):
    clf, X_cal, y_cal, X_test, _ = data
    names = np.array(["ant", "bee", "cat"])
    clf_s = FrozenEstimator(_ProbaColumns().fit(X_cal, names))
    router = ConfidenceRouter(clf_s, tiers=[("auto", 0.95)]).fit(X_cal, names[y_cal])
    y_pred = router.predict(X_cal[:200])
    assert y_pred.dtype.kind == "U"
    assert set(y_pred) <= {"ant", "bee", "cat", "escalate"}
    assert "auto" not in set(y_pred)


def test_per_class_thresholds(data):
    clf, X_cal, y_cal, X_test, _ = data
    router = ConfidenceRouter(clf, tiers=[("accept", 0.95), ("review", 0.9)],
                              per_class=True).fit(X_cal, y_cal)
    assert router.thresholds_.shape == (2, 3)
    assert router.delta_per_test_ == pytest.approx(0.05 / 6)
    assert router.certified_.all()
    pred = clf.predict(X_test)
    conf = clf.predict_proba(X_test).max(axis=1)
    expected_accept = conf >= router.thresholds_[0, pred]
    np.testing.assert_array_equal(router.route(X_test) == "accept", expected_accept)


def test_unfitted_estimator_is_fitted_on_a_separate_part(data):
    _, X_cal, y_cal, _, _ = data
    router = ConfidenceRouter(_ProbaColumns(), tiers=[("a", 0.9)],
                              calibration_size=0.25, random_state=0)
    router.fit(X_cal, y_cal)
    assert router.n_calibration_ == 1000
    assert router.estimator_ is not router.estimator


def _fit_quietly(router, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RefittedWarning)
        warnings.simplefilter("ignore", UserWarning)  # uncertified tiers
        return router.fit(X, y)


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "unfitted"])
def test_clone_then_fit_is_fit(data, frozen):
    # What GridSearchCV and cross_validate do with a router: clone, then fit.
    clf, X_cal, y_cal, _, _ = data
    estimator = clf if frozen else _ProbaColumns()
    router = ConfidenceRouter(estimator, tiers=[("accept", 0.95), ("review", 0.9)],
                              random_state=0)
    cloned = _fit_quietly(clone(router), X_cal, y_cal)
    _fit_quietly(router, X_cal, y_cal)
    assert (cloned.estimator_ is router.estimator_) is frozen
    assert router.n_calibration_ == (4000 if frozen else 2000)
    for name in ("thresholds_", "n_accepted_", "n_errors_", "precision_lower_bound_",
                 "calibration_confidence_"):
        np.testing.assert_array_equal(getattr(cloned, name), getattr(router, name))
    assert cloned.certificate_ == router.certificate_


def test_fitted_unfrozen_estimator_is_refitted_with_a_warning(data):
    clf, X_cal, y_cal, _, _ = data
    fitted = clf.estimator  # fitted, not frozen
    router = ConfidenceRouter(fitted, tiers=[("a", 0.9)], random_state=0)
    with pytest.warns(RefittedWarning) as caught:
        router.fit(X_cal, y_cal)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        "ConfidenceRouter: the estimator (_ProbaColumns) is already fitted but not "
        "frozen, so it is cloned and refitted on a part of the rows given to fit, "
        "as a clone of the ConfidenceRouter would be (GridSearchCV, cross_validate)."
        " Pass FrozenEstimator(estimator) (sklearn.frozen) to certify it as it is "
        "on all the rows."
    )
    assert router.estimator_ is not fitted and router.n_calibration_ == 2000
    cloned = _fit_quietly(clone(router), X_cal, y_cal)
    np.testing.assert_array_equal(cloned.thresholds_, router.thresholds_)
    assert cloned.certificate_ == router.certificate_


def test_frozen_unfitted_estimator_raises(data):
    _, X_cal, y_cal, _, _ = data
    with pytest.raises(NotFittedError, match="_ProbaColumns instance is not fitted"):
        ConfidenceRouter(FrozenEstimator(_ProbaColumns())).fit(X_cal, y_cal)


def test_works_around_calibrators(data):
    clf, X_cal, y_cal, X_test, _ = data
    for calibrated in (
        TemperatureScaler(clf).fit(X_cal[:500], y_cal[:500]),
        CalibratedClassifierCV(clf).fit(X_cal[:500], y_cal[:500]),
    ):
        router = ConfidenceRouter(FrozenEstimator(calibrated), tiers=[("a", 0.95)])
        router.fit(X_cal[500:], y_cal[500:])
        assert router.certified_.all()
        assert set(router.route(X_test)) <= {"a", "escalate"}


def test_plugin_method_has_no_guarantee_but_runs(data):
    clf, X_cal, y_cal, _, _ = data
    ltt = ConfidenceRouter(clf).fit(X_cal, y_cal)
    plug = ConfidenceRouter(clf, method="plugin").fit(X_cal, y_cal)
    assert np.all(plug.thresholds_ <= ltt.thresholds_)


def test_uncertifiable_tier_warns_and_accepts_nothing(data):
    clf, X_cal, y_cal, X_test, _ = data
    with pytest.warns(UserWarning, match=r"Tier 'accept' \(precision >= 0.999\): no "
                      r"threshold could be certified with 100 calibration rows.*"
                      r"at least 3688 accepted rows"):
        router = ConfidenceRouter(clf, tiers=[("accept", 0.999)]).fit(
            X_cal[:100], y_cal[:100])
    assert router.thresholds_[0] == np.inf and not router.certified_[0]
    assert router.n_labels_needed_[0] > 3688
    assert set(router.route(X_test)) == {"escalate"}


@pytest.mark.parametrize("tiers, match", [
    ([("a", 0.9), ("b", 0.95)], "strictly decreasing"),
    ([("a", 1.0)], r"lie in \(0, 1\)"),
    ([("a", 0.9), ("a", 0.8)], "must be distinct"),
    ([("escalate", 0.9)], "must be distinct"),
    ([], "at least one"),
    (["abc"], "pairs"),
])
def test_bad_tiers_raise(data, tiers, match):
    clf, X_cal, y_cal, _, _ = data
    with pytest.raises(ValueError, match=match):
        ConfidenceRouter(clf, tiers=tiers).fit(X_cal, y_cal)


# --- failed rows go to the lowest tier -------------------------------------


class _ReportsFailures(_ProbaColumns):
    """Reports the rows with X[:, 0] > 0.9 as failed (yet confident)."""

    def _predict_with_failures(self, X, method):
        failed = np.asarray(X)[:, 0] > 0.9
        return getattr(self, method)(X), failed, ["reported"] * len(failed)


def test_reported_failures_are_never_accepted(data):
    _, X_cal, y_cal, X_test, _ = data
    clf = _ReportsFailures().fit(X_cal, y_cal)
    router = ConfidenceRouter(FrozenEstimator(clf), tiers=[("a", 0.9)])
    router.fit(X_cal, y_cal)
    assert router.n_failed_calibration_ == np.sum(X_cal[:, 0] > 0.9) > 0
    failed = X_test[:, 0] > 0.9
    conf = clf.predict_proba(X_test).max(axis=1)
    assert np.any(conf[failed] >= router.thresholds_[0])  # would pass the bar
    assert np.all(router.route(X_test)[failed] == "escalate")


def _keyword_texts(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(["ham", "spam"], size=n)
    X = [f"{lab} {lab} {lab} message {i}" for i, lab in enumerate(y)]
    return X, y


@pytest.mark.parametrize("on_error", ["warn", "nan"])
def test_failed_llm_rows_go_to_the_lowest_tier(on_error):
    X, y = _keyword_texts(300)
    X_fail = [f"FAIL {t}" for t in X[:20]]
    clf = LLMClassifier(backend=KeywordBackend(fail_on="FAIL"), n_shots=0,
                        on_error=on_error).fit(X, y)
    # Threshold grid {0.5}: a uniform "warn" row (confidence 0.5) would pass it.
    router = ConfidenceRouter(FrozenEstimator(clf), tiers=[("accept", 0.9)],
                              thresholds=[0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        router.fit(X + X_fail, np.r_[y, y[:20]])
        tiers = router.route(X_fail + X[:5])
        y_pred = router.predict(X_fail + X[:5])
    assert router.thresholds_[0] == 0.5
    assert router.n_failed_calibration_ == 20 and router.n_calibration_ == 300
    assert tiers.tolist() == ["escalate"] * 20 + ["accept"] * 5
    assert y_pred.tolist() == ["escalate"] * 20 + list(y[:5])


def test_failed_rows_survive_a_temperature_scaler():
    X, y = _keyword_texts(400, seed=1)
    clf = LLMClassifier(backend=KeywordBackend(fail_on="FAIL"), n_shots=0,
                        on_error="warn").fit(X, y)
    scaler = TemperatureScaler(FrozenEstimator(clf), bias=True).fit(X[:200], y[:200])
    router = ConfidenceRouter(FrozenEstimator(scaler), tiers=[("accept", 0.9)],
                              thresholds=[0.5])
    router.fit(X[200:], y[200:])
    X_fail = [f"FAIL {t}" for t in X[:10]]
    with pytest.warns(UserWarning):
        tiers = router.route(X_fail)
    assert tiers.tolist() == ["escalate"] * 10


# --- the report function ---------------------------------------------------


def test_routing_report_values_and_bounds():
    y_true = np.array([0, 1, 1, 0, 1, 0])
    y_pred = np.array([0, 1, 0, 0, None, 1], dtype=object)
    tiers = ["a", "a", "b", "a", "c", "b"]
    r = routing_report(y_true, y_pred, tiers, tier_names=["a", "b", "c"],
                       confidence_level=0.9)
    assert r["a"]["n"] == 3 and r["a"]["precision"] == 1.0
    assert r["b"]["precision"] == 0.0 and r["b"]["precision_lower"] == 0.0
    assert r["c"]["precision"] == 0.0  # a failed row counts as wrong
    assert r["b"]["cumulative_share"] == pytest.approx(5 / 6)
    assert r["b"]["cumulative_precision"] == pytest.approx(3 / 5)
    ci = binomtest(3, 5, alternative="greater").proportion_ci(0.9)
    assert r["b"]["cumulative_precision_lower"] == pytest.approx(ci.low)
    with pytest.raises(ValueError, match=r"tiers \['c'\] are not in tier_names"):
        routing_report(y_true, y_pred, tiers, tier_names=["a", "b"])
