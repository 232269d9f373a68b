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
one is set, else in a :class:`~sklearn_llmconf.cache.MemoryCache` kept on the
estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
from scipy.special import log_softmax
from sklearn.base import BaseEstimator

from ..prompts._text import normalize_text
from ..scoring._failures import finite_rows
from ..utils._sklearn_compat import Interval, StrOptions
from ..utils._warn import warn_external
from ._matrix import apply_matrix, as_log_probs, choose_calibrator, fit_matrix
from ._priors import apply_prior, estimate_prior, warn_small_batch
from ._temperature import fit_temperature, label_free_offset, scale_logits

__all__ = [
    "MIN_CALIBRATION_ROWS",
    "InFitCalibration",
    "ScoreCorrection",
    "calibration_rows",
    "fit_calibration",
]

#: Fewer scored calibration rows than this: no temperature is fitted, only the
#: label-free batch prior of the rows there are (see :func:`fit_calibration`).
MIN_CALIBRATION_ROWS = 10


class InFitCalibration(BaseEstimator):
    """How :class:`~sklearn_llmconf.LLMClassifier` corrects its raw scores in ``fit``.

    The ``calibration`` parameter of the classifier, when a string does not
    say enough: ``calibration="auto"`` is ``InFitCalibration()``,
    ``"temperature"`` / ``"matrix"`` set ``method``, ``"contextual"`` /
    ``"batch"`` are ``InFitCalibration(method=None, prior_correction=...)``.

    Parameters
    ----------
    method : {"auto", "temperature", "matrix"} or None, default="auto"
        The calibrator fitted on labelled training texts that are not
        demonstrations. ``"temperature"``: a temperature ``T`` and a per-class
        bias ``b`` shrunk toward the label-free batch prior (strength by 5-fold
        cross-validation); scores become ``log_softmax(log p / T + b)``.
        ``"matrix"``: a regularised full affine map of the log-probabilities
        (matrix / Dirichlet calibration, Kull et al. 2019),
        ``log_softmax(log p @ W.T + b)``. ``"auto"``: the two compared by
        5-fold cross-validated log loss, the matrix kept only when more than
        1 % lower (two classes: the temperature). None: no labelled
        calibration (``fit`` makes no model call for it).
    prior_correction : {"contextual", "batch"} or None, default=None
        A label-free correction applied before the calibrator: the label
        probabilities are divided by an estimated prior and renormalised.
        ``"contextual"`` (Zhao et al. 2021): the mean probability of the
        content-free inputs ``"N/A"``, ``""`` and ``"[MASK]"`` under the same
        prompt (3 model calls in ``fit``; needs one fixed demonstration set).
        ``"batch"`` (Zhou et al. 2024): the mean predicted probability over the
        rows of each ``predict*`` call, so a text's result depends on the
        other texts of the call. None: the labelled calibrator corrects the
        same bias with labels, which did better in
        ``benchmarks/bench_shrinkage.py``.
    max_samples : int, default=200
        Most training texts scored to fit the calibrator (stratified by class;
        one model call each, cached).
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"auto", "temperature", "matrix"}), None],
        "prior_correction": [StrOptions({"contextual", "batch"}), None],
        "max_samples": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, method="auto", prior_correction=None, max_samples=200):
        self.method = method
        self.prior_correction = prior_correction
        self.max_samples = max_samples

    @classmethod
    def from_param(cls, calibration) -> InFitCalibration:
        """The object a ``calibration`` parameter value stands for.

        Parameters
        ----------
        calibration : str, InFitCalibration or None

        Returns
        -------
        calibration : InFitCalibration
        """
        if isinstance(calibration, cls):
            return calibration
        if calibration in ("contextual", "batch"):
            return cls(method=None, prior_correction=calibration)
        return cls(method=calibration)


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
    ok = finite_rows(log_probs)
    n_failed = int((~ok).sum())
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
            + (
                f". {n_failed} of {n_failed + n_used} calibration texts failed "
                "to score (server errors or labels not observed: see the "
                "warnings above and usage_.failed_rows); fix the backend and "
                "fit again, or set calibration=None."
                if n_failed else ". Pass more labelled texts, or calibration=None."
            )
        )
        if n_used == 0:
            return 1.0, np.zeros(n_classes), 0, None
        temperature, bias = 1.0, label_free_offset(logits)
    else:
        # "auto" keeps temperature + bias for two classes: the matrix candidate
        # is where the classes are many (bench_hybrid), and on 44 SMS rows it
        # collapsed to one class (tests/test_default_real_model.py).
        if method == "auto" and binary:
            method = "temperature"
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
    """``log_softmax(log_softmax(log_probs) / T + bias)`` of finite rows.

    With a ``matrix``: ``log_softmax(clip(log_softmax(log_probs)) @ W.T + bias)``.
    Rows that are not finite are left unchanged.
    """
    out = log_probs.copy()
    ok = finite_rows(log_probs)
    if ok.any() and matrix is not None:
        out[ok] = apply_matrix(as_log_probs(log_probs[ok]), matrix, bias)
    elif ok.any():
        out[ok] = log_softmax(
            scale_logits(log_softmax(log_probs[ok], axis=1), temperature, bias),
            axis=1,
        )
    return out


@dataclass(frozen=True)
class ScoreCorrection:
    """What ``fit`` decided to do to raw label scores, in the order applied.

    First the label-free prior correction (``prior``: ``"batch"``, divided out
    of each call's own rows, or ``"contextual"``, the fitted
    ``content_free_prior``), then the in-fit calibration
    (:func:`apply_calibration`: temperature and bias, or a matrix and bias).
    Failed rows are left as they are.
    """

    prior: str | None = None
    content_free_prior: np.ndarray | None = None
    temperature: float | None = None
    bias: np.ndarray | None = None
    matrix: np.ndarray | None = None

    def apply(self, log_probs, failed, n_classes):
        """The corrected scores of ``log_probs`` (NaN rows ``failed``).

        Parameters
        ----------
        log_probs : ndarray of shape (n, n_classes)
            Changed in place by the prior correction.
        failed : ndarray of bool of shape (n,)
        n_classes : int

        Returns
        -------
        log_probs : ndarray of shape (n, n_classes)
        """
        if self.prior is not None and not failed.all():
            ok = ~failed
            if self.prior == "batch":
                warn_small_batch(int(ok.sum()), n_classes)
                prior = estimate_prior(log_probs[ok])
            else:
                prior = self.content_free_prior
            log_probs[ok] = apply_prior(log_probs[ok], prior)
        if self.temperature is None and self.matrix is None:
            return log_probs
        return apply_calibration(log_probs, self.temperature, self.bias, self.matrix)
