"""Per-tier share and precision of routed predictions, with lower bounds."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_consistent_length, column_or_1d

from ._stats import precision_lower_bound

__all__ = ["routing_report"]


def routing_report(y_true, y_pred, tiers, *, tier_names=None, confidence_level=0.95):
    """Share of rows, observed precision and its lower bound for each tier.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.

    y_pred : array-like of shape (n_samples,)
        Predicted label of every row whatever its tier (None for a row that
        could not be scored: it counts as wrong).

    tiers : array-like of str of shape (n_samples,)
        Tier of each row, e.g. from :meth:`ConfidenceRouter.route`.

    tier_names : sequence of str, default=None
        Tiers from the most trusted to the least; the cumulative figures add
        up the tiers in this order. None: the sorted distinct tiers.

    confidence_level : float, default=0.95
        Level of the one-sided Clopper-Pearson lower bounds
        (:func:`scipy.stats.beta` quantiles, as in
        :func:`scipy.stats.binomtest`).

    Returns
    -------
    report : dict of str to dict
        For each tier name: ``n`` (rows), ``share`` (of all rows),
        ``precision`` (share of its predictions that are correct, NaN when
        empty), ``precision_lower`` (its lower bound), and the same for the
        rows in this tier or a more trusted one: ``cumulative_share``,
        ``cumulative_precision``, ``cumulative_precision_lower`` -- the
        quantity a :class:`ConfidenceRouter` threshold certifies.

    Examples
    --------
    >>> from sklearn_llmconf.routing import routing_report
    >>> report = routing_report([0, 1, 1, 0], [0, 1, 0, 0],
    ...                         ["accept", "accept", "review", "review"],
    ...                         tier_names=["accept", "review"])
    >>> report["review"]["precision"], report["review"]["cumulative_precision"]
    (0.5, 0.75)
    """
    y_true = column_or_1d(y_true)
    y_pred = np.asarray(y_pred, dtype=object).ravel()
    tiers = column_or_1d(tiers).astype(str)
    check_consistent_length(y_true, y_pred, tiers)
    if tier_names is None:
        tier_names = np.unique(tiers)
    unknown = set(np.unique(tiers)) - set(map(str, tier_names))
    if unknown:
        raise ValueError(f"tiers {sorted(map(str, unknown))} are not in tier_names.")
    correct = np.array([p is not None and p == t for p, t in zip(y_pred, y_true)],
                       dtype=bool)
    n_total = max(len(y_true), 1)
    report, seen = {}, np.zeros(len(tiers), dtype=bool)
    for name in map(str, tier_names):
        rows = tiers == name
        seen |= rows
        entry = {}
        for prefix, mask in (("", rows), ("cumulative_", seen)):
            n, k = int(mask.sum()), int(correct[mask].sum())
            entry[prefix + "share"] = n / n_total
            entry[prefix + "precision"] = k / n if n else float("nan")
            entry[prefix + "precision_lower"] = float(
                precision_lower_bound(k, n, confidence_level)
            )
            if not prefix:
                entry["n"] = n
        report[name] = entry
    return report


def label_or_tier(answered, labels, tiers, classes) -> np.ndarray:
    """Per row the label where ``answered``, else the row's tier name.

    A string array when the classes are strings; otherwise an object array
    mixing labels and tier names (what ``predict`` of the routers returns).
    """
    out = np.where(answered, labels, np.asarray(tiers, dtype=object))
    if all(isinstance(c, str) for c in classes):
        return out.astype(str)
    return out.astype(object)
