"""LogisticRegressionCV across the supported scikit-learn releases."""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.linear_model import LogisticRegressionCV

__all__ = ["log_loss_scoring", "logistic_cv", "neg_log_loss"]


def logistic_cv(**params):
    """``LogisticRegressionCV(**params)``, L2, without transition warnings.

    scikit-learn 1.9 warns unless ``l1_ratios`` and ``use_legacy_attributes``
    are given; 1.8 has neither transition.

    Parameters
    ----------
    **params : dict
        Passed to :class:`~sklearn.linear_model.LogisticRegressionCV`.

    Returns
    -------
    model : LogisticRegressionCV
    """
    if "use_legacy_attributes" in inspect.signature(LogisticRegressionCV).parameters:
        params = {"l1_ratios": (0.0,), "use_legacy_attributes": False, **params}
    return LogisticRegressionCV(**params)


def neg_log_loss(estimator, X, y):
    """``"neg_log_loss"`` for a fitted classifier, without per-call validation.

    The same number as scikit-learn's scorer (probabilities clipped to
    ``[eps, 1 - eps]``, the mean of ``-log p(true class)``; bit-identical:
    the same values summed in the same order), in a tenth of the time:
    :class:`~sklearn.linear_model.LogisticRegressionCV` calls its scorer once
    per fold and ``C`` on a few dozen rows, where the metric's input checks
    (about 1.4 ms a call; ``benchmarks/bench_fast_scorer.py``) cost more
    than the prediction. Every label of ``y``
    must be in ``estimator.classes_`` (LogisticRegressionCV gives the folds'
    models every class of the training set).

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba`` and sorted ``classes_``
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)

    Returns
    -------
    score : float
        Minus the mean log loss (greater is better).
    """
    proba = np.asarray(estimator.predict_proba(X))
    eps = np.finfo(proba.dtype).eps
    column = np.searchsorted(estimator.classes_, np.asarray(y))
    true = np.clip(proba, eps, 1 - eps)[np.arange(len(column)), column]
    return -float(np.mean(-np.log(true)))


def log_loss_scoring(labels):
    """``scoring`` for a LogisticRegressionCV whose folds may lack a class.

    :func:`neg_log_loss`: scikit-learn's ``"neg_log_loss"`` without its
    per-call checks. Its folds' models know every class of the training
    labels, so a validation fold lacking a class is scored (scikit-learn
    1.8's ``"neg_log_loss"`` raised there: "y_true and y_prob contain
    different number of classes").

    Parameters
    ----------
    labels : array-like of shape (n_classes,)
        The classes of the whole training set (kept for the callers; the
        folds' models carry them).

    Returns
    -------
    scoring : callable
    """
    return neg_log_loss
