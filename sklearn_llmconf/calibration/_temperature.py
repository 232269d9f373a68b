"""The temperature / bias fit behind :class:`TemperatureScaler` and in-fit calibration.

Calibrated logits are ``z / T + b``. With a bias, ``b`` is fitted with an L2
penalty that pulls it toward the *label-free* bias, the batch prior correction
of the calibration scores (Zhou et al. 2024): with ``prior`` the mean predicted
distribution of the calibration rows, the fitted logits are

``(z - log prior) / T + d``,   penalty ``shrinkage / (2 n) * ||d||^2``

so ``shrinkage = 0`` is the unpenalised temperature + bias fit, and a large
``shrinkage`` leaves the label-free correction with a fitted temperature. In
units of the mean log loss the penalty is ``lambda = shrinkage / n``: the
curvature of the loss in one class's bias is about ``1 / k`` per row, so
``shrinkage`` acts as about ``shrinkage / k`` pseudo-rows per class against the
``n / k`` real ones. ``"auto"`` picks it from :data:`SHRINKAGE_GRID` by
cross-validated log loss on the calibration rows (no model call: the scores
are already there).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit, logsumexp, softmax
from threadpoolctl import threadpool_limits

from ..utils._warn import warn_external

# log(0) from predict_proba is clipped here; same order as sklearn's eps (1e-12).
PROBA_EPS = 1e-12
# Bounds on log T: T in [4.5e-5, 2.2e4] covers every useful scale while keeping
# the optimiser away from overflow on separable data.
_LOG_T_BOUNDS = (-10.0, 10.0)
#: Candidate penalty strengths (pseudo-rows, see the module docstring) for "auto".
SHRINKAGE_GRID = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)
# Below this many calibration rows, "auto" does not cross-validate.
_MIN_CV_ROWS = 20
_N_FOLDS = 5
# "auto" cross-validates on a subsample of at most this many rows.
_MAX_CV_ROWS = 1000
#: Strength used by "auto" when there are too few rows to cross-validate.
FALLBACK_SHRINKAGE = 30.0


def to_logits(raw, method_name, n_classes):
    """Turn ``decision_function`` / ``predict_proba`` output into logits.

    Binary: 1-D log-odds of the second class. Multiclass: ``(n, k)`` log-scores.
    Non-finite rows (failed rows of an ``on_error="nan"`` classifier) are kept
    as they are; the caller decides what to do with them.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if method_name == "predict_proba":
        if raw.ndim != 2 or raw.shape[1] != n_classes:
            raise ValueError(
                f"predict_proba returned shape {raw.shape}; expected "
                f"(n_samples, {n_classes})."
            )
        with np.errstate(invalid="ignore"):
            logits = np.log(np.clip(raw, PROBA_EPS, 1.0))
        if n_classes == 2:
            logits = logits[:, 1] - logits[:, 0]
        return logits
    if n_classes == 2:
        if raw.ndim == 2 and raw.shape[1] == 1:
            return raw.ravel()
        if raw.ndim == 2 and raw.shape[1] == 2:
            # per-class scores: the log-odds is their difference
            return raw[:, 1] - raw[:, 0]
        if raw.ndim == 1:
            return raw
        raise ValueError(
            f"decision_function returned shape {raw.shape} for a binary "
            "problem; expected (n_samples,) log-odds of classes_[1]."
        )
    if raw.ndim != 2 or raw.shape[1] != n_classes:
        raise ValueError(
            f"decision_function returned shape {raw.shape}; expected "
            f"(n_samples, {n_classes}) per-class log-scores."
        )
    return raw


def scale_logits(logits, temperature, bias):
    """``logits / T + b``: the temperature and bias of every calibrator here."""
    return logits / temperature + bias


def logits_to_proba(z):
    """Probabilities of 1-D log-odds or ``(n, k)`` logits (NaN rows stay NaN)."""
    if z.ndim == 1:
        p1 = expit(z)
        return np.column_stack([1.0 - p1, p1])
    return softmax(z, axis=1)


def label_free_offset(logits, sample_weight=None):
    """``-log prior`` of the batch prior correction (zero-sum for multiclass).

    ``prior`` is the mean predicted distribution of the rows; adding the
    offset to every row divides it out (Zhou et al. 2024).
    """
    proba = np.average(logits_to_proba(logits), axis=0, weights=sample_weight)
    proba = np.clip(proba, PROBA_EPS, None)
    log_prior = np.log(proba)
    if logits.ndim == 1:
        return float(log_prior[0] - log_prior[1])
    return log_prior.mean() - log_prior


def _loss_grad(logits, y_idx, w, fit_bias, offset, lam):
    """Penalised mean log loss of ``(z + offset) / T + d`` and its gradient."""
    n = logits.shape[0]
    binary = logits.ndim == 1
    shifted = logits + offset
    if binary:
        y = (y_idx == 1).astype(float)

        def fun(theta):
            inv_t = np.exp(-theta[0])
            d = theta[1] if fit_bias else 0.0
            z = shifted * inv_t + d
            # -log p(y|z) = log(1 + e^z) - y z
            loss = -np.dot(w, y * log_expit(z) + (1 - y) * log_expit(-z))
            r = w * (expit(z) - y)
            grad = [-np.dot(r, shifted) * inv_t]
            if fit_bias:
                loss += 0.5 * lam * d**2
                grad.append(r.sum() + lam * d)
            return loss, np.asarray(grad)

        return fun
    onehot = np.zeros_like(shifted)
    onehot[np.arange(n), y_idx] = 1.0

    def fun(theta):
        inv_t = np.exp(-theta[0])
        # k-1 free parameters, the last one fixed so that the bias sums to 0
        d = np.append(theta[1:], -theta[1:].sum()) if fit_bias else 0.0
        z = shifted * inv_t + d
        lse = logsumexp(z, axis=1)
        loss = np.dot(w, lse - z[np.arange(n), y_idx])
        r = (np.exp(z - lse[:, None]) - onehot) * w[:, None]
        grad = [-np.sum(r * shifted) * inv_t]
        if fit_bias:
            g_d = r.sum(axis=0) + lam * d
            loss += 0.5 * lam * np.dot(d, d)
            grad.extend(g_d[:-1] - g_d[-1])
        return loss, np.asarray(grad)

    return fun


def _fit_once(logits, y_idx, w, fit_bias, offset, lam):
    binary = logits.ndim == 1
    if not binary:
        # shift rows for numerical range; softmax(L/T + b) is unchanged
        logits = logits - logits.max(axis=1, keepdims=True)
    n_params = 1 + (0 if not fit_bias else 1 if binary else logits.shape[1] - 1)
    fun = _loss_grad(logits, y_idx, w, fit_bias, offset, lam)
    bounds = [_LOG_T_BOUNDS] + [(None, None)] * (n_params - 1)
    res = minimize(fun, np.zeros(n_params), jac=True, method="L-BFGS-B",
                   bounds=bounds)
    if not res.success:  # pragma: no cover - L-BFGS-B rarely fails here
        warn_external(f"Temperature scaling did not converge: {res.message}",
                      RuntimeWarning)
    temperature = float(np.exp(res.x[0]))
    if binary:
        d = float(res.x[1]) if fit_bias else 0.0
    else:
        d = np.append(res.x[1:], -res.x[1:].sum()) if fit_bias else 0.0
    return temperature, offset / temperature + d


def _mean_log_loss(logits, y_idx, temperature, bias):
    z = logits / temperature + bias
    if z.ndim == 1:
        y = y_idx == 1
        return -np.mean(np.where(y, log_expit(z), log_expit(-z)))
    lse = logsumexp(z, axis=1)
    return np.mean(lse - z[np.arange(len(z)), y_idx])


def choose_shrinkage(logits, y_idx, sample_weight=None, random_state=0):
    """Penalty strength from :data:`SHRINKAGE_GRID` by K-fold log loss.

    With fewer than 20 rows there is nothing to cross-validate:
    :data:`FALLBACK_SHRINKAGE` is returned.
    """
    n = logits.shape[0]
    if n < _MIN_CV_ROWS:
        return FALLBACK_SHRINKAGE
    if n > _MAX_CV_ROWS:
        # The strength is in pseudo-rows, which a subsample estimates as well.
        rows = np.random.default_rng(random_state).choice(n, _MAX_CV_ROWS,
                                                          replace=False)
        logits, y_idx = logits[rows], y_idx[rows]
        sample_weight = None if sample_weight is None else sample_weight[rows]
        n = _MAX_CV_ROWS
    folds = np.random.default_rng(random_state).permutation(n) % _N_FOLDS
    losses = np.zeros(len(SHRINKAGE_GRID))
    for f in range(_N_FOLDS):
        train, test = folds != f, folds == f
        sw = None if sample_weight is None else sample_weight[train]
        for j, s in enumerate(SHRINKAGE_GRID):
            t, b = _fit_temperature(logits[train], y_idx[train], sw, True, s)
            losses[j] += _mean_log_loss(logits[test], y_idx[test], t, b)
    # The strongest penalty within 0.5 % of the best: prefer the simpler model.
    ok = losses <= losses.min() * 1.005
    return float(np.asarray(SHRINKAGE_GRID)[ok].max())


def fit_temperature(logits, y_idx, sample_weight, fit_bias, *, shrinkage=0.0):
    """Minimise the (weighted) log loss over log T and, optionally, the bias.

    Parameters
    ----------
    logits : ndarray of shape (n,) or (n, k)
        Finite logits of the calibration rows.
    y_idx : ndarray of int of shape (n,)
        Class index of each row.
    sample_weight : ndarray of shape (n,) or None
    fit_bias : bool
    shrinkage : float or "auto", default=0.0
        L2 penalty strength on the bias' distance from the label-free bias (see
        the module docstring); ``"auto"`` chooses it by cross-validation.

    Returns
    -------
    temperature : float
    bias : float or ndarray of shape (k,)
        Total bias of ``z / T + bias`` (a float for binary 1-D logits, a zero-sum
        vector for multiclass).
    """
    # These are tiny problems: extra BLAS threads only spin, and on a loaded
    # machine made each L-BFGS step ~20x slower.
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_temperature(logits, y_idx, sample_weight, fit_bias, shrinkage)


def _fit_temperature(logits, y_idx, sample_weight, fit_bias, shrinkage):
    n = logits.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    if shrinkage == "auto":
        shrinkage = choose_shrinkage(logits, y_idx, w) if fit_bias else 0.0
    # Weights count as repeated rows: the penalty is per (weighted) row.
    n_eff = w.sum()
    w = w / n_eff
    if fit_bias and shrinkage > 0:
        offset = label_free_offset(logits, w)
    else:
        offset = 0.0 if logits.ndim == 1 else np.zeros(logits.shape[1])
    return _fit_once(logits, y_idx, w, fit_bias, offset, shrinkage / n_eff)
