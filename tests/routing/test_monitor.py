"""RoutingMonitor and DriftMonitor: false alarms within their levels, shifts caught.

Simulations on perfectly known models: the audited rows' errors are Bernoulli
with a chosen rate, live confidences come from a chosen distribution; false
alarm rates are measured over >= 1,000 runs and compared with the stated
level plus three binomial standard errors.
"""

import warnings

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from sklearn_llmconf.routing import (
    ConfidenceRouter,
    DriftAlarmWarning,
    DriftMonitor,
    PrecisionAlarmWarning,
    RoutingMonitor,
)
from sklearn_llmconf.routing._sequential import (
    conformal_p_values,
    error_eprocess,
    jumper_martingale,
)

N_RUNS = 1000


def _noise(level, n):
    return 3 * np.sqrt(level * (1 - level) / n)


@pytest.fixture(scope="module")
def router():
    """A fitted two-tier router (only its tiers and targets matter here)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 2))
    y = (X[:, 0] + 0.3 * rng.normal(size=3000) > 0).astype(int)
    clf = LogisticRegression().fit(X[:1000], y[:1000])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ConfidenceRouter(FrozenEstimator(clf),
                                tiers=[("accept", 0.99), ("review", 0.9)]).fit(
            X[1000:], y[1000:])


# --- the betting e-process ------------------------------------------------


@pytest.mark.parametrize("m", [0.01, 0.05])
def test_eprocess_false_alarm_at_the_null_boundary(m):
    # the hardest null: error rate exactly m, 2,000 audited labels per run
    rng = np.random.default_rng(1)
    level, n_runs = 0.05, N_RUNS
    errors = rng.uniform(size=(n_runs, 2000)) < m
    log_w = error_eprocess(errors, m)
    rate = (log_w.max(axis=1) >= np.log(1 / level)).mean()
    print(f"m={m}: false alarm rate {rate:.4f} (level {level})")
    assert rate <= level + _noise(level, n_runs)


def test_eprocess_continues_a_path_exactly():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=500) < 0.03
    whole = error_eprocess(x, 0.01)
    first = error_eprocess(x[:123], 0.01)
    rest = error_eprocess(x[123:], 0.01, n_prev=123, errors_prev=int(x[:123].sum()),
                          log_wealth_prev=first[-1])
    np.testing.assert_allclose(np.r_[first, rest], whole)


def test_eprocess_grows_under_the_alternative():
    rng = np.random.default_rng(3)
    errors = rng.uniform(size=(500, 2000)) < 0.05
    hit = error_eprocess(errors, 0.01) >= np.log(20)
    assert hit.any(axis=1).all()
    # Measured: median 191 labels to reject "error <= 1 %" at 5 % errors.
    assert np.median(np.argmax(hit, axis=1)) < 400


# --- RoutingMonitor -------------------------------------------------------


def test_audit_draws_the_documented_fraction_seeded(router):
    tiers = np.array(["accept"] * 20000 + ["review"] * 500 + ["escalate"] * 500)
    monitor = RoutingMonitor(router, audit_fraction=0.1, random_state=0)
    audit = monitor.audit(tiers)
    share = audit[:20000].mean()
    assert abs(share - 0.1) < 3 * np.sqrt(0.1 * 0.9 / 20000)
    assert audit[20000:20500].all()  # reviewed rows: review_fraction=1
    assert not audit[20500:].any()  # the fallback tier is never audited
    assert monitor.n_selected_.tolist() == [int(audit[:20000].sum()), 500]
    again = RoutingMonitor(router, audit_fraction=0.1, random_state=0).audit(tiers)
    np.testing.assert_array_equal(audit, again)


def test_update_refuses_rows_audit_did_not_select(router):
    monitor = RoutingMonitor(router, audit_fraction=0.5, random_state=0)
    tiers = np.array(["accept"] * 10)
    audit = monitor.audit(tiers)
    n = int(audit.sum())
    with pytest.raises(ValueError, match="more labels per tier"):
        monitor.update([1] * (n + 1), [1] * (n + 1), ["accept"] * (n + 1))
    with pytest.raises(ValueError, match="certified tiers"):
        monitor.update([1], [1], ["escalate"])
    monitor.update([1] * n, [1] * n, ["accept"] * n)
    assert monitor.n_labels_[0] == n and monitor.n_audited_[0] == n


def _simulate_monitor(router, err_accept, err_review, n_rows, seed, batch=500):
    """One deployment: routed rows, audit, feedback in batches."""
    monitor = RoutingMonitor(router, audit_fraction=0.2, delta=0.05,
                             random_state=seed)
    rng = np.random.default_rng(seed)
    for _ in range(n_rows // batch):
        tiers = np.where(rng.uniform(size=batch) < 0.8, "accept", "review")
        audit = monitor.audit(tiers)
        t = tiers[audit]
        err = rng.uniform(size=len(t)) < np.where(t == "accept", err_accept,
                                                 err_review)
        monitor.update(np.where(err, 0, 1), np.ones(len(t), dtype=int), t)
    return monitor


def test_monitor_false_alarms_within_delta_over_1000_runs(router):
    # Both tiers exactly at their targets: the least favourable null.
    alarms, covered = 0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionAlarmWarning)
        for seed in range(N_RUNS):
            m = _simulate_monitor(router, 0.01, 0.1, 3000, seed, batch=1500)
            alarms += m.alarm_.any()
            if seed < 200:  # the grid bound costs more: fewer runs
                covered += m.precision_upper_[0] >= 0.99
    rate = alarms / N_RUNS
    print(f"family-wise false alarm rate {rate:.4f} over {N_RUNS} runs (delta 0.05);"
          f" upper bound covers the true precision in {covered / 200:.3f}")
    assert rate <= 0.05 + _noise(0.05, N_RUNS)
    assert covered / 200 >= 1 - 0.025 - _noise(0.025, 200)


def test_monitor_alarms_when_the_top_tier_degrades(router):
    with pytest.warns(PrecisionAlarmWarning, match="Tier 'accept'"):
        m = _simulate_monitor(router, 0.06, 0.1, 10000, seed=0)
    assert m.alarm_[0] and not m.alarm_[1]
    assert 0 < m.labels_to_alarm_[0] <= m.n_audited_[0]
    assert m.precision_upper_[0] < 0.99
    summary = m.summary()
    assert summary["accept"]["alarm"] and summary["accept"]["n_audited"] > 0
    assert abs(summary["accept"]["precision"] - 0.94) < 0.05


def test_monitor_thins_lower_tiers_to_a_uniform_sample(router):
    m = _simulate_monitor(router, 0.0, 0.0, 5000, seed=1)
    # review tier's sequence: all accept audits plus ~20 % of review labels
    expected = m.n_labels_[0] + 0.2 * m.n_labels_[1]
    assert m.n_audited_[0] == m.n_labels_[0]
    assert abs(m.n_audited_[1] - expected) < 4 * np.sqrt(0.16 * m.n_labels_[1])


def test_monitor_checks_its_parameters(router):
    with pytest.raises(ValueError, match="audit_fraction"):
        RoutingMonitor(router, audit_fraction=0)
    with pytest.raises(ValueError, match="delta"):
        RoutingMonitor(router, delta=1.5)


# --- the conformal test martingale -----------------------------------------


def test_conformal_p_values_are_uniform_with_ties():
    rng = np.random.default_rng(4)
    cal = np.round(rng.beta(5, 1, size=(N_RUNS, 300)), 2)  # many ties
    live = np.round(rng.beta(5, 1, size=(N_RUNS, 200)), 2)
    p = conformal_p_values(cal, live, rng)
    assert p.shape == (N_RUNS, 200)
    assert ((p > 0) & (p <= 1)).all()
    counts = np.histogram(p, bins=10, range=(0, 1))[0] / p.size
    np.testing.assert_allclose(counts, 0.1, atol=0.003)


def test_drift_false_alarm_within_alpha_over_1000_runs():
    rng = np.random.default_rng(5)
    alpha = 0.05
    cal = rng.beta(5, 1, size=(N_RUNS, 500))
    live = rng.beta(5, 1, size=(N_RUNS, 400))
    log_v, _ = jumper_martingale(conformal_p_values(cal, live, rng))
    rate = (log_v.max(axis=1) >= np.log(1 / alpha)).mean()
    print(f"drift false alarm rate {rate:.4f} over {N_RUNS} runs (alpha {alpha})")
    assert rate <= alpha + _noise(alpha, N_RUNS)


def test_drift_false_alarm_within_alpha_with_tied_confidences():
    rng = np.random.default_rng(6)
    alpha = 0.05
    cal = np.round(rng.beta(5, 1, size=(N_RUNS, 300)), 2)
    live = np.round(rng.beta(5, 1, size=(N_RUNS, 300)), 2)
    log_v, _ = jumper_martingale(conformal_p_values(cal, live, rng))
    rate = (log_v.max(axis=1) >= np.log(1 / alpha)).mean()
    assert rate <= alpha + _noise(alpha, N_RUNS)


def test_drift_monitor_in_batches_is_the_martingale_on_the_whole_stream():
    rng = np.random.default_rng(8)
    cal, live = rng.beta(5, 1, size=400), rng.beta(4, 1, size=2500)
    drift = DriftMonitor(cal, alpha=1e-12, random_state=0)
    for part in np.split(live, [700, 1900]):  # blocks of 1024 inside
        drift.update(part)
    gen = np.random.default_rng(np.random.RandomState(0).randint(2**31 - 1))
    p = np.concatenate([
        conformal_p_values(np.r_[cal, live[:a]], live[a:b], gen)
        for a, b in [(0, 700), (700, 1724), (1724, 1900), (1900, 2500)]
    ])
    log_v, _ = jumper_martingale(p)
    assert drift.n_seen_ == 2500
    np.testing.assert_allclose(drift.log_martingale_, log_v[-1])
    np.testing.assert_allclose(drift.max_log_martingale_, max(log_v.max(), 0.0))


def test_drift_monitor_alarms_on_a_shift_and_takes_a_router(router):
    rng = np.random.default_rng(7)
    drift = DriftMonitor(router, alpha=0.01, random_state=0)
    assert drift._reference.shape == (router.n_calibration_,)
    X_live = rng.normal(size=(2000, 2)) * 0.3  # rows near the boundary
    proba = router.predict_proba(X_live)
    with pytest.warns(DriftAlarmWarning, match="no longer exchangeable"):
        drift.update(proba)
    assert drift.alarm_ and 0 < drift.rows_to_alarm_ <= 2000
    assert drift.max_log_martingale_ >= np.log(100)


def test_drift_monitor_skips_failed_rows_and_checks_input():
    drift = DriftMonitor(np.linspace(0.5, 1, 100), random_state=0)
    drift.update(np.array([[0.2, 0.8], [np.nan, np.nan], [0.6, 0.4]]))
    assert drift.n_seen_ == 2
    with pytest.raises(ValueError, match="at least 2"):
        DriftMonitor([0.9])
    with pytest.raises(ValueError, match="alpha"):
        DriftMonitor(np.ones(10), alpha=0)
