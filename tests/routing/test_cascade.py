"""ConfidenceCascade: the certified precision, rows sent on, reports and displays.

Synthetic two-stage models whose truth is known in closed form: stage ``k``'s
confidence is ``c = 1 - u**a_k / 2`` (``u`` uniform, independent between
stages) and its answer is right with probability exactly ``c``.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.frozen import FrozenEstimator

from sklearn_llmconf.routing import ConfidenceCascade, RefittedWarning
from sklearn_llmconf.routing._stats import default_thresholds

A = (3.0, 8.0)  # stage 1 weaker than stage 2


def _accepted(lam, a):
    """P(c >= lam) and E[c; c >= lam] for c = 1 - u**a / 2."""
    q = np.minimum(1.0, (2.0 * (1.0 - lam)) ** (1.0 / a))
    return q, q - q ** (a + 1) / (2 * (a + 1))


def _true_cascade_precision(a, b=None):
    """Precision of the answers with thresholds a (stage 1) and b (stage 2)."""
    p1, e1 = _accepted(a, A[0])
    p2, e2 = _accepted(a if b is None else b, A[1])
    return (e1 + (1 - p1) * e2) / (p1 + (1 - p1) * p2)


def _draw(rng, shape):
    conf = np.stack([1 - rng.uniform(size=shape) ** a / 2 for a in A])
    wrong = rng.uniform(size=conf.shape) >= conf
    return conf, wrong


@pytest.mark.parametrize("target", [0.95, 0.98])
def test_cascade_misses_its_target_in_at_most_delta_of_draws(target):
    delta, n_draws, n_cal = 0.05, 400, 1000
    rng = np.random.default_rng(0)
    grid = default_thresholds()
    thr = np.empty((n_draws, 2))
    for d in range(n_draws):
        conf, wrong = _draw(rng, n_cal)
        thr[d] = ConfidenceCascade._certify_paths(conf, wrong, grid, target, delta)
    certified = np.isfinite(thr[:, 1])
    a = np.where(certified, np.minimum(thr[:, 0], 1.0), 1.0)
    b = np.where(certified, thr[:, 1], 1.0)
    miss = certified & (_true_cascade_precision(a, b) < target)
    both = certified & (thr[:, 0] <= 1.0)
    print(f"target {target}: misses {miss.mean():.4f}, certified "
          f"{certified.mean():.3f}, stage 1 answering in {both.mean():.3f}")
    assert miss.mean() <= delta + 3 * np.sqrt(delta * (1 - delta) / n_draws)
    assert certified.mean() >= 0.9  # not bought by certifying nothing


def test_path_counts_match_a_direct_count():
    rng = np.random.default_rng(4)
    conf, wrong = _draw(rng, 500)
    conf = np.r_[conf, np.round(rng.uniform(size=(1, 500)), 1)]  # 3 stages, ties
    wrong = np.r_[wrong, rng.uniform(size=(1, 500)) < 0.3]
    grid = default_thresholds()
    n_acc, n_err = ConfidenceCascade._path_counts(conf, wrong, grid)
    for g, lam in enumerate(grid):
        stage = ConfidenceCascade._answering_stage(conf, lam)
        ok = stage < 3
        assert n_acc[g] == ok.sum()
        assert n_err[g] == wrong[np.minimum(stage, 2), np.arange(500)][ok].sum()


def test_true_precision_formula_matches_a_large_sample():
    rng = np.random.default_rng(1)
    conf, wrong = _draw(rng, 400_000)
    for lam in (0.8, 0.95):
        stage = ConfidenceCascade._answering_stage(conf, lam)
        ok = stage < 2
        right = ~wrong[np.minimum(stage, 1), np.arange(conf.shape[1])]
        assert abs(right[ok].mean() - _true_cascade_precision(lam)) < 2e-3


SEEN = {}  # rows each oracle stage was asked to score, by name


class _Oracle(ClassifierMixin, BaseEstimator):
    """Reads P(class 1) from column ``col`` of X; counts the rows it scores."""

    def __init__(self, col=0, name="s"):
        self.col = col
        self.name = name

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        q = np.asarray(X, dtype=float)[:, self.col]
        SEEN[self.name] = SEEN.get(self.name, 0) + len(q)
        return np.column_stack([1 - q, q])


def _rows(rng, n):
    """Columns: P(class 1) by stage 1 and stage 2; y drawn from stage 2."""
    q1 = rng.uniform(size=n)
    y = (rng.uniform(size=n) < q1).astype(int)
    q2 = np.where(y == 1, rng.beta(8, 1, size=n), rng.beta(1, 8, size=n))
    return np.column_stack([q1, q2]), y


@pytest.fixture
def cascade():
    rng = np.random.default_rng(2)
    X, y = _rows(rng, 2000)
    stages = [("small", FrozenEstimator(_Oracle(0, "small").fit(X, y))),
              ("large", FrozenEstimator(_Oracle(1, "large").fit(X, y)))]
    return ConfidenceCascade(stages, target=0.9).fit(X, y), rng


def test_only_rows_left_by_stage_one_reach_stage_two(cascade):
    cascade, rng = cascade
    X, y = _rows(rng, 1000)
    SEEN.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # certificates still match
        d = cascade.decide(X)
    n_small = int((d.stage == 0).sum())
    assert d.n_scored.tolist() == [1000, 1000 - n_small]
    assert SEEN == {"small": 1000, "large": 1000 - n_small}
    assert np.isfinite(cascade.thresholds_).all() and 0 < n_small < 1000
    conf1 = np.maximum(X[:, 0], 1 - X[:, 0])
    np.testing.assert_array_equal(d.stage == 0, conf1 >= cascade.thresholds_[0])
    assert set(d.tier) <= {"small", "large", "human"}
    assert d.certified.all() and len(d.usage) == 2
    assert d.usage[0] == {"calls": 0, "cache_hits": 0, "prompt_tokens": 0,
                          "completion_tokens": 0}


def test_predict_route_report_and_display(cascade):
    cascade, rng = cascade
    X, y = _rows(rng, 3000)
    pred, tiers = cascade.predict(X), cascade.route(X)
    assert pred.shape == (3000,)
    assert {"small", "large"} <= set(np.unique(tiers)) <= {"small", "large", "human"}
    np.testing.assert_array_equal(pred[tiers == "human"], "human")
    report = cascade.routing_report(X, y)
    assert list(report) == ["small", "large", "human"]
    answered = tiers != "human"
    precision = (pred[answered].astype(int) == y[answered]).mean()
    assert report["large"]["cumulative_precision"] == pytest.approx(precision)
    assert report["large"]["cumulative_precision"] >= 0.9 - 0.02
    proba = cascade.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    from sklearn_llmconf.plotting import RoutingDisplay

    disp = RoutingDisplay.from_estimator(cascade, X, y)
    np.testing.assert_array_equal(disp.chosen_thresholds, cascade.thresholds_)
    assert disp.tier_names == ["small", "large"]


def test_cascade_flags_a_changed_stage(cascade):
    cascade, rng = cascade
    X, _ = _rows(rng, 50)
    # the "large" stage now reads another column
    cascade.stages_[1][1].estimator.col = 0
    with pytest.warns(UserWarning, match="large"):
        d = cascade.decide(X)
    assert not d.certified.any()


def test_cascade_checks_its_stages():
    X, y = _rows(np.random.default_rng(3), 100)
    with pytest.raises(ValueError, match="distinct"):
        ConfidenceCascade([("human", _Oracle().fit(X, y))]).fit(X, y)
    with pytest.raises(ValueError, match="at least one"):
        ConfidenceCascade([]).fit(X, y)
    other = _Oracle().fit(X, y)
    other.classes_ = np.array([0, 2])
    with pytest.raises(ValueError, match="same classes_"):
        ConfidenceCascade([("a", FrozenEstimator(_Oracle().fit(X, y))),
                           ("b", FrozenEstimator(other))]).fit(X, y)


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "unfitted"])
def test_clone_then_fit_is_fit(frozen):
    X, y = _rows(np.random.default_rng(2), 2000)
    stages = [("small", _Oracle(0, "small")), ("large", _Oracle(1, "large"))]
    if frozen:
        stages = [(name, FrozenEstimator(est.fit(X, y))) for name, est in stages]
    cascade = ConfidenceCascade(stages, target=0.9, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RefittedWarning either way
        cloned = clone(cascade).fit(X, y)
        cascade.fit(X, y)
    assert cascade.n_calibration_ == (2000 if frozen else 1000)
    assert all((a is b) is frozen
               for (_, a), (_, b) in zip(cascade.stages_, cloned.stages_))
    for name in ("thresholds_", "stage_share_", "n_accepted_", "n_errors_"):
        np.testing.assert_array_equal(getattr(cloned, name), getattr(cascade, name))
    assert cloned.certificates_ == cascade.certificates_


def test_fitted_unfrozen_stage_is_refitted_with_a_warning():
    X, y = _rows(np.random.default_rng(2), 400)
    fitted = _Oracle(1, "large").fit(X, y)
    cascade = ConfidenceCascade([("small", FrozenEstimator(_Oracle(0).fit(X, y))),
                                 ("large", fitted)], target=0.9, random_state=0)
    with pytest.warns(RefittedWarning, match=r"ConfidenceCascade: the stage "
                      r"'large' \(_Oracle\) is already fitted but not frozen"):
        cascade.fit(X, y)
    assert cascade.stages_[1][1] is not fitted and cascade.n_calibration_ == 200
    assert cascade.stages_[0][1] is cascade.stages[0][1]
