"""Label-free prior corrections of LLM label scores.

A language model prompted to classify favours some label words regardless of
the input: because of the instructions, the demonstrations (their labels and
order) and the words' own frequency. Both corrections here estimate that
prior, without labels, and divide it out of every row's probabilities:

``q(y | x) ∝ p(y | x) / prior(y)``, i.e. ``log q = log p - log prior``
renormalised over the labels.

- **contextual** (Zhao et al. 2021): the prior is the mean probability the
  model gives to content-free inputs ("N/A", "", "[MASK]") under the same prompt
  and demonstrations. It is estimated once, in ``fit``.
- **batch** (Zhou et al. 2024): the prior is the mean predicted probability over
  the rows being predicted. It needs no extra model call, but the batch must be
  representative of the data: one text alone would be divided by itself and
  come out uniform.

References
----------
.. [1] Z. Zhao, E. Wallace, S. Feng, D. Klein, S. Singh. "Calibrate Before Use:
   Improving Few-Shot Performance of Language Models", ICML 2021.
.. [2] H. Zhou, X. Wan, L. Proleev, D. Mincu, J. Chen, K. Heller, S. Roy.
   "Batch Calibration: Rethinking Calibration for In-Context Learning and
   Prompt Engineering", ICLR 2024.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax

from ..utils._warn import warn_external

__all__ = [
    "CONTENT_FREE_INPUTS",
    "apply_prior",
    "estimate_prior",
    "min_batch_size",
]

#: The content-free inputs of Zhao et al. (2021), each filling every text field.
CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")


def min_batch_size(n_classes: int) -> int:
    """Smallest batch for which batch correction does not warn.

    Ten rows per class: below that, the mean probability of a class is mostly
    the noise of the few rows that happen to be in the batch.
    """
    return 10 * n_classes


def estimate_prior(log_scores: np.ndarray) -> np.ndarray:
    """Mean label distribution of the rows whose scores are all finite.

    Parameters
    ----------
    log_scores : ndarray of shape (n_rows, n_classes)
        Per-label log-probabilities (not necessarily normalised over the labels;
        each row is normalised first). Rows with a NaN or infinite score are
        ignored.

    Returns
    -------
    prior : ndarray of shape (n_classes,)
        Sums to 1.

    Raises
    ------
    ValueError
        If no row is finite.
    """
    finite = np.isfinite(log_scores).all(axis=1)
    if not finite.any():
        raise ValueError(
            "No row could be scored, so the label prior cannot be estimated."
        )
    # Mean of probabilities (not of log-probabilities), as in both papers.
    return softmax(log_scores[finite], axis=1).mean(axis=0)


def apply_prior(log_scores: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Divide ``prior`` out of every row: ``log_softmax(log p - log prior)``.

    Parameters
    ----------
    log_scores : ndarray of shape (n_rows, n_classes)
        Per-label log-probabilities; each row is normalised over the labels
        first, so the result does not depend on the labels' leftover mass.
    prior : ndarray of shape (n_classes,)
        Positive label distribution.

    Returns
    -------
    corrected : ndarray of shape (n_rows, n_classes)
        Log-probabilities normalised over the labels. Non-finite input rows
        stay non-finite.
    """
    # A prior of 0 (underflow) would make the class certain; floor it instead.
    log_prior = np.log(np.clip(prior, np.finfo(float).tiny, None))
    with np.errstate(invalid="ignore"):
        return log_softmax(log_softmax(log_scores, axis=1) - log_prior, axis=1)


def warn_small_batch(n_rows: int, n_classes: int) -> None:
    """Warn when a batch is too small to estimate its label prior."""
    needed = min_batch_size(n_classes)
    if n_rows < needed:
        warn_external(
            f"prior_correction='batch' estimates the label prior from the "
            f"{n_rows} row(s) being predicted; with {n_classes} classes at least "
            f"{needed} representative rows are needed for a stable estimate (a "
            "single text comes out uniform). Predict whole batches, or use "
            "prior_correction='contextual'.",
        )
