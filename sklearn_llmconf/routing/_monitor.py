"""RoutingMonitor: audit sampling and anytime-valid alarms on each tier's precision."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
)

from ..utils._warn import warn_external
from ._sequential import error_eprocess

__all__ = ["PrecisionAlarmWarning", "RoutingMonitor"]

# Error rates at which the confidence sequence for the precision is evaluated.
_GRID = np.unique(np.r_[np.geomspace(1e-4, 0.05, 60), np.linspace(0.05, 0.999, 96)])


class PrecisionAlarmWarning(UserWarning):
    """A tier's audited precision is below its target with high confidence."""


class RoutingMonitor:
    """Audit a deployed router and raise an alarm when a tier's precision drops.

    A :class:`ConfidenceRouter` certifies that the predictions at or above
    each tier's threshold reach the tier's target precision on data
    exchangeable with its calibration rows. The monitor checks that this
    still holds on live data. :meth:`audit` picks the rows whose true label
    must be collected: each row of the top tier (auto-accepted, nobody looks
    at it otherwise) with probability ``audit_fraction``, the rows of the
    other certified tiers (they go to a reviewer anyway) with probability
    ``review_fraction``. :meth:`update` takes the labels of those rows and,
    for each tier, updates a betting e-process against "precision >= target"
    (Waudby-Smith and Ramdas, 2024) and the confidence sequence it gives.

    A tier ``t`` certifies the rows of tier ``t`` or any tier above it, so its
    sequence uses the audited rows of those tiers, thinned (independently,
    seeded) to one common inclusion probability: the audited rows it sees are
    a uniform random sample of the rows it certifies.

    **Guarantee.** As long as every audited row's probability of being wrong,
    given the past, is at most ``1 - target``, the probability that any tier's
    alarm ever fires is at most ``delta`` (``delta / n_tiers`` per tier; Ville's
    inequality), whenever and however often the monitor is read. Rows labelled
    outside :meth:`audit` (complaints, spot checks) must not be passed to
    :meth:`update`: they are not a random sample.

    Parameters
    ----------
    router : ConfidenceRouter
        Fitted router being monitored.

    audit_fraction : float, default=0.05
        Probability that a row of the top tier is sent to review.

    review_fraction : float, default=1.0
        Probability that the label of a row of another certified tier (one a
        person reviews anyway) is fed back.

    delta : float, default=0.05
        Probability of a false alarm on some tier, over the whole deployment.

    random_state : int, RandomState instance or None, default=None
        Seeds the audit draws and the thinning.

    Attributes
    ----------
    tier_names_ : ndarray of str of shape (n_tiers,)
        Certified tiers, highest target first.

    targets_ : ndarray of shape (n_tiers,)

    inclusion_ : ndarray of shape (n_tiers,)
        Probability that a row of each tier is audited.

    n_selected_ : ndarray of int of shape (n_tiers,)
        Rows of each tier :meth:`audit` selected.

    n_labels_ : ndarray of int of shape (n_tiers,)
        Labels received for rows of each tier.

    n_audited_ : ndarray of int of shape (n_tiers,)
        Audited rows in each tier's sequence (after thinning).

    n_errors_ : ndarray of int of shape (n_tiers,)
        Wrong predictions among them.

    precision_upper_ : ndarray of shape (n_tiers,)
        Anytime-valid upper confidence bound (level ``1 - delta / n_tiers``)
        of each tier's precision; 1.0 before any evidence against it.

    alarm_ : ndarray of bool of shape (n_tiers,)
        Whether the bound has fallen below the target (once raised, stays).

    labels_to_alarm_ : ndarray of shape (n_tiers,)
        ``n_audited_`` when the alarm was raised; NaN if not raised.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_llmconf.routing import ConfidenceRouter, RoutingMonitor
    >>> X, y = make_classification(n_samples=3000, class_sep=2, random_state=0)
    >>> clf = LogisticRegression().fit(X[:1000], y[:1000])
    >>> router = ConfidenceRouter(FrozenEstimator(clf), tiers=[("accept", 0.9)]).fit(
    ...     X[1000:2000], y[1000:2000])
    >>> monitor = RoutingMonitor(router, audit_fraction=0.2, random_state=0)
    >>> d = router.decide(X[2000:])
    >>> audit = monitor.audit(d.tier)
    >>> _ = monitor.update(y[2000:][audit], d.label[audit], d.tier[audit])
    >>> bool(monitor.alarm_[0])
    False
    """

    def __init__(self, router, *, audit_fraction=0.05, review_fraction=1.0,
                 delta=0.05, random_state=None):
        check_is_fitted(router, "thresholds_")
        for name, value in (("audit_fraction", audit_fraction),
                            ("review_fraction", review_fraction)):
            if not isinstance(value, Real) or not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must lie in (0, 1], got {value!r}.")
        if not isinstance(delta, Real) or not 0.0 < delta < 1.0:
            raise ValueError(f"delta must lie in (0, 1), got {delta!r}.")
        self.router = router
        self.audit_fraction = audit_fraction
        self.review_fraction = review_fraction
        self.delta = delta
        self.random_state = random_state
        self._rng = check_random_state(random_state)
        self.tier_names_ = np.asarray(router.tier_names_[:-1]).astype(str)
        self.targets_ = np.asarray(router.targets_, dtype=float)
        k = len(self.targets_)
        self.inclusion_ = np.r_[audit_fraction, np.full(k - 1, review_fraction)]
        self.n_selected_ = np.zeros(k, dtype=int)
        self.n_labels_ = np.zeros(k, dtype=int)
        self.n_audited_ = np.zeros(k, dtype=int)
        self.n_errors_ = np.zeros(k, dtype=int)
        self.alarm_ = np.zeros(k, dtype=bool)
        self.labels_to_alarm_ = np.full(k, np.nan)
        # per tier: log-capital at its target; audited errors, in order
        self._log_wealth = np.zeros(k)
        self._errors = [[] for _ in range(k)]

    @property
    def level_(self):
        """Level of each tier's test: ``delta / n_tiers``."""
        return self.delta / len(self.targets_)

    def _tier_index(self, tiers):
        tiers = np.asarray(tiers).astype(str).ravel()
        index = np.full(len(tiers), -1)
        for t, name in enumerate(self.tier_names_):
            index[tiers == name] = t
        return index

    def audit(self, tiers):
        """Draw the rows whose true label must be collected.

        Parameters
        ----------
        tiers : array-like of str of shape (n_samples,)
            Tier of each routed row, from :meth:`ConfidenceRouter.route`.

        Returns
        -------
        audit : ndarray of bool of shape (n_samples,)
            True for the rows to label; never a row of the fallback tier.
        """
        index = self._tier_index(tiers)
        p = np.where(index >= 0, self.inclusion_[np.maximum(index, 0)], 0.0)
        chosen = self._rng.uniform(size=len(index)) < p
        self.n_selected_ += np.bincount(index[chosen], minlength=len(self.targets_))
        return chosen

    def update(self, y_true, y_pred, tiers):
        """Feed back the labels of audited rows; update the bounds and alarms.

        Parameters
        ----------
        y_true : array-like of shape (n_audited,)
            True labels of rows :meth:`audit` selected, in any order but each
            row once.
        y_pred : array-like of shape (n_audited,)
            The router's label for them, whatever their tier
            (``ConfidenceRouter.decide(X).label``).
        tiers : array-like of str of shape (n_audited,)

        Returns
        -------
        self : RoutingMonitor
        """
        y_true = np.asarray(y_true, dtype=object).ravel()
        y_pred = np.asarray(y_pred, dtype=object).ravel()
        check_consistent_length(y_true, y_pred, tiers)
        index = self._tier_index(tiers)
        if np.any(index < 0):
            raise ValueError(
                f"update takes rows of the certified tiers {self.tier_names_.tolist()}"
                " only (audited rows); got others."
            )
        got = self.n_labels_ + np.bincount(index, minlength=len(self.targets_))
        if np.any(got > self.n_selected_):
            raise ValueError(
                f"more labels per tier ({got.tolist()}) than rows audit() selected "
                f"({self.n_selected_.tolist()}): pass the audited rows only, once."
            )
        self.n_labels_ = got
        errors = y_true != y_pred
        for t in range(len(self.targets_)):
            self._update_tier(t, index, errors)
        return self

    def _update_tier(self, t, index, errors):
        """Thin the rows of tiers <= t to one inclusion probability; bet."""
        keep_p = self.inclusion_[:t + 1].min() / self.inclusion_[:t + 1]
        rows = index <= t
        u = self._rng.uniform(size=len(index))
        rows &= u < keep_p[np.minimum(index, t)]
        x = errors[rows]
        if not len(x):
            return
        m = 1.0 - self.targets_[t]
        lw = error_eprocess(x, m, n_prev=self.n_audited_[t],
                            errors_prev=self.n_errors_[t],
                            log_wealth_prev=self._log_wealth[t])
        self._log_wealth[t] = lw[-1]
        self._errors[t].append(x)
        bar = np.log(1.0 / self.level_)
        hits = np.flatnonzero(lw >= bar)
        if len(hits) and not self.alarm_[t]:
            self.alarm_[t] = True
            self.labels_to_alarm_[t] = self.n_audited_[t] + hits[0] + 1
            warn_external(
                f"Tier {str(self.tier_names_[t])!r}: its precision is below the target "
                f"{self.targets_[t]:g} (anytime-valid test at level "
                f"{self.level_:.3g}, after {int(self.labels_to_alarm_[t])} audited "
                "labels). Its certificate no longer holds: re-certify the router "
                "on fresh labels.",
                PrecisionAlarmWarning,
            )
        self.n_audited_[t] += len(x)
        self.n_errors_[t] += int(x.sum())

    @property
    def precision_upper_(self):
        """Anytime-valid upper bound of each tier's precision (see class doc)."""
        bar = np.log(1.0 / self.level_)
        upper = np.ones(len(self.targets_))
        for t, parts in enumerate(self._errors):
            if not parts:
                continue
            x = np.concatenate(parts)
            log_w = error_eprocess(np.broadcast_to(x, (len(_GRID), len(x))), _GRID)
            # Error rates rejected at some moment so far; the error rate's lower
            # bound is the grid point just below the smallest one not rejected.
            rejected = log_w.max(axis=1) >= bar
            first_kept = np.argmax(~rejected) if (~rejected).any() else len(_GRID)
            upper[t] = 1.0 - (_GRID[first_kept - 1] if first_kept > 0 else 0.0)
        return upper

    def summary(self):
        """Per tier: audited rows, errors, observed precision, bound, alarm.

        Returns
        -------
        summary : dict of str to dict
        """
        out = {}
        for t, name in enumerate(self.tier_names_):
            n, k = int(self.n_audited_[t]), int(self.n_errors_[t])
            out[str(name)] = {
                "target": float(self.targets_[t]),
                "n_selected": int(self.n_selected_[t]),
                "n_labels": int(self.n_labels_[t]),
                "n_audited": n,
                "precision": (n - k) / n if n else float("nan"),
                "precision_upper": float(self.precision_upper_[t]),
                "alarm": bool(self.alarm_[t]),
            }
        return out
