"""Per-label log-odds from the scores of a multi-label prompt's strings.

The backend scores the strings of :func:`~sklearn_llmconf.prompts._multilabel.
multilabel_strings` after each prompt, like the labels of a single-label
prompt; this module turns that ``(n, m)`` row of log-probabilities into one
log-odds per label, ``(n, k)``:

``"yes_no"`` (``m = 2 k``)
    ``log P("<label>: yes") - log P("<label>: no")``, which is
    ``log P(yes | prompt, "<label>:") - log P(no | prompt, "<label>:")``:
    the shared ``"<label>:"`` cancels.
``"label_vs_none"`` (``m = k + 1``)
    ``log P(label) - log P("none")``.

A row is failed (NaN) when any of its strings was not observed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["label_log_odds", "n_scored_strings"]


def n_scored_strings(design: str, n_labels: int) -> int:
    """How many strings the backend scores per prompt for ``n_labels`` labels."""
    return 2 * n_labels if design == "yes_no" else n_labels + 1


def label_log_odds(design: str, log_probs, n_labels: int) -> np.ndarray:
    """The log-odds of each label from the scores of the scored strings.

    Parameters
    ----------
    design : {"yes_no", "label_vs_none"}
    log_probs : ndarray of shape (n_samples, n_scored_strings)
        NaN rows failed.
    n_labels : int

    Returns
    -------
    log_odds : ndarray of shape (n_samples, n_labels)
        A whole row is NaN when any of its strings is NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_llmconf.scoring._multilabel import label_log_odds
    >>> label_log_odds("yes_no", np.log([[0.6, 0.2, 0.1, 0.1]]), 2).round(3)
    array([[1.099, 0.   ]])
    """
    log_probs = np.asarray(log_probs, dtype=float)
    expected = n_scored_strings(design, n_labels)
    if log_probs.ndim != 2 or log_probs.shape[1] != expected:
        raise ValueError(
            f"Expected scores of shape (n, {expected}) for {n_labels} labels "
            f"with multilabel={design!r}, got {log_probs.shape}."
        )
    if design == "yes_no":
        out = log_probs[:, 0::2] - log_probs[:, 1::2]
    else:
        out = log_probs[:, :n_labels] - log_probs[:, [n_labels]]
    bad = ~np.isfinite(log_probs).all(axis=1)
    out[bad] = np.nan
    return out
