"""Tests for sklearn_llmconf.metrics."""

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import GridSearchCV, cross_val_score

from sklearn_llmconf.metrics import (
    SCORERS,
    ECEResult,
    calibration_report,
    expected_calibration_error,
    get_scorer,
    log_loss,
    multiclass_brier_score,
    neg_ece_scorer,
)


def _loop_ece(y_true, proba, n_bins):
    """Straightforward top-label ECE with equal-width, right-closed bins."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        in_bin = (conf > lo) & (conf <= hi) if b > 0 else (conf <= hi)
        if in_bin.any():
            gap = abs(correct[in_bin].mean() - conf[in_bin].mean())
            total += in_bin.mean() * gap
    return total


def _random_proba(rng, n, k):
    return softmax(rng.normal(0, 2, size=(n, k)), axis=1)


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("n_bins", [1, 7, 15])
def test_ece_matches_loop_implementation(k, n_bins):
    rng = np.random.default_rng(k * 100 + n_bins)
    proba = _random_proba(rng, 500, k)
    y = rng.integers(0, k, size=500)
    expected = _loop_ece(y, proba, n_bins)
    assert expected_calibration_error(y, proba, n_bins=n_bins) == pytest.approx(
        expected, abs=1e-12
    )


def test_binary_1d_equals_two_column_input():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=300)
    y = np.where(rng.uniform(size=300) < p, "spam", "ham")  # "spam" is greater
    two_col = np.column_stack([1 - p, p])
    for kind in ("top_label", "classwise"):
        assert expected_calibration_error(y, p, kind=kind) == pytest.approx(
            expected_calibration_error(y, two_col, kind=kind)
        )


def test_classwise_differs_from_top_label_and_matches_per_class_average():
    rng = np.random.default_rng(1)
    k = 3
    proba = _random_proba(rng, 2000, k)
    # labels drawn from a *different* distribution: miscalibrated per class
    y = np.array([rng.choice(k, p=row) for row in softmax(np.log(proba) * 0.4, 1)])
    top = expected_calibration_error(y, proba, kind="top_label")
    classwise = expected_calibration_error(y, proba, kind="classwise")
    # classwise definition, written as a one-vs-rest loop over classes
    direct = []
    for j in range(k):
        pj, yj = proba[:, j], (y == j)
        idx = np.clip(np.ceil(pj * 15).astype(int) - 1, 0, 14)
        gap = 0.0
        for b in np.unique(idx):
            m = idx == b
            gap += m.mean() * abs(yj[m].mean() - pj[m].mean())
        direct.append(gap)
    assert classwise == pytest.approx(np.mean(direct), abs=1e-9)
    assert classwise != pytest.approx(top, abs=1e-3)


def test_quantile_bins_hold_equal_counts():
    rng = np.random.default_rng(2)
    p = rng.beta(5, 1, size=1500)  # skewed: uniform bins would be uneven
    y = (rng.uniform(size=1500) < p).astype(int)
    conf = np.maximum(p, 1 - p)
    n_bins = 10
    edges = np.percentile(conf, np.linspace(0, 100, n_bins + 1))
    idx = np.searchsorted(edges[1:-1], conf)
    counts = np.bincount(idx, minlength=n_bins)
    assert counts.min() >= 149 and counts.max() <= 151
    correct = (p > 0.5) == y.astype(bool)
    expected = sum(
        counts[b] / 1500 * abs(correct[idx == b].mean() - conf[idx == b].mean())
        for b in range(n_bins)
    )
    got = expected_calibration_error(y, p, n_bins=n_bins, strategy="quantile")
    assert got == pytest.approx(expected, abs=1e-12)
    assert got != pytest.approx(expected_calibration_error(y, p, n_bins=n_bins))


def test_sample_weight_equals_repetition():
    rng = np.random.default_rng(3)
    proba = _random_proba(rng, 400, 3)
    y = rng.integers(0, 3, size=400)
    w = rng.integers(1, 4, size=400)
    rows = np.repeat(np.arange(400), w)
    # unit weights change nothing, debiased or not
    for debias in (False, True):
        assert expected_calibration_error(
            y, proba, sample_weight=np.ones(400), debias=debias
        ) == pytest.approx(expected_calibration_error(y, proba, debias=debias))
    assert expected_calibration_error(y, proba, sample_weight=w) == pytest.approx(
        expected_calibration_error(y[rows], proba[rows]), rel=1e-9
    )


def _calibrated_draw(rng, n):
    p = rng.uniform(size=n)
    return (rng.uniform(size=n) < p).astype(int), p


def test_debiased_ece_of_perfectly_calibrated_predictor_is_small():
    # Over 100 draws at n=1000 with 15 bins: plug-in ECE mean ~0.028, debiased
    # ~0.017 (sd ~0.01). Kumar et al.'s L1 correction is first order, so it
    # halves but does not remove the bias at a true ECE of exactly 0.
    rng = np.random.default_rng(4)
    plug, deb = [], []
    for _ in range(100):
        y, p = _calibrated_draw(rng, 1000)
        plug.append(expected_calibration_error(y, p))
        deb.append(expected_calibration_error(y, p, debias=True))
    plug, deb = np.mean(plug), np.mean(deb)
    assert deb < 0.025
    assert deb < 0.75 * plug
    assert plug > 0.02  # the plug-in bias the debiasing is meant to remove


def _true_binned_ece(f, n_bins=15):
    """Population top-label binned ECE of p ~ U(0, 1), y ~ Bernoulli(f(p))."""
    p = np.linspace(0, 1, 1_000_001)[1:-1]
    conf = np.maximum(p, 1 - p)
    acc = np.where(p >= 0.5, f(p), 1 - f(p))
    idx = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], conf)
    w = np.bincount(idx, minlength=n_bins)
    m = w > 0
    a = np.bincount(idx, acc, n_bins)[m] / w[m]
    c = np.bincount(idx, conf, n_bins)[m] / w[m]
    return float(np.sum(w[m] / w.sum() * np.abs(a - c)))


def _overconfident(p):
    return 0.5 + 0.8 * (p - 0.5)


def test_bootstrap_interval_coverage():
    # 100 draws at n=1000, 200 resamples each. Observed coverage of the known
    # population ECE (0.05, overconfident predictor) by the 95 % percentile
    # interval of the debiased ECE: 91/100 (plug-in ECE: 73/100). Assert >= 85.
    # For a perfectly calibrated predictor (true ECE 0, on the boundary) the
    # lower end stays above 0 (residual bias, see previous test), so only the
    # upper end is checked: it must bound the truth (always did) and stay
    # informative (observed mean upper end 0.052 with 50 resamples).
    true_ece = _true_binned_ece(_overconfident)
    assert true_ece == pytest.approx(0.05, abs=0.002)
    rng = np.random.default_rng(5)
    covered, upper = 0, []
    for r in range(100):
        p = rng.uniform(size=1000)
        y = (rng.uniform(size=1000) < _overconfident(p)).astype(int)
        res = expected_calibration_error(
            y, p, debias=True, n_bootstrap=200, random_state=r
        )
        covered += res.ci_low <= true_ece <= res.ci_high
        y0, p0 = _calibrated_draw(rng, 1000)
        res0 = expected_calibration_error(
            y0, p0, debias=True, n_bootstrap=50, random_state=r
        )
        upper.append(res0.ci_high)
    assert covered >= 85
    assert np.min(upper) > 0 and np.mean(upper) < 0.07


def test_bootstrap_result_object():
    rng = np.random.default_rng(6)
    y, p = _calibrated_draw(rng, 300)
    res = expected_calibration_error(y, p, n_bootstrap=100, random_state=0)
    assert isinstance(res, ECEResult)
    assert float(res) == res.ece == expected_calibration_error(y, p)
    assert res.ci_low <= res.ci_high
    assert (res.n_samples, res.n_bins, res.confidence_level) == (300, 15, 0.95)
    # reproducible with a seed, wider at a higher level
    again = expected_calibration_error(y, p, n_bootstrap=100, random_state=0)
    assert again == res
    wide = expected_calibration_error(
        y, p, n_bootstrap=100, random_state=0, confidence_level=0.99
    )
    assert wide.ci_high - wide.ci_low >= res.ci_high - res.ci_low


@pytest.mark.parametrize("k", [2, 4])
def test_brier_matches_sklearn(k):
    rng = np.random.default_rng(7)
    proba = _random_proba(rng, 200, k)
    labels = np.array(["a", "b", "c", "d"][:k])
    y = labels[rng.integers(0, k, size=200)]
    expected = np.mean(np.sum((proba - (y[:, None] == labels)) ** 2, axis=1))
    got = multiclass_brier_score(y, proba)
    assert got == pytest.approx(expected)
    assert got == pytest.approx(
        brier_score_loss(y, proba, labels=labels, scale_by_half=False)
    )
    if k == 2:
        # 1-D input is the greater label's probability; scale is twice the
        # customary binary Brier score
        assert multiclass_brier_score(y, proba[:, 1]) == pytest.approx(got)
        assert got == pytest.approx(2 * brier_score_loss(y, proba[:, 1], pos_label="b"))


def test_labels_for_missing_classes():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    y = [0, 1]
    with pytest.raises(ValueError, match="3 columns but 2 labels"):
        expected_calibration_error(y, proba)
    got = expected_calibration_error(y, proba, labels=[0, 1, 2])
    assert got == pytest.approx(_loop_ece(np.array(y), proba, 15))
    assert multiclass_brier_score(y, proba, labels=[0, 1, 2]) == pytest.approx(
        np.mean([0.09 + 0.04 + 0.01, 0.01 + 0.04 + 0.01])
    )
    with pytest.raises(ValueError, match="single class"):
        expected_calibration_error([1, 1], [0.2, 0.9])
    assert expected_calibration_error([1, 1], [0.2, 0.9], labels=[0, 1]) > 0


@pytest.mark.parametrize(
    "y_true, y_prob, match",
    [
        ([0, 1], [0.2, 0.7, 0.1], "inconsistent numbers of samples"),
        ([0, 1], [[0.5, 0.6], [0.5, 0.5]], "sum to 1"),
        ([0, 1], [[2.0, -1.0], [0.5, 0.5]], r"outside \[0, 1\]"),
        ([0, 1], [0.2, 1.3], r"outside \[0, 1\]"),
        ([0, 1], [[0.2], [0.3]], r"\(n_samples, 1\)"),
        ([0, 1], np.full((2, 2, 2), 0.5), "dimensions|dim"),
        ([0, 1, 2], [0.2, 0.3, 0.4], "1-D"),
        ([0, 1], [np.nan, 0.5], "NaN"),
    ],
)
def test_bad_inputs_raise(y_true, y_prob, match):
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(y_true, y_prob)


def test_bad_parameters_and_labels():
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0, 1], [0.2, 0.8], n_bins=0)
    with pytest.raises(ValueError, match="strategy"):
        expected_calibration_error([0, 1], [0.2, 0.8], strategy="equal")
    with pytest.raises(ValueError, match="not in labels"):
        expected_calibration_error([0, 5], [0.2, 0.8], labels=[0, 1])
    with pytest.raises(ValueError, match="duplicates"):
        multiclass_brier_score([0, 1], [0.2, 0.8], labels=[0, 1, 1])


def test_calibration_report():
    rng = np.random.default_rng(8)
    proba = _random_proba(rng, 500, 3)
    y = rng.integers(0, 3, size=500)
    rep = calibration_report(y, proba, n_bootstrap=50)
    assert set(rep) == {
        "accuracy",
        "log_loss",
        "brier",
        "ece",
        "ece_debiased",
        "ece_ci_low",
        "ece_ci_high",
        "n_samples",
    }
    assert rep["accuracy"] == pytest.approx(np.mean(proba.argmax(1) == y))
    assert rep["log_loss"] == pytest.approx(log_loss(y, proba))
    assert rep["ece"] == pytest.approx(expected_calibration_error(y, proba))
    assert rep["ece_debiased"] < rep["ece"]
    assert rep["ece_ci_low"] <= rep["ece_debiased"] <= rep["ece_ci_high"]
    assert rep["n_samples"] == 500
    assert np.isnan(calibration_report(y, proba, n_bootstrap=0)["ece_ci_low"])


@pytest.mark.parametrize("n_classes", [2, 3])
def test_scorer_in_cross_val_score_and_grid_search(n_classes):
    X, y = make_classification(
        n_samples=300, n_classes=n_classes, n_informative=4, random_state=0
    )
    clf = LogisticRegression()
    scores = cross_val_score(clf, X, y, cv=3, scoring=neg_ece_scorer)
    assert scores.shape == (3,) and np.all(scores <= 0)
    # the scorer returns minus the metric on predict_proba of the held-out fold
    fitted = clf.fit(X[:200], y[:200])
    expected = -expected_calibration_error(y[200:], fitted.predict_proba(X[200:]))
    assert neg_ece_scorer(fitted, X[200:], y[200:]) == pytest.approx(expected)
    search = GridSearchCV(
        clf,
        {"C": [0.01, 1.0]},
        cv=3,
        scoring={name: get_scorer(name) for name in SCORERS},
        refit="neg_expected_calibration_error",
    ).fit(X, y)
    assert np.all(search.cv_results_["mean_test_neg_multiclass_brier_score"] < 0)


def test_get_scorer_falls_back_to_sklearn():
    assert get_scorer("neg_expected_calibration_error") is neg_ece_scorer
    assert get_scorer("accuracy") is not None
    with pytest.raises(ValueError):
        get_scorer("no_such_scorer")


# -- several labels per text -------------------------------------------------------
def test_multilabel_calibration_report():
    from sklearn.metrics import hamming_loss

    from sklearn_llmconf.metrics import (
        calibration_report,
        multilabel_calibration_report,
    )

    rng = np.random.RandomState(0)
    P = rng.beta(0.5, 0.5, size=(3000, 3))
    Y = (rng.random_sample(P.shape) < P).astype(int)
    rep = calibration_report(Y, P, labels=["a", "b", "c"], n_bootstrap=50)
    assert sorted(rep["per_label"]) == ["a", "b", "c"]
    assert rep["n_samples"] == 3000 and rep["n_labels"] == 3
    assert rep["hamming_loss"] == pytest.approx(hamming_loss(Y, P > 0.5))
    # calibrated by construction: the debiased ECE is near 0, inside its interval
    micro = rep["micro"]
    assert micro["ece_debiased"] < 0.02
    assert micro["ece_ci_low"] <= micro["ece_debiased"] <= micro["ece_ci_high"]
    assert micro["brier"] == pytest.approx(np.mean((P - Y) ** 2))
    assert rep["macro"]["brier"] == pytest.approx(
        np.mean([r["brier"] for r in rep["per_label"].values()]))
    # overconfident probabilities show a larger error
    sharp = np.clip((P - 0.5) * 3 + 0.5, 0.001, 0.999)
    worse = multilabel_calibration_report(Y, sharp, n_bootstrap=0)
    assert worse["micro"]["ece_debiased"] > micro["ece_debiased"] + 0.05
    assert np.isnan(worse["micro"]["ece_ci_low"])


def test_multilabel_report_errors():
    from sklearn_llmconf.metrics import multilabel_calibration_report

    with pytest.raises(ValueError, match="must match"):
        multilabel_calibration_report(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="labels has 1 names for 2 columns"):
        multilabel_calibration_report(np.ones((3, 2)), np.full((3, 2), .5),
                                      labels=["a"])
