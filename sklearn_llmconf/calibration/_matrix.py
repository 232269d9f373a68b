"""Regularised matrix (Dirichlet-style) calibration of per-class log-scores.

Temperature scaling with a bias rescales every class's log-probability by the
same ``1 / T`` and shifts it: ``k`` parameters for ``k`` classes. With many
classes the scores hold more than that: the model may confuse two particular
labels, or under-use one label word's score. Matrix calibration (Kull et al.
2019, "Dirichlet calibration") fits a full affine map of the log-probabilities

``z = a * (log p + offset) + V log p + d``,   calibrated ``softmax(z)``

with ``log p`` the row's log-probabilities (clipped at ``log 1e-12``),
``offset`` the label-free batch prior correction of the calibration rows
(as in :mod:`sklearn_llmconf.calibration._temperature`), ``a = 1 / T`` free and the
``k x k`` matrix ``V`` and the bias ``d`` pulled toward zero by an L2 penalty
``strength / (2 n) * (||V||^2 + ||d||^2)``. ``strength`` counts pseudo-rows
like ``bias_shrinkage``: a very large one leaves the temperature and the
label-free correction, a small one the full matrix. :func:`fit_matrix`
returns the map folded into ``W = a I + V`` and ``c = a * offset + d``, so the
calibrated log-probabilities are ``log_softmax(clip(log p) @ W.T + c)``.

:func:`cv_matrix_losses` gives the K-fold log loss of every strength of
:data:`MATRIX_GRID`, which in-fit calibration
(:mod:`sklearn_llmconf.calibration._infit`) compares with temperature +
shrunk bias on the same folds.

References
----------
M. Kull, M. Perello-Nieto, M. Kängsepp, T. Silva Filho, H. Song, P. Flach.
"Beyond temperature scaling: Obtaining well-calibrated multiclass
probabilities with Dirichlet calibration", NeurIPS 2019.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, logsumexp
from threadpoolctl import threadpool_limits

from ._temperature import (
    PROBA_EPS,
    _fit_temperature,
    _mean_log_loss,
    choose_shrinkage,
    label_free_offset,
)

__all__ = [
    "MATRIX_GRID",
    "apply_matrix",
    "as_log_probs",
    "choose_calibrator",
    "cv_matrix_losses",
    "fit_matrix",
]

#: Candidate penalty strengths (pseudo-rows) of the matrix and bias.
MATRIX_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
#: The matrix is kept only if its cross-validated log loss is this much lower
#: (relative) than temperature + shrunk bias: where they tie, the simpler wins.
MATRIX_MARGIN = 0.01
#: Strength used by ``"matrix"`` when there are too few rows to cross-validate.
FALLBACK_STRENGTH = 30.0
_LOG_FLOOR = float(np.log(PROBA_EPS))
_MIN_CV_ROWS = 20
_N_FOLDS = 5


def as_log_probs(logits):
    """Row log-probabilities ``(n, k)`` of logits, clipped at ``log 1e-12``.

    1-D binary log-odds become the two classes' log-probabilities.
    """
    logits = np.asarray(logits, dtype=float)
    if logits.ndim == 1:
        logits = np.column_stack([np.zeros_like(logits), logits])
    return np.maximum(log_softmax(logits, axis=1), _LOG_FLOOR)


def _objective(log_p, y_idx, w, offset, lam):
    n, k = log_p.shape
    shifted = log_p + offset
    onehot = np.zeros_like(log_p)
    onehot[np.arange(n), y_idx] = 1.0

    def fun(theta):
        a, V, d = theta[0], theta[1:1 + k * k].reshape(k, k), theta[1 + k * k:]
        z = a * shifted + log_p @ V.T + d
        lse = logsumexp(z, axis=1)
        loss = np.dot(w, lse - z[np.arange(n), y_idx])
        loss += 0.5 * lam * (np.sum(V * V) + np.dot(d, d))
        r = (np.exp(z - lse[:, None]) - onehot) * w[:, None]
        grad = np.concatenate([
            [np.sum(r * shifted)],
            (r.T @ log_p + lam * V).ravel(),
            r.sum(axis=0) + lam * d,
        ])
        return loss, grad

    return fun


def fit_matrix(log_p, y_idx, strength, sample_weight=None, *, init=None):
    """Fit the regularised affine map of the log-probabilities.

    Parameters
    ----------
    log_p : ndarray of shape (n, k)
        Clipped log-probabilities of the calibration rows (:func:`as_log_probs`).
    y_idx : ndarray of int of shape (n,)
    strength : float
        Penalty strength in pseudo-rows (see the module docstring).
    sample_weight : ndarray of shape (n,) or None
    init : ndarray or None, default=None
        Starting parameters (the ``theta`` of an earlier fit), e.g. the fit at
        the next stronger penalty; None starts from the identity map.

    Returns
    -------
    matrix : ndarray of shape (k, k)
        ``W``; the calibrated logits are ``log_p @ W.T + bias``.
    bias : ndarray of shape (k,)
    theta : ndarray
        The fitted parameters ``(a, V, d)``, for ``init``.
    """
    n, k = log_p.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    n_eff = w.sum()
    w = w / n_eff
    offset = label_free_offset(log_p, w)
    fun = _objective(log_p, np.asarray(y_idx), w, offset, strength / n_eff)
    if init is None:
        init = np.zeros(1 + k * k + k)
        init[0] = 1.0
    with threadpool_limits(limits=1, user_api="blas"):
        res = minimize(fun, init, jac=True, method="L-BFGS-B",
                       options={"maxiter": 300, "ftol": 1e-8, "gtol": 1e-6})
    a = res.x[0]
    V = res.x[1:1 + k * k].reshape(k, k)
    d = res.x[1 + k * k:]
    return a * np.eye(k) + V, a * offset + d, res.x


def apply_matrix(log_p, matrix, bias):
    """Calibrated log-probabilities ``log_softmax(log_p @ W.T + c)``."""
    return log_softmax(log_p @ matrix.T + bias, axis=1)


def mean_log_loss(log_q, y_idx):
    """Mean negative log-likelihood of calibrated log-probabilities."""
    return float(-np.mean(log_q[np.arange(len(y_idx)), y_idx]))


def cv_matrix_losses(log_p, y_idx, folds):
    """K-fold mean log loss of each strength of :data:`MATRIX_GRID`.

    Parameters
    ----------
    log_p : ndarray of shape (n, k)
    y_idx : ndarray of int of shape (n,)
    folds : ndarray of int of shape (n,)
        Fold number of each row.

    Returns
    -------
    losses : ndarray of shape (len(MATRIX_GRID),)
        Held-out log loss summed over the rows, divided by ``n``.
    """
    losses = np.zeros(len(MATRIX_GRID))
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        theta = None  # strongest penalty first, each fit starting from the last
        for j in np.argsort(MATRIX_GRID)[::-1]:
            W, c, theta = fit_matrix(log_p[train], y_idx[train], MATRIX_GRID[j],
                                     init=theta)
            q = apply_matrix(log_p[test], W, c)
            losses[j] += mean_log_loss(q, y_idx[test]) * test.sum()
    return losses / len(y_idx)


def choose_calibrator(logits, y_idx, method="auto", random_state=0):
    """Temperature + shrunk bias or the matrix, by 5-fold log loss.

    Both are fitted and scored on the same folds of the calibration rows (no
    model call: the scores are there). The temperature fit chooses its own
    bias shrinkage inside each fold, as it does on all rows; the matrix's
    strength is the best of :data:`MATRIX_GRID`.

    Parameters
    ----------
    logits : ndarray of shape (n,) or (n, k)
        Finite calibration logits (1-D binary log-odds).
    y_idx : ndarray of int of shape (n,)
    method : {"auto", "temperature", "matrix"}, default="auto"
        ``"auto"`` keeps the temperature unless the matrix's cross-validated
        log loss is lower by more than :data:`MATRIX_MARGIN` (relative).
    random_state : int, default=0
        Seeds the folds.

    Returns
    -------
    chosen : {"temperature", "matrix"}
    strength : float or None
        The matrix's penalty strength (None for the temperature).
    """
    if method == "temperature":
        return "temperature", None
    y_idx = np.asarray(y_idx)
    n = len(y_idx)
    if n < _MIN_CV_ROWS:
        return ("matrix", FALLBACK_STRENGTH) if method == "matrix" else (
            "temperature", None)
    folds = np.random.default_rng(random_state).permutation(n) % _N_FOLDS
    losses = cv_matrix_losses(as_log_probs(logits), y_idx, folds)
    strength = float(np.asarray(MATRIX_GRID)[np.argmin(losses)])
    if method == "matrix":
        return "matrix", strength
    # The bias shrinkage is chosen once on all rows (as the final fit does):
    # slightly optimistic for the temperature, which the tie rule favours too.
    with threadpool_limits(limits=1, user_api="blas"):
        shrinkage = choose_shrinkage(logits, y_idx)
        temperature_loss = 0.0
        for f in range(_N_FOLDS):
            train, test = folds != f, folds == f
            t, b = _fit_temperature(logits[train], y_idx[train], None, True,
                                    shrinkage)
            temperature_loss += (_mean_log_loss(logits[test], y_idx[test], t, b)
                                 * test.sum())
    temperature_loss /= n
    if losses.min() < temperature_loss * (1 - MATRIX_MARGIN):
        return "matrix", strength
    return "temperature", None
