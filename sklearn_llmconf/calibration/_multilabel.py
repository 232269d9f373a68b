"""Per-label calibration of multi-label log-odds, shrunk toward a shared one.

Each label ``j`` of a multi-label :class:`~sklearn_llmconf.LLMClassifier` has
a raw log-odds ``s_j`` (:mod:`sklearn_llmconf.scoring._multilabel`). ``fit``
turns it into a probability with a slope (the inverse of a temperature) and a
bias of its own, ``P(j) = sigmoid(a_j s_j + b_j)``, fitted on the labelled
calibration texts by penalised log loss::

    sum_ij logloss(y_ij, sigmoid(a_j s_ij + b_j))
        + lam * sum_j ((a_j - a)^2 + (b_j - b)^2),    a_j >= 0, a >= 0

The shared slope and bias ``(a, b)`` are fitted jointly: a label with many
positives and negatives moves away from them where its data say so, a label
with few positives (little curvature in its log loss) stays close to them —
the Gaussian prior of a hierarchical logistic model. ``lam`` is chosen by
5-fold cross-validated log loss over a grid (``shrinkage="auto"``); its
largest value is one shared slope and bias for all labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from ..scoring._multilabel import label_log_odds
from ..utils._warn import warn_external

__all__ = [
    "SHRINKAGE_GRID",
    "MultiLabelCorrection",
    "fit_label_calibration",
    "multilabel_response",
]

#: The penalties compared by ``shrinkage="auto"`` (in units of calibration rows).
SHRINKAGE_GRID = (0.1, 1.0, 10.0, 100.0, 1e6)

_MIN_ROWS = 10

#: Calibrated log-odds are clipped to +-this (probabilities within 1e-13 of 0
#: and 1, never equal to them).
LOG_ODDS_BOUND = 30.0


def _loss_grad(params, s, Y, lam):
    k = s.shape[1]
    a, b, A, B = params[:k], params[k:2 * k], params[2 * k], params[2 * k + 1]
    z = s * a + b
    loss = -(Y * log_expit(z) + (1 - Y) * log_expit(-z)).sum()
    r = expit(z) - Y
    ga = (r * s).sum(axis=0) + 2 * lam * (a - A)
    gb = r.sum(axis=0) + 2 * lam * (b - B)
    loss += lam * (((a - A) ** 2).sum() + ((b - B) ** 2).sum())
    gA = -2 * lam * (a - A).sum()
    gB = -2 * lam * (b - B).sum()
    # a tiny ridge on the shared bias keeps a label set without positives finite
    loss += 1e-4 * (B ** 2 + (b ** 2).sum())
    gb = gb + 2e-4 * b
    gB = gB + 2e-4 * B
    return loss, np.concatenate([ga, gb, [gA, gB]])


def _fit(s, Y, lam):
    k = s.shape[1]
    x0 = np.concatenate([np.ones(k), np.zeros(k), [1.0, 0.0]])
    bounds = [(0, None)] * k + [(None, None)] * k + [(0, None), (None, None)]
    res = minimize(_loss_grad, x0, args=(s, Y, lam), jac=True, method="L-BFGS-B",
                   bounds=bounds, options={"maxiter": 500})
    p = res.x
    return p[:k], p[k:2 * k], p[2 * k], p[2 * k + 1]


def _cv_loss(s, Y, lam, n_splits=5, seed=0):
    rng = np.random.RandomState(seed)
    folds = rng.permutation(len(s)) % n_splits
    total = 0.0
    for f in range(n_splits):
        train, test = folds != f, folds == f
        a, b, _, _ = _fit(s[train], Y[train], lam)
        z = s[test] * a + b
        total -= (Y[test] * log_expit(z) + (1 - Y[test]) * log_expit(-z)).sum()
    return total / Y.size


def fit_label_calibration(log_odds, Y, shrinkage="auto"):
    """Slope and bias of every label, shrunk toward shared ones.

    Parameters
    ----------
    log_odds : ndarray of shape (n_samples, n_labels)
        Raw log-odds of the calibration rows (NaN rows failed, left out).
    Y : ndarray of shape (n_samples, n_labels)
        Their indicator matrix.
    shrinkage : float or "auto", default="auto"
        The penalty ``lam``; "auto" takes the value of :data:`SHRINKAGE_GRID`
        with the lowest 5-fold cross-validated log loss.

    Returns
    -------
    slope, bias : ndarray of shape (n_labels,)
        Calibrated log-odds are ``slope * log_odds + bias``.
    shrinkage : float
        The penalty used (None with too few rows).
    n_used : int

    Notes
    -----
    Fewer than 10 scorable rows: a warning and the raw log-odds (slope 1,
    bias 0).
    """
    s = np.asarray(log_odds, dtype=float)
    Y = np.asarray(Y, dtype=float)
    ok = np.isfinite(s).all(axis=1)
    s, Y = s[ok], Y[ok]
    k = Y.shape[1]
    if len(s) < _MIN_ROWS:
        warn_external(
            f"calibration: only {len(s)} training text(s) that are not "
            f"demonstrations could be scored (at least {_MIN_ROWS} are needed to "
            "fit a slope and a bias per label); the raw log-odds are used. Pass "
            "more labelled texts, or calibration=None."
        )
        return np.ones(k), np.zeros(k), None, len(s)
    if shrinkage == "auto":
        losses = [_cv_loss(s, Y, lam) for lam in SHRINKAGE_GRID]
        shrinkage = SHRINKAGE_GRID[int(np.argmin(losses))]
    slope, bias, _, _ = _fit(s, Y, float(shrinkage))
    return slope, bias, float(shrinkage), len(s)


@dataclass(frozen=True)
class MultiLabelCorrection:
    """Scores of the scored strings to calibrated per-label log-odds.

    Calibrated log-odds are clipped to ``[-30, 30]``.

    ``apply`` has the signature of
    :meth:`~sklearn_llmconf.calibration._infit.ScoreCorrection.apply`, so the
    classifier scores both kinds of targets the same way.
    """

    design: str
    n_labels: int
    slope: np.ndarray | None = None
    bias: np.ndarray | None = None

    def apply(self, log_probs, failed, n_classes):
        """Per-label log-odds (n, n_labels); NaN rows stay NaN."""
        out = label_log_odds(self.design, log_probs, self.n_labels)
        if self.slope is not None:
            out = out * self.slope + self.bias
        # a probability of exactly 0 or 1 would be an infinite log loss
        return np.clip(out, -LOG_ODDS_BOUND, LOG_ODDS_BOUND)


def multilabel_response(log_odds, method, dtype):
    """The output of a response ``method`` from per-label log-odds.

    Parameters
    ----------
    log_odds : ndarray of shape (n_samples, n_labels)
    method : {"predict", "predict_proba", "predict_log_proba", "decision_function"}
    dtype : dtype
        The dtype of the indicator matrix seen in ``fit`` (``predict``'s).

    Returns
    -------
    out : ndarray of shape (n_samples, n_labels)
        ``predict``: 1 where the probability is above 0.5;
        ``predict_proba``: independent probabilities (rows need not sum to
        1); ``predict_log_proba``: their logs; ``decision_function``: the
        log-odds.
    """
    if method == "predict":
        bad = ~np.isfinite(log_odds).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} rows have no score (on_error='nan'); use "
                "predict_proba and handle the NaN rows, or set on_error='warn'."
            )
        return (log_odds > 0).astype(dtype)
    if method == "predict_proba":
        return expit(log_odds)
    if method == "predict_log_proba":
        return log_expit(log_odds)
    return np.array(log_odds, dtype=float)
