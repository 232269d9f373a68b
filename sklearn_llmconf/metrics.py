"""Calibration metrics: binned ECE (plug-in, debiased, bootstrap interval),
multiclass Brier score, log loss, a one-call report and scorers.

All functions follow scikit-learn's conventions: ``y_true`` holds class labels,
``y_prob`` holds predicted probabilities, either of shape ``(n_samples,)`` (binary:
probability of the *greater* label, as returned by
``predict_proba(X)[:, 1]``) or ``(n_samples, n_classes)`` with columns in the
sorted order of ``labels`` (the order of a fitted classifier's ``classes_``).
"""

# The ECE helpers are small and numpy-only, so they live here rather than in a
# private module; everything public is listed in ``__all__``.

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from scipy.special import ndtr
from sklearn.metrics import brier_score_loss, log_loss, make_scorer
from sklearn.metrics import get_scorer as _sklearn_get_scorer
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d

from .utils._sklearn_compat import (
    Interval,
    StrOptions,
    _check_sample_weight,
    validate_params,
)

__all__ = [
    "ECEResult",
    "expected_calibration_error",
    "reliability_curve",
    "multiclass_brier_score",
    "log_loss",
    "calibration_report",
    "multilabel_calibration_report",
    "neg_ece_scorer",
    "neg_ece_debiased_scorer",
    "neg_multiclass_brier_scorer",
    "SCORERS",
    "get_scorer",
]

# Rows of ``y_prob`` must sum to one within this tolerance; it admits float32
# probabilities and rounding in softmax, but rejects raw scores or logits.
_SUM_ATOL = 1e-4


@dataclass(frozen=True)
class ECEResult:
    """Expected calibration error with a bootstrap confidence interval.

    Returned by :func:`expected_calibration_error` when ``n_bootstrap > 0``.
    ``float(result)`` gives the point estimate, so code written for the float
    return value keeps working.

    Attributes
    ----------
    ece : float
        Point estimate on the full sample (debiased if ``debias=True``).
    ci_low, ci_high : float
        Bootstrap percentile interval for the same estimator.
    n_samples : int
        Number of rows the estimate was computed on.
    n_bins : int
        Number of bins requested.
    confidence_level : float
        Nominal coverage of ``[ci_low, ci_high]``.
    """

    ece: float
    ci_low: float
    ci_high: float
    n_samples: int
    n_bins: int
    confidence_level: float

    def __float__(self):
        return float(self.ece)


def _check_proba_inputs(y_true, y_prob, labels, sample_weight):
    """Validate inputs and return ``(y_idx, proba, labels, sample_weight)``.

    ``proba`` is always 2-D ``(n_samples, n_classes)`` with columns matching
    the sorted ``labels``; ``y_idx`` holds the column index of each true label.
    """
    y_prob = check_array(y_prob, ensure_2d=False, dtype=np.float64, input_name="y_prob")
    y_true = column_or_1d(y_true)
    check_consistent_length(y_true, y_prob)
    if y_prob.ndim not in (1, 2):
        raise ValueError(
            f"y_prob must be of shape (n_samples,) or (n_samples, n_classes); "
            f"got an array with {y_prob.ndim} dimensions."
        )
    if y_prob.ndim == 2 and y_prob.shape[1] == 1:
        raise ValueError(
            "y_prob has shape (n_samples, 1). For binary problems pass the "
            "probability of the positive class as a 1-D array, or both columns."
        )

    if labels is None:
        labels = np.unique(y_true)
    else:
        labels = column_or_1d(labels)
        if len(np.unique(labels)) != len(labels):
            raise ValueError(f"labels contains duplicates: {labels!r}.")
        labels = np.unique(labels)
        unknown = np.setdiff1d(np.unique(y_true), labels)
        if unknown.size:
            raise ValueError(
                f"y_true contains labels {unknown.tolist()} that are not in "
                f"labels={labels.tolist()}."
            )

    n_classes = 2 if y_prob.ndim == 1 else y_prob.shape[1]
    if len(labels) != n_classes:
        if y_prob.ndim == 1:
            msg = (
                f"y_prob is 1-D (binary) but {len(labels)} class(es) were found "
                f"({labels.tolist()}). Pass labels=[negative, positive] when "
                "y_true contains a single class, or a 2-D y_prob for multiclass."
            )
        else:
            msg = (
                f"y_prob has {n_classes} columns but {len(labels)} labels were "
                f"found ({labels.tolist()}). Pass labels= with one entry per "
                "column, in the order of the classifier's classes_."
            )
        raise ValueError(msg)

    if np.any(y_prob < 0) or np.any(y_prob > 1):
        raise ValueError("y_prob contains values outside [0, 1].")
    if y_prob.ndim == 1:
        proba = np.column_stack([1.0 - y_prob, y_prob])
    else:
        row_sums = y_prob.sum(axis=1)
        if not np.allclose(row_sums, 1.0, rtol=0.0, atol=_SUM_ATOL):
            worst = float(np.max(np.abs(row_sums - 1.0)))
            raise ValueError(
                "The rows of y_prob must sum to 1 (largest deviation "
                f"{worst:.3g}). Pass probabilities, not scores or logits."
            )
        proba = y_prob

    y_idx = np.searchsorted(labels, y_true)
    if sample_weight is not None:
        sample_weight = _check_sample_weight(sample_weight, y_prob)
    return y_idx, proba, labels, sample_weight


def _folded_normal_mean(mu, sigma):
    """E|X| for X ~ N(mu, sigma**2), elementwise; ``|mu|`` where sigma == 0."""
    mu = np.asarray(mu, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    out = np.abs(mu)
    pos = sigma > 0
    m, s = mu[pos], sigma[pos]
    out[pos] = s * np.sqrt(2.0 / np.pi) * np.exp(-(m**2) / (2 * s**2)) + m * (
        1.0 - 2.0 * ndtr(-m / s)
    )
    return out


def _bin_edges(scores, n_bins, strategy):
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    # Same convention as sklearn.calibration.calibration_curve: percentiles of
    # the (unweighted) scores; ties can leave some bins empty.
    return np.percentile(scores, np.linspace(0, 100, n_bins + 1))


@dataclass(frozen=True)
class _Bins:
    """Statistics of one binning; arrays of shape (n_bins,) but ``edges``
    (n_bins + 1,) and ``idx`` (n_samples,)."""

    edges: np.ndarray
    idx: np.ndarray
    counts: np.ndarray
    weight: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray


def _bin_statistics(scores, targets, weights, n_bins, strategy):
    """Per-bin sample counts, weight sums and weighted means of ``scores`` and
    ``targets``, with the bin edges and each sample's bin index.

    Bins are right-closed, ``(e_i, e_{i+1}]``, with the first one closed on both
    sides, like :func:`sklearn.calibration.calibration_curve`. Means are NaN in
    empty bins.
    """
    edges = _bin_edges(scores, n_bins, strategy)
    idx = np.searchsorted(edges[1:-1], scores)
    counts = np.bincount(idx, minlength=n_bins)
    w_bin = np.bincount(idx, weights=weights, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=weights * scores, minlength=n_bins) / w_bin
        acc = np.bincount(idx, weights=weights * targets, minlength=n_bins) / w_bin
    return _Bins(edges, idx, counts, w_bin, conf, acc)


def _binned_ce(scores, targets, weights, n_bins, strategy, debias):
    """L1 binned calibration error of ``scores`` against binary ``targets``."""
    bins = _bin_statistics(scores, targets, weights, n_bins, strategy)
    nonempty = bins.weight > 0
    w_bin = bins.weight[nonempty]
    acc = bins.accuracy[nonempty]
    frac = w_bin / w_bin.sum()
    gap = acc - bins.confidence[nonempty]
    if not debias:
        return float(np.dot(frac, np.abs(gap)))
    # Kumar et al. (2019), L1 case: bias-correct with a parametric bootstrap in
    # which each bin's accuracy is redrawn from N(acc, acc(1-acc)/n_b). Their
    # reference code averages Monte-Carlo draws; the expectation is a sum of
    # folded-normal means, computed here in closed form (deterministic).
    # Weighted bins use Kish's effective sample size.
    w2_bin = np.bincount(bins.idx, weights=weights**2, minlength=n_bins)[nonempty]
    n_eff = w_bin**2 / w2_bin
    sigma = np.sqrt(np.clip(acc * (1.0 - acc), 0.0, None) / n_eff)
    resampled = _folded_normal_mean(gap, sigma)
    return float(np.dot(frac, 2.0 * np.abs(gap) - resampled))


def _binary_problems(y_idx, proba, kind):
    """``(scores, targets)`` pairs whose binned calibration ``kind`` measures.

    One pair for ``"top_label"`` (confidence, correctness); one per class for
    ``"classwise"`` (probability of the class, membership in it).
    """
    if kind == "top_label":
        pred = np.argmax(proba, axis=1)
        scores = proba[np.arange(len(pred)), pred]
        return [(scores, (pred == y_idx).astype(float))]
    return [
        (proba[:, j], (y_idx == j).astype(float)) for j in range(proba.shape[1])
    ]


def _ece_from_proba(y_idx, proba, weights, n_bins, strategy, kind, debias):
    # top-label: one binary problem; classwise: one per class, averaged.
    errors = [
        _binned_ce(scores, targets, weights, n_bins, strategy, debias)
        for scores, targets in _binary_problems(y_idx, proba, kind)
    ]
    return float(np.mean(errors))


# Parameters shared by the binned metrics (ECE and its reliability curve).
_BINNED_CONSTRAINTS = {
    "y_true": ["array-like"],
    "y_prob": ["array-like"],
    "labels": ["array-like", None],
    "n_bins": [Interval(Integral, 1, None, closed="left")],
    "strategy": [StrOptions({"uniform", "quantile"})],
    "kind": [StrOptions({"top_label", "classwise"})],
    "sample_weight": ["array-like", None],
}


@validate_params(
    {
        **_BINNED_CONSTRAINTS,
        "debias": ["boolean"],
        "n_bootstrap": [Interval(Integral, 0, None, closed="left")],
        "confidence_level": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def expected_calibration_error(
    y_true,
    y_prob,
    *,
    labels=None,
    n_bins=15,
    strategy="uniform",
    kind="top_label",
    debias=False,
    n_bootstrap=0,
    confidence_level=0.95,
    random_state=None,
    sample_weight=None,
):
    r"""Binned expected calibration error (ECE), optionally debiased and with a
    bootstrap confidence interval.

    With ``kind="top_label"`` (Guo et al. 2017) the predictions are grouped by
    their confidence (largest probability) into ``n_bins`` bins and

    .. math::
        \mathrm{ECE} = \sum_b \frac{n_b}{n}\,\left|\mathrm{acc}_b -
        \mathrm{conf}_b\right|,

    where :math:`\mathrm{acc}_b` is the accuracy and :math:`\mathrm{conf}_b`
    the mean confidence in bin :math:`b`. With ``kind="classwise"`` the same
    quantity is computed for every class :math:`j`, binning :math:`p_j` and
    comparing with the frequency of class :math:`j`, and the per-class errors
    are averaged (classwise-ECE of Kull et al. 2019).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.

    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Predicted probabilities. A 1-D array is the probability of the greater
        of the two labels (``predict_proba(X)[:, 1]``). Columns of a 2-D array
        follow the sorted ``labels``; rows must sum to 1 (within 1e-4).

    labels : array-like of shape (n_classes,), default=None
        All class labels. Needed when ``y_true`` does not contain every class
        (e.g. a small test fold). If None, ``np.unique(y_true)``.

    n_bins : int, default=15
        Number of bins.

    strategy : {"uniform", "quantile"}, default="uniform"
        ``"uniform"``: equal-width bins on [0, 1]. ``"quantile"``: bins with
        (about) the same number of samples, from percentiles of the scores.

    kind : {"top_label", "classwise"}, default="top_label"
        Which calibration error to estimate (see above).

    debias : bool, default=False
        If True, return the debiased estimator of Kumar et al. (2019) for the
        L1 error: ``2 * ECE - E*[ECE*]`` where ``E*`` is the expectation under
        a parametric bootstrap that redraws each bin's accuracy from
        ``N(acc_b, acc_b (1 - acc_b) / n_b)``. The expectation is computed in
        closed form (folded normal mean), so the result is deterministic. The
        plug-in ECE is biased upward. The correction is first order: nearly
        unbiased when the true ECE is clearly positive, it only reduces the
        bias when the true ECE is 0, because ``|.|`` has no unbiased
        estimator at 0 (simulations in :ref:`ece`). The value **may be
        negative**. Bins whose accuracy is 0 or 1 (e.g. single-sample bins)
        get no correction.

    n_bootstrap : int, default=0
        If positive, also compute a bootstrap percentile interval from this
        many resamples of the rows (bins recomputed on every resample for
        ``strategy="quantile"``), and return an :class:`ECEResult`. The
        interval is centred on a biased estimate: for a perfectly calibrated
        predictor its lower end usually stays above 0, so read ``ci_high`` as
        the useful bound ("ECE below x") near 0 (coverage in :ref:`ece`).

    confidence_level : float, default=0.95
        Coverage of the bootstrap interval.

    random_state : int, RandomState instance or None, default=None
        Seed for the bootstrap resampling. Unused if ``n_bootstrap=0``.

    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights. Quantile bin edges ignore the weights.

    Returns
    -------
    ece : float or ECEResult
        A float when ``n_bootstrap == 0``; otherwise an :class:`ECEResult`
        holding the same point estimate and the interval (``float(result)``
        gives the point estimate).

    References
    ----------
    .. [1] C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger. "On Calibration of
       Modern Neural Networks", ICML 2017.
    .. [2] A. Kumar, P. Liang, T. Ma. "Verified Uncertainty Calibration",
       NeurIPS 2019 (debiased estimator, Sec. 5).
    .. [3] M. Kull, M. Perello-Nieto, M. Kängsepp, T. Silva Filho, H. Song,
       P. Flach. "Beyond temperature scaling: Obtaining well-calibrated
       multiclass probabilities with Dirichlet calibration", NeurIPS 2019
       (classwise-ECE).

    Examples
    --------
    >>> from sklearn_llmconf.metrics import expected_calibration_error
    >>> y_true = [0, 1, 1, 0]
    >>> y_prob = [0.2, 0.9, 0.7, 0.4]
    >>> round(expected_calibration_error(y_true, y_prob, n_bins=5), 3)
    0.25
    """
    y_idx, proba, _, sample_weight = _check_proba_inputs(
        y_true, y_prob, labels, sample_weight
    )
    n_samples = proba.shape[0]
    if n_samples == 0:
        raise ValueError("expected_calibration_error needs at least one sample.")
    weights = np.ones(n_samples) if sample_weight is None else sample_weight
    args = (n_bins, strategy, kind, debias)
    ece = _ece_from_proba(y_idx, proba, weights, *args)
    if n_bootstrap == 0:
        return ece

    rng = check_random_state(random_state)
    boot = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        rows = rng.randint(n_samples, size=n_samples)
        boot[b] = _ece_from_proba(y_idx[rows], proba[rows], weights[rows], *args)
    alpha = (1.0 - confidence_level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return ECEResult(
        ece=ece,
        ci_low=float(low),
        ci_high=float(high),
        n_samples=int(n_samples),
        n_bins=int(n_bins),
        confidence_level=float(confidence_level),
    )


@validate_params(_BINNED_CONSTRAINTS, prefer_skip_nested_validation=True)
def reliability_curve(
    y_true,
    y_prob,
    *,
    labels=None,
    n_bins=15,
    strategy="uniform",
    kind="top_label",
    sample_weight=None,
):
    """Accuracy and mean confidence per confidence bin: a reliability diagram.

    The multiclass counterpart of :func:`sklearn.calibration.calibration_curve`,
    with the bins of :func:`expected_calibration_error` (that function's ECE is
    the count-weighted mean of ``|accuracy - confidence|`` over the bins).
    With ``kind="top_label"`` the samples are binned by their confidence (the
    largest predicted probability) and each bin's accuracy is the fraction
    whose predicted class is right. With ``kind="classwise"`` every class
    ``j`` gets its own curve: samples binned by ``p_j``, and the "accuracy" of
    a bin is the frequency of class ``j`` in it. Every bin is returned, empty
    ones with NaN, so that the arrays line up with ``bin_edges``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.

    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Predicted probabilities, as in :func:`expected_calibration_error`
        (a 1-D array is the probability of the greater label).

    labels : array-like of shape (n_classes,), default=None
        All class labels; if None, ``np.unique(y_true)``.

    n_bins : int, default=15
        Number of bins.

    strategy : {"uniform", "quantile"}, default="uniform"
        ``"uniform"``: equal-width bins on [0, 1]. ``"quantile"``: edges at
        percentiles of the (unweighted) scores; ties can leave bins empty.

    kind : {"top_label", "classwise"}, default="top_label"
        One curve for the confidence, or one per class.

    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights for the per-bin means; ``counts`` stays a number of
        samples.

    Returns
    -------
    accuracy : ndarray of shape (n_bins,) or (n_classes, n_bins)
        Weighted fraction of correct predictions (``"classwise"``: of samples
        of the class) in each bin; NaN for empty bins.

    confidence : ndarray of shape (n_bins,) or (n_classes, n_bins)
        Weighted mean predicted probability in each bin; NaN for empty bins.

    counts : ndarray of shape (n_bins,) or (n_classes, n_bins)
        Number of samples in each bin.

    bin_edges : ndarray of shape (n_bins + 1,) or (n_classes, n_bins + 1)
        Bin edges; bin ``b`` is ``(bin_edges[b], bin_edges[b + 1]]`` (the
        first one also holds its left edge).

    See Also
    --------
    sklearn_llmconf.plotting.ReliabilityDisplay : plots the top-label curve.
    sklearn.calibration.calibration_curve : the binary positive-class curve.

    Examples
    --------
    >>> from sklearn_llmconf.metrics import reliability_curve
    >>> y_true = [0, 1, 1, 0]
    >>> y_prob = [0.2, 0.9, 0.7, 0.6]
    >>> accuracy, confidence, counts, edges = reliability_curve(
    ...     y_true, y_prob, n_bins=5)
    >>> counts
    array([0, 0, 1, 2, 1])
    >>> accuracy
    array([nan, nan,  0.,  1.,  1.])
    >>> confidence.round(2)
    array([ nan,  nan, 0.6 , 0.75, 0.9 ])
    """
    y_idx, proba, _, sample_weight = _check_proba_inputs(
        y_true, y_prob, labels, sample_weight
    )
    weights = np.ones(proba.shape[0]) if sample_weight is None else sample_weight
    curves = [
        _bin_statistics(scores, targets, weights, n_bins, strategy)
        for scores, targets in _binary_problems(y_idx, proba, kind)
    ]
    fields = ("accuracy", "confidence", "counts", "edges")
    stacked = [np.stack([getattr(c, f) for c in curves]) for f in fields]
    return tuple(a[0] for a in stacked) if kind == "top_label" else tuple(stacked)


@validate_params(
    {
        "y_true": ["array-like"],
        "y_prob": ["array-like"],
        "labels": ["array-like", None],
        "sample_weight": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def multiclass_brier_score(y_true, y_prob, *, labels=None, sample_weight=None):
    r"""Multiclass Brier score: mean over samples of the summed squared error.

    .. math::
        \mathrm{BS} = \frac{1}{n}\sum_i \sum_j (p_{ij} - \mathbb{1}[y_i = j])^2

    This is :func:`sklearn.metrics.brier_score_loss` with
    ``scale_by_half=False`` (scikit-learn computes it already, so it is not
    reimplemented). The scale is [0, 2] **for every number of classes,
    including two**: a binary problem scores twice the customary binary Brier
    score ``mean((p - y)**2)`` that ``brier_score_loss`` reports by default.
    One scale makes binary and multiclass numbers comparable.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.

    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Predicted probabilities; a 1-D array is the probability of the greater
        label. Columns follow the sorted ``labels``.

    labels : array-like of shape (n_classes,), default=None
        All class labels; if None, ``np.unique(y_true)``.

    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights.

    Returns
    -------
    score : float
        Brier score, lower is better, in [0, 2].

    Examples
    --------
    >>> from sklearn_llmconf.metrics import multiclass_brier_score
    >>> multiclass_brier_score(["a", "b"], [[0.8, 0.2], [0.4, 0.6]])
    0.2
    """
    _, proba, labels, sample_weight = _check_proba_inputs(
        y_true, y_prob, labels, sample_weight
    )
    return float(
        brier_score_loss(
            column_or_1d(y_true),
            proba,
            labels=labels,
            sample_weight=sample_weight,
            scale_by_half=False,
        )
    )


def calibration_report(
    y_true,
    y_prob,
    *,
    labels=None,
    n_bins=15,
    n_bootstrap=200,
    confidence_level=0.95,
    random_state=0,
):
    """Accuracy, proper scores and calibration error in one dictionary.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_labels)
        True labels, or a 0/1 indicator matrix (multi-label).

    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Predicted probabilities (see :func:`expected_calibration_error`); for
        an indicator ``y_true``, the independent per-label probabilities.

    labels : array-like of shape (n_classes,), default=None
        All class labels; if None, ``np.unique(y_true)``. Multi-label: the
        label names (keys of ``per_label``).

    n_bins : int, default=15
        Equal-width bins for the top-label ECE.

    n_bootstrap : int, default=200
        Bootstrap resamples for the interval; 0 skips it (the interval keys
        are then NaN).

    confidence_level : float, default=0.95
        Coverage of the interval.

    random_state : int, RandomState instance or None, default=0
        Seed of the bootstrap; fixed by default so a report is reproducible.

    Returns
    -------
    report : dict
        For a 2-D 0/1 ``y_true`` (multi-label) with ``y_prob`` of the same
        shape: :func:`multilabel_calibration_report`. Otherwise:
        ``accuracy``, ``log_loss`` (natural log), ``brier``
        (:func:`multiclass_brier_score`, [0, 2] scale), ``ece`` (plug-in,
        top-label), ``ece_debiased`` (Kumar et al. 2019), ``ece_ci_low`` and
        ``ece_ci_high`` (bootstrap percentile interval **of the debiased ECE**;
        the plug-in ECE's own bootstrap distribution sits above the truth), and
        ``n_samples``.
    """
    if _is_indicator_pair(y_true, y_prob):
        return multilabel_calibration_report(
            y_true, y_prob, labels=labels, n_bins=n_bins, n_bootstrap=n_bootstrap,
            confidence_level=confidence_level, random_state=random_state)
    y_idx, proba, labels, _ = _check_proba_inputs(y_true, y_prob, labels, None)
    common = dict(labels=labels, n_bins=n_bins)
    y_true = column_or_1d(y_true)
    ece = expected_calibration_error(y_true, proba, **common)
    if n_bootstrap > 0:
        res = expected_calibration_error(
            y_true,
            proba,
            debias=True,
            n_bootstrap=n_bootstrap,
            confidence_level=confidence_level,
            random_state=random_state,
            **common,
        )
        ece_debiased, low, high = res.ece, res.ci_low, res.ci_high
    else:
        ece_debiased = expected_calibration_error(y_true, proba, debias=True, **common)
        low = high = float("nan")
    return {
        "accuracy": float(np.mean(np.argmax(proba, axis=1) == y_idx)),
        "log_loss": float(log_loss(y_true, proba, labels=labels)),
        "brier": multiclass_brier_score(y_true, proba, labels=labels),
        "ece": ece,
        "ece_debiased": ece_debiased,
        "ece_ci_low": low,
        "ece_ci_high": high,
        "n_samples": int(proba.shape[0]),
    }


def _ece_debiased(y_true, y_prob, **kwargs):
    return expected_calibration_error(y_true, y_prob, debias=True, **kwargs)


# Scorers. They call ``predict_proba``; for a binary classifier scikit-learn
# passes the probability of ``classes_[1]`` (1-D), which is what the metrics
# expect. Like "neg_log_loss", they need every class present in y_true of the
# scored fold (use stratified splits).
neg_ece_scorer = make_scorer(
    expected_calibration_error,
    greater_is_better=False,
    response_method="predict_proba",
)
neg_ece_debiased_scorer = make_scorer(
    _ece_debiased,
    greater_is_better=False,
    response_method="predict_proba",
)
neg_multiclass_brier_scorer = make_scorer(
    multiclass_brier_score,
    greater_is_better=False,
    response_method="predict_proba",
)

#: Scorers by name, for ``scoring=get_scorer(name)`` or a multi-metric dict.
SCORERS = {
    "neg_expected_calibration_error": neg_ece_scorer,
    "neg_expected_calibration_error_debiased": neg_ece_debiased_scorer,
    "neg_multiclass_brier_score": neg_multiclass_brier_scorer,
}


def get_scorer(scoring):
    """Return a scorer by name, knowing this package's names and sklearn's.

    Parameters
    ----------
    scoring : str, callable or None
        A name from :data:`SCORERS` (e.g. ``"neg_expected_calibration_error"``)
        or anything :func:`sklearn.metrics.get_scorer` accepts.

    Returns
    -------
    scorer : callable
        The scorer, usable as ``scoring=`` in ``cross_val_score`` or
        ``GridSearchCV``.
    """
    if isinstance(scoring, str) and scoring in SCORERS:
        return SCORERS[scoring]
    return _sklearn_get_scorer(scoring)


# -- several labels per text ----------------------------------------------------
def _is_indicator_pair(y_true, y_prob) -> bool:
    """A 2-D 0/1 ``y_true`` with more than one column and ``y_prob`` alike."""
    if hasattr(y_true, "to_numpy"):
        y_true = y_true.to_numpy()
    y_true = np.asarray(y_true)
    if y_true.ndim != 2 or y_true.shape[1] < 2:
        return False
    return (np.shape(y_prob) == y_true.shape
            and set(np.unique(y_true).tolist()) <= {0, 1})


def _binary_report(y, p, n_bins, n_bootstrap, confidence_level, random_state):
    y = np.asarray(y, dtype=int)
    proba = np.column_stack([1 - p, p])
    common = dict(labels=[0, 1], n_bins=n_bins)
    ece = expected_calibration_error(y, proba, **common)
    if n_bootstrap > 0:
        res = expected_calibration_error(
            y, proba, debias=True, n_bootstrap=n_bootstrap,
            confidence_level=confidence_level, random_state=random_state, **common)
        debiased, low, high = res.ece, res.ci_low, res.ci_high
    else:
        debiased = expected_calibration_error(y, proba, debias=True, **common)
        low = high = float("nan")
    return {
        "accuracy": float(np.mean((p > 0.5) == y)),
        "log_loss": float(log_loss(y, proba, labels=[0, 1])),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": float(ece),
        "ece_debiased": float(debiased),
        "ece_ci_low": float(low),
        "ece_ci_high": float(high),
        "n_positives": int(y.sum()),
    }


def multilabel_calibration_report(
    y_true,
    y_prob,
    *,
    labels=None,
    n_bins=15,
    n_bootstrap=200,
    confidence_level=0.95,
    random_state=0,
):
    """Calibration of independent per-label probabilities (several labels per text).

    Every label is a binary problem: its probability against its 0/1 column.
    Each is reported on its own (``per_label``), pooled over all (text, label)
    pairs (``micro``) and averaged over labels (``macro``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        0/1 indicator matrix (a DataFrame's column names name the labels).
    y_prob : array-like of shape (n_samples, n_labels)
        Predicted probability of each label (``predict_proba`` of a
        multi-label classifier; rows need not sum to 1).
    labels : array-like of shape (n_labels,), default=None
        Names of the columns; None: a DataFrame's column names, else 0..k-1.
    n_bins : int, default=15
        Equal-width bins of the confidence ``max(p, 1 - p)``.
    n_bootstrap : int, default=200
        Bootstrap resamples of each interval (0 skips them: NaN).
    confidence_level : float, default=0.95
    random_state : int, RandomState instance or None, default=0

    Returns
    -------
    report : dict
        ``per_label``: a dict by label name of ``accuracy`` (threshold 0.5),
        ``log_loss``, ``brier`` (squared error of the probability),
        ``ece`` (plug-in), ``ece_debiased`` (Kumar et al. 2019) with
        ``ece_ci_low`` / ``ece_ci_high`` (bootstrap of the debiased ECE) and
        ``n_positives``. ``micro``: the same over all (text, label) pairs
        pooled (its interval resamples pairs, which treats the labels of one
        text as independent). ``macro``: the mean over labels of each number
        (no interval). ``hamming_loss`` (share of wrong (text, label)
        decisions at 0.5), ``subset_accuracy`` (texts whose whole label set is
        right), ``n_samples``, ``n_labels``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_llmconf.metrics import multilabel_calibration_report
    >>> Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> P = np.array([[.9, .2], [.1, .8], [.7, .6], [.2, .1]])
    >>> rep = multilabel_calibration_report(Y, P, labels=["a", "b"], n_bootstrap=0)
    >>> rep["hamming_loss"], sorted(rep["per_label"])
    (0.0, ['a', 'b'])
    """
    if labels is None and hasattr(y_true, "columns"):
        labels = [str(c) for c in y_true.columns]
    if hasattr(y_true, "to_numpy"):
        y_true = y_true.to_numpy()
    Y = check_array(y_true, dtype=int, ensure_2d=True)
    P = check_array(y_prob, dtype=float, ensure_2d=True)
    if Y.shape != P.shape:
        raise ValueError(f"y_true has shape {Y.shape} but y_prob {P.shape}: "
                         "they must match.")
    if not set(np.unique(Y).tolist()) <= {0, 1}:
        raise ValueError("y_true must be a 0/1 indicator matrix.")
    if ((P < 0) | (P > 1)).any():
        raise ValueError("y_prob must hold probabilities in [0, 1].")
    k = Y.shape[1]
    labels = list(range(k)) if labels is None else list(labels)
    if len(labels) != k:
        raise ValueError(f"labels has {len(labels)} names for {k} columns.")
    args = (n_bins, n_bootstrap, confidence_level, random_state)
    per_label = {name: _binary_report(Y[:, j], P[:, j], *args)
                 for j, name in enumerate(labels)}
    micro = _binary_report(Y.ravel(), P.ravel(), *args)
    macro = {key: float(np.mean([r[key] for r in per_label.values()]))
             for key in ("accuracy", "log_loss", "brier", "ece", "ece_debiased")}
    wrong = (P > 0.5) != Y.astype(bool)
    return {
        "per_label": per_label,
        "micro": micro,
        "macro": macro,
        "hamming_loss": float(wrong.mean()),
        "subset_accuracy": float((~wrong.any(axis=1)).mean()),
        "n_samples": int(Y.shape[0]),
        "n_labels": int(k),
    }
