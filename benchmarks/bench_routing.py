"""Certified routing (learn-then-test) vs the plug-in threshold, embedded model.

For each bundled data set the embedded SmolLM2-135M scores every text once
(through the benchmarks' response cache, see ``_scores.py``): a demonstration
pool, a split on which ``TemperatureScaler(FrozenEstimator(clf), bias=True)``
is fitted, and a routing pool. The calibrated probabilities of the routing
pool are then re-split at random into a calibration half and a test half,
``--n-splits`` times; on each split

- ``ConfidenceRouter(method="ltt")`` certifies one threshold per tier
  (default: accept at precision 0.99, review at 0.90, delta 0.05 split
  Bonferroni over the tiers) on the calibration half,
- the plug-in rule (``method="plugin"``: the smallest threshold whose accepted
  calibration predictions, and those of every higher threshold, meet the
  target) picks its thresholds on the same half,

and both are evaluated on the test half: the share of test texts at or above
each tier's threshold and the precision of those texts. Reported per tier and
method: the mean share, the mean precision and the number of splits on which
the test precision fell below the target (a split that accepts nothing cannot
miss). The model cost is one pass over the texts; the re-splitting is free.

Usage::

    PYTHONPATH=. python benchmarks/bench_routing.py [--datasets sms_spam trec]
        [--n-splits 50] [--n-route 1000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _scores import DATASETS, make_classifier  # noqa: E402

from sklearn_llmconf import TemperatureScaler  # noqa: E402
from sklearn_llmconf.routing import ConfidenceRouter  # noqa: E402

TIERS = (("accept", 0.99), ("review", 0.90))


def _splits(name, n_pool, n_scale, n_route, seed=0):
    """Stratified demo pool, scaling split and routing pool (fixed sizes).

    The scaling split and the routing pool are shuffled, so a prefix of either
    is close to stratified: a run that scores fewer rows re-uses the scores of
    the same prefix, and a longer run extends it.
    """
    X, y = DATASETS[name]["load"]()
    X_pool, X_rest, y_pool, y_rest = train_test_split(
        X, y, train_size=n_pool, stratify=y, random_state=seed
    )
    X_scale, X_rest, y_scale, y_rest = train_test_split(
        X_rest, y_rest, train_size=n_scale, stratify=y_rest, random_state=seed
    )
    X_route, _, y_route, _ = train_test_split(
        X_rest, y_rest, train_size=min(n_route, len(y_rest) - 2), stratify=y_rest,
        random_state=seed,
    )
    return (X_pool, y_pool), (list(X_scale), y_scale), (list(X_route), y_route)


def calibrated_scores(name, n_scale, n_route, max_minutes, chunk=16):
    """Calibrated probabilities and labels of the routing pool (one model pass).

    Scores the scaling split, then the routing pool in chunks until
    ``n_route`` rows or ``max_minutes`` of scoring; the routing pool is the
    prefix scored.
    """
    (X_pool, y_pool), (X_scale, y_scale), (X_route, y_route) = _splits(
        name, 150, 150, 1000)
    X_scale, y_scale = X_scale[:n_scale], y_scale[:n_scale]
    clf = make_classifier(name, batch_size=chunk).fit(X_pool, y_pool)
    start = time.perf_counter()
    clf.predict_proba(X_scale)
    n_done = 0
    while n_done < min(n_route, len(X_route)):
        if time.perf_counter() - start > 60 * max_minutes:
            break
        clf.predict_proba(X_route[n_done:n_done + chunk])
        n_done = min(n_done + chunk, n_route, len(X_route))
        print(f"  scored {n_scale + n_done} texts in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    scaler = TemperatureScaler(FrozenEstimator(clf), bias=True)
    scaler.fit(X_scale, y_scale)  # cache hits only
    proba = scaler.predict_proba(X_route[:n_done])
    return proba, np.asarray(y_route[:n_done]), scaler.classes_, clf.usage_, seconds


class _Scored(ClassifierMixin, BaseEstimator):
    """A fitted 'classifier' whose input is row indices into stored probabilities."""

    def __init__(self, proba, classes):
        self.proba, self.classes = proba, classes
        self.classes_ = classes

    def __sklearn_is_fitted__(self):
        return True

    def fit(self, X, y):  # pragma: no cover - never called: it is fitted
        return self

    def predict_proba(self, X):
        return self.proba[np.asarray(X).ravel()]


def evaluate_splits(proba, y, classes, tiers, delta, n_splits):
    """Per method and tier: thresholds, test shares and precisions over splits."""
    import warnings

    scored = _Scored(proba, classes)
    idx = np.arange(len(y))[:, None]
    out = {}
    for split in range(n_splits):
        i_cal, i_test = train_test_split(idx, test_size=0.5, stratify=y,
                                         random_state=split)
        for method in ("ltt", "plugin"):
            router = ConfidenceRouter(FrozenEstimator(scored), tiers=tiers, delta=delta,
                                      method=method)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # uncertified tiers
                router.fit(i_cal, y[i_cal.ravel()])
            report = router.routing_report(i_test, y[i_test.ravel()])
            for t, (name, _) in enumerate(tiers):
                row = out.setdefault((method, name), dict(thr=[], share=[], prec=[]))
                row["thr"].append(router.thresholds_[t])
                row["share"].append(report[name]["cumulative_share"])
                row["prec"].append(report[name]["cumulative_precision"])
    return out


def conformal_sets(proba, y, classes, n_splits, confidence_level=0.9):
    """MAPIE split-conformal sets on the same splits: coverage and set size."""
    from mapie.classification import SplitConformalClassifier

    scored = _Scored(proba, classes)
    idx = np.arange(len(y))[:, None]
    coverage, size = [], []
    for split in range(n_splits):
        i_cal, i_test = train_test_split(idx, test_size=0.5, stratify=y,
                                         random_state=split)
        mapie = SplitConformalClassifier(scored, confidence_level=confidence_level,
                                         prefit=True)
        mapie.conformalize(i_cal, y[i_cal.ravel()])
        _, sets = mapie.predict_set(i_test)
        y_test = y[i_test.ravel()]
        coverage.append(sets[np.arange(len(y_test)),
                             np.searchsorted(classes, y_test), 0].mean())
        size.append(sets[:, :, 0].sum(axis=1).mean())
    return np.array(coverage), np.array(size)


def format_table(results, tiers, n_splits, n_cal, n_test):
    """Text table: one row per tier and method."""
    head = (f"{'tier':<8} {'target':>6} {'method':<7} {'certified':>9} "
            f"{'threshold':>9} {'share':>6} {'precision':>9} {'missed':>8}")
    lines = [f"{n_splits} random splits: {n_cal} calibration / {n_test} test rows",
             head, "-" * len(head)]
    for name, target in tiers:
        for method in ("ltt", "plugin"):
            r = {k: np.array(v) for k, v in results[(method, name)].items()}
            some = np.isfinite(r["thr"])
            prec = r["prec"][some & ~np.isnan(r["prec"])]
            missed = int(np.sum(prec < target))
            thr = f"{np.median(r['thr'][some]):.4f}" if some.any() else "-"
            lines.append(
                f"{name:<8} {target:>6.2f} {method:<7} {some.sum():>5}/{n_splits:<3} "
                f"{thr:>9} {r['share'].mean():>6.3f} "
                f"{(prec.mean() if len(prec) else np.nan):>9.3f} "
                f"{missed:>4}/{len(prec):<3}"
            )
    lines.append("certified: splits on which the method chose a threshold; "
                 "threshold: median of those; share: mean share of test rows at "
                 "or above the threshold (0 when none); precision: mean test "
                 "precision of those rows over the splits accepting any; missed: "
                 "splits whose test precision fell below the target.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["sms_spam", "trec"],
                        choices=sorted(DATASETS))
    parser.add_argument("--n-scale", type=int, default=150,
                        help="rows the temperature scaler is fitted on (<= 150)")
    parser.add_argument("--n-route", type=int, default=1000,
                        help="rows re-split into calibration and test (<= 1000)")
    parser.add_argument("--max-minutes", type=float, default=float("inf"),
                        help="stop scoring the routing pool after this long")
    parser.add_argument("--n-splits", type=int, default=50)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--score-only", action="store_true")
    args = parser.parse_args(argv)
    for name in args.datasets:
        proba, y, classes, usage, seconds = calibrated_scores(
            name, args.n_scale, args.n_route, args.max_minutes
        )
        print(f"\n{name}: scored in {seconds:.0f} s ({usage.calls} model calls, "
              f"{usage.cache_hits} cache hits); routing pool {len(y)} texts, "
              f"accuracy {np.mean(classes[proba.argmax(1)] == y):.3f}")
        if args.score_only:
            continue
        results = evaluate_splits(proba, y, classes, TIERS, args.delta,
                                  args.n_splits)
        n_test = len(y) - len(y) // 2
        print(format_table(results, TIERS, args.n_splits, len(y) - n_test, n_test))
        try:
            coverage, size = conformal_sets(proba, y, classes, args.n_splits)
        except ImportError:
            print("MAPIE not installed: no prediction sets.")
        else:
            print(f"MAPIE SplitConformalClassifier(prefit=True), confidence_level=0.9, "
                  f"same splits: coverage mean {coverage.mean():.3f} (min "
                  f"{coverage.min():.3f}, max {coverage.max():.3f}), mean set size "
                  f"{size.mean():.2f} of {len(classes)} labels.")


if __name__ == "__main__":
    main()
