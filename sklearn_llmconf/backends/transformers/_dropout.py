"""Monte-Carlo dropout: combining stochastic passes into one score and a spread."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax

__all__ = ["combine_passes"]


def _entropy(p, axis=-1):
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=axis)


def combine_passes(log_probs):
    """Average the passes' probabilities; measure how much the passes disagree.

    Parameters
    ----------
    log_probs : ndarray of shape (n_prompts, n_passes, n_labels)
        ``log P(label | prompt)`` of every stochastic pass.

    Returns
    -------
    mean_log_probs : ndarray of shape (n_prompts, n_labels)
        ``log`` of the mean over passes of ``P(label | prompt)``: the
        Monte-Carlo estimate of the predictive probability.
    extra : dict of ndarray of shape (n_prompts,)
        Computed on the distributions over the labels (each pass's
        probabilities renormalised over the labels):
        ``"mc_mutual_information"``, the entropy of the mean distribution
        minus the mean entropy of the passes (BALD; 0 when the passes agree);
        ``"mc_variance"``, the variance over passes summed over labels.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    n_passes = log_probs.shape[1]
    mean = logsumexp(log_probs, axis=1) - np.log(n_passes)
    q = softmax(log_probs, axis=2)
    q_mean = q.mean(axis=1)
    mutual_information = _entropy(q_mean) - _entropy(q).mean(axis=1)
    variance = q.var(axis=1).sum(axis=1)
    return mean, {
        "mc_mutual_information": np.maximum(mutual_information, 0.0),
        "mc_variance": variance,
    }
