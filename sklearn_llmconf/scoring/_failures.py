"""Which rows of a prediction failed, seen from a wrapping meta-estimator.

An :class:`~sklearn_llmconf.LLMClassifier` applies its ``on_error`` policy to
rows it could not score: uniform probabilities (``"warn"``) or NaN (``"nan"``).
A wrapper that rescales the scores (:class:`~sklearn_llmconf.TemperatureScaler`)
or routes on them must not turn a uniform placeholder into a confident
prediction, yet the numbers alone do not say which rows were placeholders. So
the failed rows travel with the output, in the return value of one call::

    values, failed, reasons = predict_with_failures(estimator, X, "predict_proba")

An estimator that knows its failed rows says so through a
``_predict_with_failures(X, method)`` method with the same return value; this
function unwraps the containers scikit-learn puts around it
(:class:`~sklearn.frozen.FrozenEstimator`, :class:`~sklearn.pipeline.Pipeline`,
a soft :class:`~sklearn.ensemble.VotingClassifier`). Any other estimator's
failed rows are the rows that are not finite. Nothing is kept between calls, so
this works the same in threads and in worker processes.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from .._types import NOT_SENT, ScoredRows, finite_rows
from ..utils._warn import warn_external

__all__ = ["NOT_SENT", "ScoredRows", "apply_on_error", "finite_rows",
           "predict_with_failures"]

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
    if isinstance(estimator, FrozenEstimator):
        return predict_with_failures(estimator.estimator, X, method)
    if isinstance(estimator, Pipeline):
        Xt = estimator[:-1].transform(X) if len(estimator.steps) > 1 else X
        return predict_with_failures(estimator[-1], Xt, method)
    if (isinstance(estimator, VotingClassifier) and estimator.voting == "soft"
            and method == "predict_proba"):
        return _soft_vote_with_failures(estimator, X)
    values = np.asarray(getattr(estimator, method)(X), dtype=float)
    failed = ~finite_rows(values)
    return values, failed, _reasons_of(failed, "non-finite scores")


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
