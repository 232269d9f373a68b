"""Rows and labels until the monitors raise an alarm, by size of the shift.

A perfectly known synthetic model: the probability of class 1 is ``q``
(``q = 1 - u**3 / 2`` or its complement, ``u`` uniform) and the label is drawn
from it, so the model is calibrated and its confidence ``c = max(q, 1 - q)``
is the probability of being right. A ``ConfidenceRouter`` certifies one tier
(``accept`` at precision 0.95, delta 0.05) on 2,000 such rows.

Live data then mixes in a new segment with share ``s``, of one of two kinds:

- ``confident``: rows whose confidence is high (``c`` uniform in [0.9, 1]) but
  which are right with probability 0.7 only (a product line the model
  confidently gets wrong): the accepted precision drops, the confidences
  hardly move;
- ``unsure``: rows the model is unsure about (``c`` uniform in [0.5, 0.75],
  right with probability ``c``): the confidences drop, the accepted rows'
  precision does not.

For each kind, each ``s`` and ``--n-runs`` runs of up to ``--max-rows`` live
rows (batches of 1,000):

- ``RoutingMonitor`` (audit_fraction 0.1, delta 0.05) gets the labels of the
  audited accepted rows; reported: median audited labels and median routed
  rows until its alarm, share of runs with an alarm;
- ``DriftMonitor`` (alpha 0.01) sees every live confidence, no label;
  reported: median rows until its alarm, share of runs with an alarm.

``s = 0`` is the no-drift case: the alarm shares there are false alarms.

Usage::

    PYTHONPATH=. python benchmarks/bench_monitoring.py [--n-runs 100]
        [--max-rows 20000] [--shifts 0 0.05 0.1 0.2]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.frozen import FrozenEstimator

from sklearn_llmconf.routing import ConfidenceRouter, DriftMonitor, RoutingMonitor

TARGET = 0.95


class _Known(ClassifierMixin, BaseEstimator):
    """P(class 1) is the first column of X."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        q = np.asarray(X, dtype=float)[:, 0]
        return np.column_stack([1 - q, q])


def _rows(rng, n, shift, kind="confident"):
    """Live rows: calibrated ones, and a share ``shift`` from the new segment."""
    c = 1 - rng.uniform(size=n) ** 3 / 2
    p_right = c.copy()
    new = rng.uniform(size=n) < shift
    if kind == "confident":
        c[new] = rng.uniform(0.9, 1.0, size=new.sum())
        p_right[new] = 0.7
    else:
        c[new] = p_right[new] = rng.uniform(0.5, 0.75, size=new.sum())
    side = rng.uniform(size=n) < 0.5  # predicted class 1 or 0
    q = np.where(side, c, 1 - c)
    right = rng.uniform(size=n) < p_right
    y = np.where(right, side, ~side).astype(int)
    return q[:, None], y


def _accept_precision(router, shift, kind, rng):
    X, y = _rows(rng, 400_000, shift, kind)
    d = router.decide(X)
    ok = d.tier == "accept"
    return (d.label[ok] == y[ok]).mean(), ok.mean()


def _run(router, shift, kind, max_rows, seed):
    rng = np.random.default_rng(seed)
    monitor = RoutingMonitor(router, audit_fraction=0.1, delta=0.05,
                             random_state=seed)
    drift = DriftMonitor(router, alpha=0.01, random_state=seed)
    rows_monitor = rows_drift = None
    for start in range(0, max_rows, 1000):
        X, y = _rows(rng, 1000, shift, kind)
        d = router.decide(X)
        if rows_drift is None:
            drift.update(d.confidence)
            if drift.alarm_:
                rows_drift = drift.rows_to_alarm_
        if rows_monitor is None:
            audit = monitor.audit(d.tier)
            monitor.update(y[audit], d.label[audit], d.tier[audit])
            if monitor.alarm_[0]:
                # routed rows until the audited label that raised it
                n_audit = monitor.labels_to_alarm_[0]
                picked = np.flatnonzero(audit)
                before = monitor.n_audited_[0] - audit.sum()
                rows_monitor = start + picked[int(n_audit - before) - 1] + 1
        if rows_monitor is not None and rows_drift is not None:
            break
    return monitor.labels_to_alarm_[0], rows_monitor, rows_drift


def _median(values):
    v = [x for x in values if x is not None and np.isfinite(x)]
    return f"{np.median(v):>8.0f}" if v else f"{'-':>8}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-runs", type=int, default=100)
    parser.add_argument("--max-rows", type=int, default=20000)
    parser.add_argument("--shifts", type=float, nargs="+",
                        default=[0.0, 0.05, 0.1, 0.2])
    parser.add_argument("--kinds", nargs="+", default=["confident", "unsure"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X_cal, y_cal = _rows(rng, 2000, 0.0)
    router = ConfidenceRouter(FrozenEstimator(_Known().fit(X_cal, y_cal)),
                              tiers=[("accept", TARGET)]).fit(X_cal, y_cal)
    print(f"# router: accept at precision >= {TARGET} certified at threshold "
          f"{router.thresholds_[0]:.4g} on 2,000 rows; {args.n_runs} runs of up to "
          f"{args.max_rows} live rows per shift; audit_fraction 0.1, monitor delta "
          "0.05, drift alpha 0.01; numpy single process")
    print(f"{'kind':>9} {'shift':>6} {'accept prec':>11} {'accepted':>8} | "
          f"{'mon alarm':>9} {'labels':>8} {'rows':>8} | "
          f"{'drift alarm':>11} {'rows':>8}")
    t0 = time.perf_counter()
    for kind, shift in [(k, s) for k in args.kinds for s in args.shifts]:
        if shift == 0 and kind != args.kinds[0]:
            continue  # no drift: the same for every kind
        prec, share = _accept_precision(router, shift, kind,
                                        np.random.default_rng(1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            runs = [_run(router, shift, kind, args.max_rows, seed)
                    for seed in range(args.n_runs)]
        labels, rows_m, rows_d = zip(*runs)
        fired_m = np.mean([r is not None for r in rows_m])
        fired_d = np.mean([r is not None for r in rows_d])
        name = kind if shift else "none"
        print(f"{name:>9} {shift:>6.2f} {prec:>11.4f} {share:>8.3f} | "
              f"{fired_m:>9.2f} {_median(labels)} {_median(rows_m)} | {fired_d:>11.2f} "
              f"{_median(rows_d)}")
    print(f"# {time.perf_counter() - t0:.0f} s; medians over the runs that alarmed "
          "(within max-rows)")


if __name__ == "__main__":
    main()
