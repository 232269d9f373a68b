"""DriftMonitor: a label-free alarm when live confidences drift from calibration."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils import check_random_state

from ..utils._warn import warn_external
from ._sequential import conformal_p_values, jumper_martingale

__all__ = ["DriftAlarmWarning", "DriftMonitor"]

# Live scores ranked against each other per block (a block x block comparison).
_BLOCK = 1024


class DriftAlarmWarning(UserWarning):
    """Live confidences are not exchangeable with the calibration ones."""


class DriftMonitor:
    """Sequential test that live confidences are exchangeable with calibration ones.

    Each live confidence (largest class probability) is ranked among the
    router's calibration confidences and the live ones before it; under
    exchangeability these conformal p-values are independent and uniform, and
    the simple jumper conformal test martingale built on them (Vovk et al.,
    2021) is a nonnegative martingale with initial value 1. The alarm fires
    when it reaches ``1 / alpha``: by Ville's inequality the probability of a
    false alarm, over the whole (unbounded) stream, is at most ``alpha``.

    No label is needed: a shift of the inputs (a new product line, a new spam
    campaign) or of the model behind the router usually moves the confidences,
    and the alarm says so before any audited label could. It does not say
    that the precision dropped (a shift towards easy rows alarms too, and a
    shift that keeps the confidences as they were goes unseen): the
    :class:`RoutingMonitor` on audited labels says that.

    Parameters
    ----------
    router : ConfidenceRouter or array-like of shape (n_calibration,)
        A fitted router (its ``calibration_confidence_``) or the calibration
        confidences themselves.

    alpha : float, default=0.01
        False alarm probability over the whole stream.

    jump : float, default=0.01
        Share of the capital moved between the jumper's bets at each step;
        larger follows a shift faster but grows more slowly on a lasting one.

    random_state : int, RandomState instance or None, default=None
        Tie-breaking between equal confidences.

    Attributes
    ----------
    n_seen_ : int
        Live confidences tested.

    log_martingale_ : float
        Natural log of the martingale now.

    max_log_martingale_ : float
        Its largest value so far.

    alarm_ : bool
        Whether the martingale has reached ``1 / alpha`` (once raised, stays).

    rows_to_alarm_ : int or None
        ``n_seen_`` when the alarm was raised.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_llmconf.routing import DriftMonitor
    >>> rng = np.random.default_rng(0)
    >>> drift = DriftMonitor(rng.uniform(0.5, 1, 500), alpha=0.01, random_state=0)
    >>> bool(drift.update(rng.uniform(0.5, 1, 300)).alarm_)
    False
    >>> bool(drift.update(rng.uniform(0.5, 0.8, 300)).alarm_)
    True
    """

    def __init__(self, router, *, alpha=0.01, jump=0.01, random_state=None):
        if not isinstance(alpha, Real) or not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}.")
        if not isinstance(jump, Real) or not 0.0 <= jump <= 1.0:
            raise ValueError(f"jump must lie in [0, 1], got {jump!r}.")
        self.router = router
        self.alpha = alpha
        self.jump = jump
        self.random_state = random_state
        reference = getattr(router, "calibration_confidence_", router)
        reference = np.asarray(reference, dtype=float).ravel()
        reference = reference[np.isfinite(reference)]
        if len(reference) < 2:
            raise ValueError(
                "DriftMonitor needs the calibration confidences of a fitted "
                f"router (at least 2); got {len(reference)}."
            )
        self._reference = np.sort(reference)
        self._rng = check_random_state(random_state)
        self._gen = np.random.default_rng(self._rng.randint(2**31 - 1))
        self._state = None
        self.n_seen_ = 0
        self.log_martingale_ = 0.0
        self.max_log_martingale_ = 0.0
        self.alarm_ = False
        self.rows_to_alarm_ = None

    def update(self, confidence):
        """Test a batch of live confidences, in arrival order.

        Parameters
        ----------
        confidence : array-like of shape (n_samples,) or (n_samples, n_classes)
            Confidences, or probabilities (their row maximum is taken). Rows
            with a NaN (failed rows) are skipped.

        Returns
        -------
        self : DriftMonitor
        """
        c = np.asarray(confidence, dtype=float)
        if c.ndim == 2:
            with np.errstate(invalid="ignore"):
                c = np.where(np.isfinite(c).all(axis=1), c.max(axis=1), np.nan)
        c = c.ravel()
        c = c[np.isfinite(c)]
        for start in range(0, len(c), _BLOCK):
            self._update_block(c[start:start + _BLOCK])
        return self

    def _update_block(self, block):
        p = conformal_p_values(self._reference, block, self._gen)
        log_v, self._state = jumper_martingale(p, jump=self.jump, state=self._state)
        bar = np.log(1.0 / self.alpha)
        hits = np.flatnonzero(log_v >= bar)
        if len(hits) and not self.alarm_:
            self.alarm_ = True
            self.rows_to_alarm_ = self.n_seen_ + int(hits[0]) + 1
            warn_external(
                "Live confidences are no longer exchangeable with the calibration "
                f"ones (conformal test martingale reached 1/{self.alpha:g} after "
                f"{self.rows_to_alarm_} rows; false alarm probability <= "
                f"{self.alpha:g}). Audit more rows and re-certify if the "
                "precision dropped.",
                DriftAlarmWarning,
            )
        self.n_seen_ += len(block)
        self.log_martingale_ = float(log_v[-1])
        self.max_log_martingale_ = max(self.max_log_martingale_, float(log_v.max()))
        self._reference = np.sort(np.r_[self._reference, block])
