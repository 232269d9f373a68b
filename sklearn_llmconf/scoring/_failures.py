"""Which rows of a scoring call failed, seen from a wrapping meta-estimator.

An :class:`~sklearn_llmconf.LLMClassifier` applies its ``on_error`` policy to
rows it could not score: uniform probabilities (``"warn"``) or NaN (``"nan"``).
A wrapper that rescales the scores (:class:`~sklearn_llmconf.TemperatureScaler`)
or routes on them must not turn a uniform placeholder into a confident
prediction, yet it only sees the numbers. So the wrapper asks for the failure
mask out of band, through a thread-local record that works across
``FrozenEstimator``, ``Pipeline`` and any other estimator in between::

    with record_failed_rows() as failed:
        logits = estimator.decision_function(X)
    mask = failed.mask(len(logits))   # True for the rows that failed

The scoring side calls :func:`report_failed_rows` once per scoring call with its
boolean mask. Records nest: every active record receives the report, so a
scaler inside a router sees the same mask as the router.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

__all__ = ["FailedRows", "record_failed_rows", "report_failed_rows"]

_local = threading.local()


class FailedRows:
    """Failure mask of the scoring calls made inside :func:`record_failed_rows`.

    Attributes
    ----------
    masks : list of ndarray of bool
        One mask per scoring call, in call order.
    """

    def __init__(self):
        self.masks: list[np.ndarray] = []

    def mask(self, n_rows: int) -> np.ndarray:
        """Rows that failed in the scoring call(s) covering ``n_rows`` rows.

        When several scoring calls covered the same rows (for example a soft
        vote over several classifiers), a row failed if it failed in any of
        them. Calls of another length (content-free inputs, a nested
        estimator's own fitting) are ignored.

        Parameters
        ----------
        n_rows : int
            Number of rows of the wrapper's input.

        Returns
        -------
        mask : ndarray of shape (n_rows,), dtype=bool
        """
        out = np.zeros(n_rows, dtype=bool)
        for m in self.masks:
            if len(m) == n_rows:
                out |= m
        return out


def _stack() -> list:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


@contextmanager
def record_failed_rows():
    """Collect the failure masks of every scoring call made in this block.

    Yields
    ------
    failed : FailedRows
    """
    record = FailedRows()
    stack = _stack()
    stack.append(record)
    try:
        yield record
    finally:
        stack.remove(record)


def report_failed_rows(mask) -> None:
    """Tell every active :func:`record_failed_rows` block which rows failed.

    Parameters
    ----------
    mask : array-like of bool of shape (n_rows,)
        True for the rows of this scoring call that could not be scored.
    """
    stack = getattr(_local, "stack", None)
    if stack:
        mask = np.asarray(mask, dtype=bool).copy()
        for record in stack:
            record.masks.append(mask)
