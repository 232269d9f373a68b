"""Anytime-valid statistics: a betting e-process and a conformal test martingale.

Both are nonnegative (super)martingales under their null hypothesis and
start at 1, so by Ville's inequality the probability that they *ever* reach
``1 / alpha`` is at most ``alpha``: an alarm raised when they do has a false
alarm probability of at most ``alpha`` however long the monitoring runs and
however often it is looked at.

* :func:`error_eprocess`: testing-by-betting (Waudby-Smith and Ramdas,
  "Estimating means of bounded random variables by betting", JRSS-B 2024) for
  H0 "the error probability of each audited row, given the past, is at most
  ``m``". The capital is ``prod_i (1 + lam_i (x_i - m))`` with ``x_i`` the
  error indicator and a predictable bet ``lam_i`` in ``[0, 0.5 / m]``: the
  Kelly bet ``(mu - m) / (m (1 - m))`` at a running error estimate ``mu``
  shrunk towards ``m`` (one pseudo-error in ``1 / m`` pseudo-rows), so that no
  bet is placed before errors pile up.
* :func:`conformal_p_values` and :func:`jumper_martingale`: Vovk's conformal
  test martingale (Vovk, Petej, Nouretdinov, Manokhin and Gammerman,
  "Retrain or not retrain: conformal test martingales for change-point
  detection", COPA 2021). Each live score is ranked among the calibration
  scores and the live scores before it (random tie-breaking): under
  exchangeability the p-values are independent and uniform. The "simple
  jumper" bets ``1 + eps (p - 1/2)`` with ``eps`` in ``{-1, 0, 1}`` and moves a
  share ``jump`` of its capital between the three at each step, so it follows
  a shift in either direction.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "conformal_p_values",
    "error_eprocess",
    "jumper_martingale",
]

# Largest bet as a share of 1 / m: a correct row then halves the capital at
# worst, it never zeroes it.
MAX_BET = 0.5


def error_eprocess(errors, m, *, n_prev=0, errors_prev=0, log_wealth_prev=0.0):
    """Log-capital of the betting e-process for H0 "error rate <= m".

    Vectorised over leading axes: ``errors`` of shape ``(..., n)`` gives one
    path per leading index. Pass the final state of a previous call
    (``n_prev``, ``errors_prev``, ``log_wealth_prev``) to continue a path.

    Parameters
    ----------
    errors : array-like of bool of shape (..., n)
        Whether each audited prediction is wrong, in audit order.
    m : float or ndarray broadcastable to ``errors.shape[:-1]``
        Error rate under the null, ``1 - target``, in (0, 1).
    n_prev, errors_prev : int or ndarray, default=0
        Rows and errors seen before ``errors``.
    log_wealth_prev : float or ndarray, default=0.0
        Log-capital after them.

    Returns
    -------
    log_wealth : ndarray of shape (..., n)
        Natural log of the capital after each row; the null is rejected at
        level ``alpha`` from the first row where it reaches ``log(1/alpha)``.
    """
    x = np.asarray(errors, dtype=float)
    m = np.asarray(m, dtype=float)[..., None]
    n = x.shape[-1]
    seen = np.asarray(n_prev, dtype=float)[..., None] + np.arange(n)
    errs_before = (np.asarray(errors_prev, dtype=float)[..., None]
                   + np.cumsum(x, axis=-1) - x)
    mu = (errs_before + 1.0) / (seen + 1.0 / m)
    lam = np.clip((mu - m) / (m * (1.0 - m)), 0.0, MAX_BET / m)
    steps = np.log1p(lam * (x - m))
    start = np.asarray(log_wealth_prev, dtype=float)[..., None]
    return start + np.cumsum(steps, axis=-1)


def conformal_p_values(reference, live, rng):
    """Conformal p-values of live scores among the reference and earlier live ones.

    ``p_j = (#{r < s_j} + U_j (#{r == s_j} + 1)) / (n_ref + j)`` over the
    reference and ``s_1 .. s_{j-1}`` (``j`` from 1), with ``U_j`` uniform.

    Parameters
    ----------
    reference : ndarray of shape (n_ref,) or (n_runs, n_ref)
        Calibration scores (and already monitored live scores).
    live : ndarray of shape (n,) or (n_runs, n)
        New scores, in arrival order.
    rng : numpy Generator
        Tie-breaking.

    Returns
    -------
    p : ndarray, same shape as ``live``
        Small when a live score is low next to the reference.
    """
    ref = np.atleast_2d(np.asarray(reference, dtype=float))
    new = np.atleast_2d(np.asarray(live, dtype=float))
    ref = np.sort(ref, axis=1)
    n_runs, n = new.shape
    # One searchsorted over all runs: shift run r's values by 4 r (scores in
    # [0, 1] stay inside their own run's block; confidences are in [0, 1]).
    offset = 4.0 * np.arange(n_runs)[:, None]
    flat_ref = (ref + offset).ravel()
    base = np.arange(n_runs)[:, None] * ref.shape[1]
    below = np.searchsorted(flat_ref, (new + offset).ravel(), "left").reshape(new.shape)
    upto = np.searchsorted(flat_ref, (new + offset).ravel(), "right").reshape(new.shape)
    below, equal = below - base, upto - below
    # Earlier live scores: a lower-triangular comparison, in chunks of rows.
    chunk = max(1, 2_000_000 // max(n * n, 1))
    earlier = np.tril(np.ones((n, n), dtype=bool), -1)
    for r0 in range(0, n_runs, chunk):
        s = new[r0:r0 + chunk]
        rows = slice(r0, r0 + chunk)
        below[rows] += np.sum((s[:, None, :] < s[:, :, None]) & earlier, axis=2)
        equal[rows] += np.sum((s[:, None, :] == s[:, :, None]) & earlier, axis=2)
    u = rng.uniform(size=new.shape)
    total = ref.shape[1] + np.arange(1, n + 1)
    p = (below + u * (equal + 1)) / total
    return p.reshape(np.shape(live))


def jumper_martingale(p, *, jump=0.01, state=None):
    """Log-value of the simple jumper conformal test martingale.

    Parameters
    ----------
    p : ndarray of shape (..., n)
        Conformal p-values in arrival order.
    jump : float, default=0.01
        Share of the capital redistributed evenly over the three bets at each
        step.
    state : tuple (log_value, weights) or None
        Final state of a previous call, to continue; None starts at 1 with
        equal weights.

    Returns
    -------
    log_value : ndarray of shape (..., n)
    state : tuple (log_value, weights)
        ``weights`` of shape (..., 3): share of the capital on ``eps`` = -1, 0, 1.
    """
    p = np.asarray(p, dtype=float)
    eps = np.array([-1.0, 0.0, 1.0])
    lead = p.shape[:-1]
    if state is None:
        log_v, w = np.zeros(lead), np.full(lead + (3,), 1.0 / 3.0)
    else:
        log_v, w = np.array(state[0], dtype=float), np.array(state[1], dtype=float)
    out = np.empty(p.shape)
    for j in range(p.shape[-1]):
        w = (1.0 - jump) * w + jump / 3.0
        w = w * (1.0 + eps * (p[..., j, None] - 0.5))
        total = w.sum(axis=-1)
        log_v = log_v + np.log(total)
        w = w / total[..., None]
        out[..., j] = log_v
    return out, (log_v, w)
