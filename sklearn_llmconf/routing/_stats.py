"""Certified confidence thresholds: learn-then-test with fixed-sequence testing.

A threshold ``lam`` accepts the predictions whose confidence (largest class
probability) is ``>= lam``. Its precision is the probability that an accepted
prediction is correct, on new data exchangeable with the calibration data.
Given ``n`` accepted calibration rows of which ``k`` are wrong, and conditional
on ``n``, ``k`` is binomial with the population error rate of the accepted
rows, so ``P(Binomial(n, 1 - target) <= k)`` is a valid p-value for the null
hypothesis "precision at ``lam`` < target" (Angelopoulos, Bates, Candès, Jordan
and Lei, "Learn then Test: Calibrating predictive algorithms to achieve risk
control", 2021, arXiv:2110.01052, binomial p-values and fixed-sequence
testing). Scanning a fixed grid of thresholds from the most confident down and
stopping at the first hypothesis not rejected at level ``delta`` controls the
family-wise error: with probability ``>= 1 - delta`` every threshold it
certifies, the lowest one included, has precision ``>= target``.

Thresholds accepting fewer rows than the least number that could ever reject
(``n_min``, zero errors) are skipped instead of ending the scan: that count
depends on the unlabelled confidences only, not on which rows are correct.
A few sequences with different starts run side by side at ``delta`` divided
by their number (fixed-sequence testing with several starts, a union bound),
so that one error among the most confident rows does not end the search.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta, binom

# Fixed sequences per test (see ltt_threshold).
N_STARTS = 2

__all__ = [
    "N_STARTS",
    "accepted_counts",
    "default_thresholds",
    "fixed_sequence_threshold",
    "ltt_threshold",
    "min_accepted",
    "plugin_threshold",
    "precision_lower_bound",
    "required_calibration_size",
]


def default_thresholds():
    """Candidate thresholds, most confident first.

    Steps of 0.01 from 0.99 down to 0, and a logarithmic grid between 0.99
    and 0.9999 where calibrated confidences of a good model pile up.
    """
    fine = 1.0 - np.geomspace(1e-2, 1e-4, 9)
    return np.unique(np.r_[np.linspace(0.0, 0.99, 100), fine])[::-1]


def accepted_counts(confidence, correct, thresholds):
    """Rows accepted and wrong at each threshold (confidence ``>=`` threshold).

    Parameters
    ----------
    confidence : ndarray of shape (n_samples,)
    correct : ndarray of shape (n_samples,), dtype=bool
    thresholds : ndarray of shape (n_thresholds,)

    Returns
    -------
    n_accepted, n_errors : ndarray of shape (n_thresholds,), dtype=int
    """
    order = np.argsort(-confidence, kind="stable")
    errors = np.r_[0, np.cumsum(~correct[order])]
    n_accepted = np.searchsorted(-confidence[order], -np.asarray(thresholds),
                                 side="right")
    return n_accepted, errors[n_accepted]


def min_accepted(target, delta):
    """Least number of accepted rows that can certify ``target`` (zero errors)."""
    return math.ceil(math.log(delta) / math.log(target))


def binomial_p_values(n_accepted, n_errors, target):
    """p-values of H0: precision < target, from the binomial lower tail.

    Parameters
    ----------
    n_accepted, n_errors : array-like of int
    target : float

    Returns
    -------
    p : ndarray of float, 1.0 where nothing is accepted
    """
    n_accepted = np.asarray(n_accepted)
    p = binom.cdf(n_errors, n_accepted, 1.0 - target)
    return np.where(n_accepted > 0, p, 1.0)


def ltt_threshold(confidence, correct, target, delta, thresholds=None,
                  n_starts=N_STARTS):
    """Lowest threshold certified by fixed-sequence testing, or ``inf``.

    ``n_starts`` fixed sequences run at level ``delta / n_starts`` each (a
    union bound): the ``j``-th starts at the most confident threshold that
    accepts at least ``2**j`` times the least number of rows that could ever
    reject. One error among the few most confident rows then stops only the
    sequences that start there.

    Parameters
    ----------
    confidence : ndarray of shape (n_samples,)
        Confidence of each calibration prediction.
    correct : ndarray of shape (n_samples,), dtype=bool
        Whether each calibration prediction is correct.
    target : float
        Precision to certify, in (0, 1).
    delta : float
        Error level of the test.
    thresholds : ndarray, default=None
        Candidate thresholds, scanned from the largest; see
        :func:`default_thresholds`.
    n_starts : int, default=2
        Number of fixed sequences.

    Returns
    -------
    threshold : float
        ``inf`` (accept nothing) when no threshold is certified.
    """
    grid = default_thresholds() if thresholds is None else np.sort(thresholds)[::-1]
    n_acc, n_err = accepted_counts(confidence, correct, grid)
    return fixed_sequence_threshold(grid, n_acc, n_err, target, delta, n_starts)


def fixed_sequence_threshold(grid, n_acc, n_err, target, delta, n_starts=N_STARTS):
    """Lowest grid point certified by fixed-sequence testing, from counts.

    The test of :func:`ltt_threshold` on accepted and wrong counts given for
    each point of ``grid`` (decreasing, the most selective first).

    Returns
    -------
    threshold : float
        ``inf`` when nothing is certified.
    """
    p = binomial_p_values(n_acc, n_err, target)
    level = delta / n_starts
    n_min = min_accepted(target, level)
    best = np.inf
    for j in range(n_starts):
        tested = n_acc >= n_min * 2**j
        if not tested.any():
            break
        start = np.argmax(tested)
        rejected = np.logical_and.accumulate(p[start:] <= level)
        if rejected[0]:
            best = min(best, float(grid[start + np.flatnonzero(rejected)[-1]]))
    return best


def plugin_threshold(confidence, correct, target, thresholds=None):
    """Smallest threshold whose accepted calibration predictions meet the target.

    The same rule must hold at every higher threshold (that accepts anything).
    This is the uncertified rule the learn-then-test threshold replaces; it is
    kept for comparison.

    Returns
    -------
    threshold : float
        ``inf`` when no threshold meets the target.
    """
    grid = default_thresholds() if thresholds is None else np.sort(thresholds)[::-1]
    n_acc, n_err = accepted_counts(confidence, correct, grid)
    meets = (n_acc == 0) | (n_err <= (1.0 - target) * n_acc)
    ok = np.logical_and.accumulate(meets) & (n_acc > 0)
    return float(grid[np.flatnonzero(ok)[-1]]) if ok.any() else np.inf


def precision_lower_bound(n_correct, n, confidence_level):
    """One-sided Clopper-Pearson lower confidence bound of a proportion.

    Parameters
    ----------
    n_correct, n : array-like of int
    confidence_level : float

    Returns
    -------
    bound : ndarray of float, NaN where ``n == 0``
    """
    n_correct, n = np.asarray(n_correct), np.asarray(n)
    with np.errstate(invalid="ignore"):
        low = beta.ppf(1.0 - confidence_level, n_correct, n - n_correct + 1)
    low = np.where(n_correct == 0, 0.0, low)
    return np.where(n > 0, low, np.nan)


def required_calibration_size(target, *, delta=0.05, error_rate=0.0):
    """Accepted calibration rows needed to certify a precision target.

    The smallest ``n`` such that ``n`` accepted rows with ``floor(error_rate *
    n)`` errors reject "precision < target" at level ``delta`` with the
    binomial test used by :class:`ConfidenceRouter`.

    Parameters
    ----------
    target : float
        Precision to certify, in (0, 1).
    delta : float, default=0.05
        Error level (per tested tier: the router splits its ``delta``).
    error_rate : float, default=0.0
        Observed error rate of the accepted rows.

    Returns
    -------
    n : int or None
        None when ``error_rate >= 1 - target`` (no sample size suffices).

    Examples
    --------
    >>> from sklearn_llmconf.routing import required_calibration_size
    >>> required_calibration_size(0.99, delta=0.05)
    299
    >>> required_calibration_size(0.99, delta=0.05, error_rate=0.005)
    773
    """
    if not 0.0 < target < 1.0 or not 0.0 < delta < 1.0:
        raise ValueError("target and delta must lie in (0, 1).")
    alpha = 1.0 - target
    # 1 - 0.99 is 0.010000000000000009: compare with a tolerance.
    if error_rate >= alpha - 1e-12:
        return None

    def p_value(n):
        return binom.cdf(np.floor(error_rate * n), n, alpha)

    upper = 1024
    while p_value(upper) > delta:
        upper *= 2
        if upper > 2**30:  # pragma: no cover - error_rate a hair below 1-target
            return None
    for start in range(1, upper + 1, 2**16):
        n = np.arange(start, min(start + 2**16, upper + 1))
        hits = np.flatnonzero(p_value(n) <= delta)
        if len(hits):
            return int(n[hits[0]])
    return upper  # pragma: no cover - p_value(upper) <= delta was checked
