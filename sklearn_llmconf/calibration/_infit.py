"""In-fit calibration of :class:`~sklearn_llmconf.LLMClassifier` (the default).

``fit`` receives labelled texts; a few become demonstrations, the others are
enough to correct the model's bias toward some label words and the scale of
its scores. The flow::

    training rows -- not demonstrations, at most max_calibration_samples -->
    scored with the fitted prompt (model calls, cached) --> T and per-class bias
    (temperature scaling with a bias shrunk toward the label-free batch prior,
    see _temperature.py) --> applied to every later score: log_softmax(s / T + b)

A calibration text is never its own demonstration: fixed demonstrations are
left out of the calibration rows, and ``"similar"`` selection already skips
the query's own text. The calibration scores are exactly what ``predict*``
computes for the same texts, so they are cached: in the response cache when
one is set, else in a small in-memory cache kept on the estimator.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from ..cache._sqlite import ResponseCache
from ..prompts._text import normalize_text
from ..utils._warn import warn_external
from ._matrix import apply_matrix, as_log_probs, choose_calibrator, fit_matrix
from ._temperature import fit_temperature, label_free_offset

__all__ = [
    "MIN_CALIBRATION_ROWS",
    "MemoryCache",
    "apply_calibration",
    "calibration_rows",
    "fit_calibration",
]

#: Fewer scored calibration rows than this: no temperature is fitted, only the
#: label-free batch prior of the rows there are (see :func:`fit_calibration`).
MIN_CALIBRATION_ROWS = 10


class MemoryCache:
    """In-memory stand-in for :class:`ResponseCache`, holding ``fit``'s scores.

    With no ``cache`` set, the calibration rows scored in ``fit`` are kept here
    so that ``predict*`` on the same texts does not score them again. Only
    ``fit`` writes to it (``frozen=True`` afterwards), so it never grows with
    the data predicted later.
    """

    make_key = staticmethod(ResponseCache.make_key)

    def __init__(self):
        self.store = {}
        self.frozen = False

    def get_many(self, keys):
        return {k: self.store[k] for k in keys if k in self.store}

    def set_many(self, items):
        if not self.frozen:
            self.store.update(items)

    def __len__(self):
        return len(self.store)


def calibration_rows(rows, y_index, demo_rows, max_samples, rng):
    """Indices of the training rows to calibrate on.

    Rows that are (duplicates of) a fixed demonstration are left out; of the
    rest, at most ``max_samples`` are kept, stratified by class (each class in
    proportion, at least one row per class where possible), chosen by ``rng``.
    """
    demo_keys = {normalize_text(" ".join(r)) for r in demo_rows}
    eligible = np.array([
        i for i, r in enumerate(rows) if normalize_text(" ".join(r)) not in demo_keys
    ], dtype=int)
    if len(eligible) <= max_samples:
        return eligible
    y = np.asarray(y_index)[eligible]
    classes, counts = np.unique(y, return_counts=True)
    quota = np.maximum(1, np.floor(counts * max_samples / len(eligible))).astype(int)
    # hand out what flooring left over to the largest classes
    for j in np.argsort(-counts)[: max(0, max_samples - quota.sum())]:
        quota[j] += 1
    picked = [rng.permutation(eligible[y == c])[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked))


def fit_calibration(log_probs, y_index, n_classes, method="temperature"):
    """Temperature and per-class bias (or a matrix) from the calibration rows.

    Parameters
    ----------
    log_probs : ndarray of shape (n, n_classes)
        Scores of the calibration rows (NaN rows failed and are left out).
    y_index : ndarray of int of shape (n,)
    n_classes : int
    method : {"temperature", "matrix", "auto"}, default="temperature"
        ``"temperature"``: temperature + shrunk bias. ``"matrix"``: the
        regularised matrix calibration of
        :mod:`sklearn_llmconf.calibration._matrix` (its strength by
        cross-validation). ``"auto"``: whichever of the two has
        the lower 5-fold log loss on these rows, the temperature unless the
        matrix is more than 1 % lower (see
        :func:`~sklearn_llmconf.calibration._matrix.choose_calibrator`).

    Returns
    -------
    temperature : float
    bias : ndarray of shape (n_classes,)
        Calibrated scores are ``log_softmax(log_probs / temperature + bias)``.
    n_used : int
        Rows the fit used.
    matrix : ndarray of shape (n_classes, n_classes) or None
        The matrix calibration's ``W`` when chosen (``temperature`` is then 1):
        calibrated scores are ``log_softmax(clip(log_softmax(log_probs)) @ W.T
        + bias)``.

    Notes
    -----
    With ``n_used >= MIN_CALIBRATION_ROWS``: temperature and bias by penalised
    log loss (``bias_shrinkage="auto"``). With fewer: a warning, ``T = 1`` and the
    label-free batch prior of those rows (no labels used); with none: a warning
    and the raw scores.
    """
    ok = np.isfinite(log_probs).all(axis=1)
    log_probs, y_index = log_probs[ok], np.asarray(y_index)[ok]
    n_used = len(y_index)
    binary = n_classes == 2
    logits = log_softmax(log_probs, axis=1)
    if binary:
        logits = logits[:, 1] - logits[:, 0]
    if n_used < MIN_CALIBRATION_ROWS:
        warn_external(
            f"calibration='auto': only {n_used} training text(s) that are not "
            f"demonstrations could be scored (at least {MIN_CALIBRATION_ROWS} "
            "are needed to fit a temperature and a bias). Falling back to the "
            "label-free prior correction of those texts"
            + (" (none: raw scores)" if n_used == 0 else "")
            + ". Pass more labelled texts, or calibration=None."
        )
        if n_used == 0:
            return 1.0, np.zeros(n_classes), 0, None
        temperature, bias = 1.0, label_free_offset(logits)
    else:
        chosen, strength = choose_calibrator(logits, y_index, method)
        if chosen == "matrix":
            matrix, bias, _ = fit_matrix(as_log_probs(logits), y_index, strength)
            return 1.0, bias, n_used, matrix
        temperature, bias = fit_temperature(logits, y_index, None, True,
                                            shrinkage="auto")
    if binary:
        bias = np.array([0.0, bias])
    return temperature, np.asarray(bias, dtype=float), n_used, None


def apply_calibration(log_probs, temperature, bias, matrix=None):
    """``log_softmax(log_probs / T + bias)`` of finite rows; others unchanged.

    With a ``matrix``: ``log_softmax(clip(log_softmax(log_probs)) @ W.T + bias)``.
    """
    out = log_probs.copy()
    ok = np.isfinite(log_probs).all(axis=1)
    if ok.any() and matrix is not None:
        out[ok] = apply_matrix(as_log_probs(log_probs[ok]), matrix, bias)
    elif ok.any():
        out[ok] = log_softmax(log_softmax(log_probs[ok], axis=1) / temperature + bias,
                              axis=1)
    return out
