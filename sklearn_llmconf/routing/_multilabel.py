"""Certified decisions per label for several labels per text.

:class:`MultiLabelRouter` wraps a multi-label classifier (independent
per-label probabilities) and certifies, on held-out labelled texts, two
thresholds per label with learn-then-test (Angelopoulos et al. 2021, the
binomial p-values and fixed-sequence testing of :mod:`._stats`):

- a *positive* threshold ``t+_j``: "label ``j`` applies" is decided when
  ``p_j >= t+_j``, and those decisions are right (the label applies) with
  probability at least ``target_precision``;
- a *negative* threshold ``t-_j``: "label ``j`` does not apply" is decided
  when ``p_j <= t-_j``, right at least as often.

The ``2 k`` tests each run at level ``risk_level / (2 k)`` (Bonferroni over
the labels and both directions), so with probability at least
``1 - risk_level`` *every* certified rule of *every* label meets the target on
new texts exchangeable with the calibration texts: the family-wise error over
the labels is controlled. A label whose test rejects nothing at any threshold
is never decided that way (its threshold is ``inf`` / ``-inf``).

A text whose labels are all decided is in the ``"accept"`` tier; one with an
undecided label goes to ``"review"``, where a person decides what the model
did not.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted

from ..utils._sklearn_compat import HasMethods, Interval, _fit_context
from ._stats import ltt_threshold

__all__ = ["MultiLabelRouter", "certify_label_thresholds", "label_probabilities"]

UNDECIDED = -1


def label_probabilities(proba) -> np.ndarray:
    """The ``(n, k)`` probabilities of the labels from any ``predict_proba`` shape.

    Parameters
    ----------
    proba : ndarray of shape (n, k) or (n, k, 2), or list of k arrays (n, 2)
        What a multi-label classifier returns (``MultiOutputClassifier``
        returns the list, ``[neg, pos]`` per label).

    Returns
    -------
    proba : ndarray of shape (n, k)
    """
    if isinstance(proba, list):
        return np.column_stack([np.asarray(p)[:, -1] for p in proba])
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 3:
        return proba[:, :, -1]
    if proba.ndim != 2:
        raise ValueError(f"Expected per-label probabilities of shape (n, k), got "
                         f"{proba.shape}.")
    return proba


def certify_label_thresholds(proba, Y, target, risk_level):
    """Certified positive and negative thresholds of every label.

    Parameters
    ----------
    proba : ndarray of shape (n, k)
        Probability of each label on the calibration texts.
    Y : ndarray of shape (n, k)
        Their 0/1 labels.
    target : float
        Precision of each decided direction.
    risk_level : float
        Family-wise error over the ``2 k`` tests (Bonferroni).

    Returns
    -------
    positive : ndarray of shape (k,)
        Decide "applies" when ``p >= positive[j]`` (``inf``: never).
    negative : ndarray of shape (k,)
        Decide "does not apply" when ``p <= negative[j]`` (``-inf``: never).
    """
    P = np.asarray(proba, dtype=float)
    Y = np.asarray(Y).astype(bool)
    k = P.shape[1]
    level = risk_level / (2 * k)
    positive = np.array([ltt_threshold(P[:, j], Y[:, j], target, level)
                         for j in range(k)])
    negative = np.array([1.0 - ltt_threshold(1.0 - P[:, j], ~Y[:, j], target, level)
                         for j in range(k)])
    return positive, negative


class MultiLabelRouter(MetaEstimatorMixin, BaseEstimator):
    """Certify per label when its decision can be left to the model.

    For every label two thresholds are certified on labelled texts given to
    ``fit`` (learn-then-test): above the positive one the label is decided
    present, below the negative one absent, each direction right at least
    ``target_precision`` of the time on new texts. The family-wise error is
    controlled over all labels and both directions by Bonferroni: every test
    runs at ``risk_level / (2 k)``, so the probability that any certified
    rule misses its target is at most ``risk_level``.

    Parameters
    ----------
    estimator : classifier
        A multi-label classifier with ``predict_proba`` (an ``(n, k)`` array,
        ``(n, k, 2)``, or the list of ``(n, 2)`` arrays of
        ``MultiOutputClassifier``). A fitted one is used as it is (wrap it in
        :class:`~sklearn.frozen.FrozenEstimator` to keep it through
        ``clone``); an unfitted one is fitted on the first half of the rows
        given to ``fit`` and certified on the other half.
    target_precision : float, default=0.9
        Precision of each decided direction of each label, in (0, 1).
    risk_level : float, default=0.1
        Probability, over the calibration sample, that some certified rule
        misses ``target_precision`` (family-wise error over the labels).

    Attributes
    ----------
    estimator_ : classifier
        The fitted classifier scored with.
    classes_ : ndarray of shape (n_labels,)
        The estimator's labels (0..k-1 when it has no ``classes_``).
    thresholds_ : ndarray of shape (n_labels,)
        Positive thresholds (``inf``: never decided present).
    negative_thresholds_ : ndarray of shape (n_labels,)
        Negative thresholds (``-inf``: never decided absent).
    n_calibration_ : int
        Texts the thresholds were certified on.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.multioutput import MultiOutputClassifier
    >>> from sklearn_llmconf.routing import MultiLabelRouter
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(2000, 2))
    >>> Y = (X + rng.normal(scale=0.5, size=X.shape) > 0).astype(int)
    >>> clf = MultiOutputClassifier(LogisticRegression()).fit(X[:500], Y[:500])
    >>> router = MultiLabelRouter(FrozenEstimator(clf)).fit(X[500:], Y[500:])
    >>> router.decide(X[:3]).shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["predict_proba"])],
        "target_precision": [Interval(Real, 0, 1, closed="neither")],
        "risk_level": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(self, estimator, *, target_precision=0.9, risk_level=0.1):
        self.estimator = estimator
        self.target_precision = target_precision
        self.risk_level = risk_level

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, Y):
        """Certify the thresholds of every label on labelled texts.

        Parameters
        ----------
        X : texts or array-like of shape (n_samples, ...)
        Y : array-like of shape (n_samples, n_labels)
            0/1 indicator matrix (a DataFrame's values are used).

        Returns
        -------
        self : MultiLabelRouter
        """
        Y = np.asarray(Y.to_numpy() if hasattr(Y, "to_numpy") else Y)
        if Y.ndim != 2 or not set(np.unique(Y).tolist()) <= {0, 1}:
            raise ValueError("Y must be a 0/1 indicator matrix (n_samples, n_labels).")
        n = len(Y)
        estimator = self.estimator
        try:
            check_is_fitted(estimator.estimator if isinstance(
                estimator, FrozenEstimator) else estimator)
            fitted, cal = estimator, np.arange(n)
        except Exception:  # NotFittedError, or an estimator without fitted state
            half = n // 2
            fitted = clone(estimator).fit(_take(X, np.arange(half)), Y[:half])
            cal = np.arange(half, n)
        self.estimator_ = fitted
        P = label_probabilities(fitted.predict_proba(_take(X, cal)))
        if P.shape[1] != Y.shape[1]:
            raise ValueError(f"The estimator gives {P.shape[1]} label probabilities "
                             f"but Y has {Y.shape[1]} columns.")
        classes = getattr(fitted, "classes_", None)
        self.classes_ = (np.asarray(classes) if classes is not None
                         and np.ndim(classes) == 1 and len(classes) == Y.shape[1]
                         else np.arange(Y.shape[1]))
        self.thresholds_, self.negative_thresholds_ = certify_label_thresholds(
            P, Y[cal], self.target_precision, self.risk_level)
        self.n_calibration_ = len(cal)
        return self

    def predict_proba(self, X):
        """The estimator's per-label probabilities, shape (n_samples, n_labels)."""
        check_is_fitted(self)
        return label_probabilities(self.estimator_.predict_proba(X))

    def decide(self, X):
        """Certified decision of every label of every text.

        Returns
        -------
        decisions : ndarray of int of shape (n_samples, n_labels)
            1 (present), 0 (absent) or -1 (undecided: for a person).
        """
        return self.decisions_from_proba(self.predict_proba(X))

    def decisions_from_proba(self, proba):
        """:meth:`decide` from per-label probabilities already computed.

        Parameters
        ----------
        proba : ndarray of shape (n_samples, n_labels)
            A row holding NaN (it could not be scored) is undecided.

        Returns
        -------
        decisions : ndarray of int of shape (n_samples, n_labels)
            1 (present), 0 (absent) or -1 (undecided).
        """
        check_is_fitted(self)
        P = np.asarray(proba, dtype=float)
        scored = np.isfinite(P).all(axis=1)
        P = np.where(scored[:, None], P, 0.5)
        pos = P >= self.thresholds_
        neg = P <= self.negative_thresholds_
        both = pos & neg  # only when both thresholds are loose: the likelier wins
        out = np.full(P.shape, UNDECIDED, dtype=int)
        out[pos & ~both] = 1
        out[neg & ~both] = 0
        out[both] = (P[both] > 0.5).astype(int)
        out[~scored] = UNDECIDED
        return out

    def route(self, X):
        """``"accept"`` where every label of a text is decided, else ``"review"``.

        Returns
        -------
        tiers : ndarray of str of shape (n_samples,)
        """
        decided = (self.decide(X) != UNDECIDED).all(axis=1)
        return np.where(decided, "accept", "review")


def _take(X, index):
    if hasattr(X, "iloc"):
        return X.iloc[index]
    if isinstance(X, (list, tuple)):
        return [X[i] for i in index]
    return np.asarray(X, dtype=object if not hasattr(X, "dtype") else None)[index]
