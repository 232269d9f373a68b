"""Which rows of a prediction failed, seen from a wrapping meta-estimator.

An :class:`~sklearn_llmconf.LLMClassifier` applies its ``on_error`` policy to
rows it could not score: uniform probabilities (``"warn"``) or NaN (``"nan"``).
A wrapper that rescales the scores (:class:`~sklearn_llmconf.TemperatureScaler`)
or routes on them must not turn a uniform placeholder into a confident
prediction, yet the numbers alone do not say which rows were placeholders. So
the failed rows travel with the output, in the return value of one call::

    values, failed, reasons = predict_with_failures(estimator, X, "predict_proba")

The protocol, in the order :func:`predict_with_failures` tries it:

1. **A method.** An estimator that knows its failed rows, or wraps one that
   may, defines ``_predict_with_failures(self, X, method)`` returning
   ``(values, failed, reasons)``. A wrapper delegates by calling
   ``predict_with_failures(self.inner, X_inner, method)`` and transforming
   ``values`` (``LLMClassifier`` and ``TemperatureScaler`` do this).
2. **A registration**, for a class one cannot edit: ``@register_failure_delegate(cls)``
   on a function ``(estimator, X, method) -> (values, failed, reasons)``
   (:func:`functools.singledispatch` underneath: subclasses follow their
   parent's registration). It may return ``NotImplemented`` to fall through
   to step 3. scikit-learn's containers are registered here:
   :class:`~sklearn.frozen.FrozenEstimator` (its estimator),
   :class:`~sklearn.pipeline.Pipeline` (its last step on the transformed
   rows) and a soft :class:`~sklearn.ensemble.VotingClassifier`'s
   ``predict_proba`` (a row failed if it failed in any member).
3. **Otherwise** the failed rows are the rows that are not finite.

Nothing is kept between calls, so this works the same in threads and in
worker processes.
"""

from __future__ import annotations

from functools import singledispatch

import numpy as np
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from .._types import NOT_SENT, ScoredRows, finite_rows
from ..utils._warn import warn_external

__all__ = ["NOT_SENT", "ScoredRows", "apply_on_error", "finite_rows",
           "predict_with_failures", "register_failure_delegate"]

def apply_on_error(rows: ScoredRows, on_error: str) -> np.ndarray:
    """The log-scores with the ``on_error`` policy applied to the failed rows.

    Parameters
    ----------
    rows : ScoredRows
    on_error : {"raise", "warn", "nan"}
        ``"raise"``: a ``RuntimeError`` naming the count and the first reason;
        ``"warn"``: uniform rows (zeros) and a warning; ``"nan"``: NaN rows.

    Returns
    -------
    log_scores : ndarray of shape (n_rows, n_classes)
    """
    failed = rows.failed
    if not failed.any():
        return rows.log_proba
    n_failed = int(failed.sum())
    n_not_sent = sum(r == NOT_SENT for r, f in zip(rows.reasons, failed) if f)
    first = next((r for r, f in zip(rows.reasons, failed) if f and r != NOT_SENT),
                 NOT_SENT)
    message = (
        f"{n_failed - n_not_sent} of {len(failed)} rows could not be scored "
        f"(first reason: {first})"
        + (f"; {n_not_sent} more were not sent after it" if n_not_sent else "")
        + "."
    )
    if on_error == "raise":
        raise RuntimeError(
            message + " Set on_error='warn' or 'nan' to keep the other rows."
        )
    log_scores = rows.log_proba.copy()
    if on_error == "warn":
        warn_external(message + " They get uniform probabilities.")
        log_scores[failed] = 0.0
    else:
        log_scores[failed] = np.nan
    return log_scores


def predict_with_failures(estimator, X, method):
    """``estimator.<method>(X)`` with the mask and reasons of its failed rows.

    Parameters
    ----------
    estimator : fitted estimator
    X : input accepted by ``estimator``
    method : {"predict_proba", "predict_log_proba", "decision_function"}
        The response method to call.

    Returns
    -------
    values : ndarray
        What ``getattr(estimator, method)(X)`` returns.
    failed : ndarray of shape (n_samples,), dtype=bool
        Rows that could not be scored (placeholders of the ``on_error``
        policy, or non-finite rows).
    reasons : list of (str or None)
        Per row: why it failed, or another reason the row should not be
        trusted blindly; None for an ordinary row.
    """
    own = getattr(estimator, "_predict_with_failures", None)
    if own is not None:
        return own(X, method)
    found = _failure_delegate(estimator, X, method)
    if found is not NotImplemented:
        return found
    values = np.asarray(getattr(estimator, method)(X), dtype=float)
    failed = ~finite_rows(values)
    return values, failed, _reasons_of(failed, "non-finite scores")


@singledispatch
def _failure_delegate(estimator, X, method):
    return NotImplemented


def register_failure_delegate(cls, func=None):
    """Say how the failed rows of ``cls`` instances are found.

    For a wrapper class one cannot give a ``_predict_with_failures`` method
    (see :mod:`sklearn_llmconf.scoring._failures` for the protocol).

    Parameters
    ----------
    cls : type
        The wrapper class; its subclasses use the same function unless they
        register their own.
    func : callable, default=None
        ``func(estimator, X, method) -> (values, failed, reasons)``, as
        :func:`predict_with_failures` returns them; typically
        ``predict_with_failures`` of the wrapped estimator, transformed. It may
        return ``NotImplemented``: then the non-finite rows are the failed
        ones. None: used as a decorator.

    Returns
    -------
    func : callable
        ``func`` itself (or the decorator).

    Examples
    --------
    >>> from sklearn_llmconf.scoring import (
    ...     predict_with_failures, register_failure_delegate)
    >>> class Wrapper:  # a third-party wrapper holding ``inner``
    ...     def __init__(self, inner):
    ...         self.inner = inner
    >>> @register_failure_delegate(Wrapper)
    ... def _through_wrapper(wrapper, X, method):
    ...     return predict_with_failures(wrapper.inner, X, method)
    """
    if func is None:
        return lambda f: register_failure_delegate(cls, f)
    _failure_delegate.register(cls, func)
    return func


@register_failure_delegate(FrozenEstimator)
def _through_frozen(frozen, X, method):
    return predict_with_failures(frozen.estimator, X, method)


@register_failure_delegate(Pipeline)
def _through_pipeline(pipeline, X, method):
    Xt = pipeline[:-1].transform(X) if len(pipeline.steps) > 1 else X
    return predict_with_failures(pipeline[-1], Xt, method)


@register_failure_delegate(VotingClassifier)
def _through_soft_vote(voter, X, method):
    if voter.voting != "soft" or method != "predict_proba":
        return NotImplemented
    return _soft_vote_with_failures(voter, X)


def _soft_vote_with_failures(voter, X):
    """A soft vote's probabilities; a row failed if any member's row failed."""
    probas, failed, reasons = [], None, None
    for member in voter.estimators_:
        proba, member_failed, member_reasons = predict_with_failures(
            member, X, "predict_proba"
        )
        probas.append(proba)
        if failed is None:
            failed, reasons = member_failed.copy(), list(member_reasons)
            continue
        failed |= member_failed
        reasons = [r if r is not None else m for r, m in zip(reasons, member_reasons)]
    weights = None if voter.weights is None else [
        w for (_, est), w in zip(voter.estimators, voter.weights) if est != "drop"
    ]
    # the average of VotingClassifier.predict_proba
    return np.average(probas, axis=0, weights=weights), failed, reasons


def _reasons_of(failed, reason):
    return [reason if f else None for f in failed]
