"""Pure first-token matching and bound arithmetic (no network).

Everything here works on plain lists of ``(token, logprob)`` alternatives, so it
is unit-tested without a server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._client import _RowError, field


def norm(token: str) -> str:
    """Normalise a token for matching: space marks, outer whitespace, case."""
    # Servers report decoded text, but some leak the BPE/SentencePiece space marks.
    return token.replace("\u2581", " ").replace("\u0120", " ").strip().casefold()


def logsumexp(values) -> float:
    """``log(sum(exp(values)))`` of a non-empty sequence of floats."""
    m = max(values)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in values))


def spellings(label: str) -> int:
    """How many single-token spellings first-token matching typically merges.

    Case variants (as given, lower, capitalised, upper) with and without a
    leading space: the most alternatives one absent label can hide behind the
    top-k cut-off, used to bound its merged probability.
    """
    core = label.strip()
    return 2 * len({core, core.lower(), core.capitalize(), core.upper()})


def parse_alternatives(resp, endpoint):
    """The ranked alternatives and the generated token of the first position.

    Parameters
    ----------
    resp : dict or SDK response
        The answer as parsed JSON (what scoring requests return) or as the
        SDK's ``ChatCompletion`` / ``Completion``.
    endpoint : {"chat", "completions"}

    Returns
    -------
    top : list of (str, float)
        The server's ``top_logprobs`` list.
    chosen : (str, float) or None
        The generated token.

    Raises
    ------
    _RowError
        The response has no choices or no log-probabilities.
    """
    choices = field(resp, "choices")
    if not choices:
        raise _RowError("response has no choices")
    lp = field(choices[0], "logprobs")
    if endpoint == "chat":
        content = field(lp, "content") if lp is not None else None
        if not content:
            raise _RowError("response has no logprobs")
        first = content[0]
        top = [(field(a, "token"), field(a, "logprob"))
               for a in (field(first, "top_logprobs") or [])]
        chosen = (field(first, "token"), field(first, "logprob"))
    else:
        top_lists = field(lp, "top_logprobs") if lp is not None else None
        if not top_lists or not top_lists[0]:
            raise _RowError("response has no logprobs")
        top = list(top_lists[0].items())
        tokens = field(lp, "tokens")
        chosen = (tokens[0], field(lp, "token_logprobs")[0]) if tokens else None
    top = _clean(top)
    chosen = (_clean([chosen]) or [None])[0] if chosen is not None else None
    if not top and chosen is None:
        raise _RowError("response has no logprobs")
    return top, chosen


def _clean(pairs):
    return [
        (str(t), float(v))
        for t, v in pairs
        if v is not None and not math.isnan(float(v))
    ]


@dataclass
class FirstTokenMatch:
    """Label scores read from one position's alternatives.

    Attributes
    ----------
    row : ndarray of shape (n_labels,)
        Log-probabilities; NaN for a failed row or (``missing_label="nan"``)
        an absent label.
    uncovered : float
        ``1 - sum`` of the observed labels' probabilities; NaN for a failed row.
    error : str or None
        Why the row failed.
    bounded : bool
        Some label got the upper bound instead of an observed value.
    """

    row: np.ndarray
    uncovered: float
    error: str | None = None
    bounded: bool = False


def _failed(k, error):
    return FirstTokenMatch(np.full(k, np.nan), math.nan, error)


def match_first_token(top, chosen, keys, missing_label, *, labels=None,
                      n_spellings=None, biased=False):
    """Label log-probabilities from one position's alternatives.

    Parameters
    ----------
    top : list of (str, float)
        The server's ranked alternatives (``top_logprobs``).
    chosen : (str, float) or None
        The generated token; it counts as observed even when ``top`` omits it.
    keys : sequence of str
        Normalised first token of each label.
    missing_label : {"bound", "nan"}
        What a label absent from the alternatives gets when another is present.
    labels : sequence of str, default=None
        The label strings (for messages and spelling counts); ``keys`` if None.
    n_spellings : sequence of int, default=None
        Per label, the number of tokens matching merges into it; estimated by
        :func:`spellings` when None.
    biased : bool, default=False
        Whether the request carried ``logit_bias`` on the label tokens.

    Returns
    -------
    match : FirstTokenMatch

    Notes
    -----
    A label absent from ``top`` has, for each of its spellings, a probability
    no larger than the smallest one shown; its merged probability is bounded
    by ``min(n_spellings * smallest shown, 1 - shown mass)``. With
    ``missing_label="bound"`` it gets that bound, and the row fails when the
    bound is not below the best observed label: the most likely label is then
    unknown (this includes fewer alternatives than labels). Rows that keep a
    bound are flagged (``bounded``). With ``biased``, labels tied at exactly
    the same value (saturated or clipped by the bias) fail the row, and so does
    a generated token less probable than the best reported one, with labels
    absent: the server applied the bias to sampling only and reports unbiased
    log-probs (llama-cpp-python does this), so the bias brought no information.
    """
    k = len(keys)
    labels = list(keys) if labels is None else list(labels)
    alts = list(top)
    outside = chosen is not None and chosen[0] not in {t for t, _ in top}
    if outside:
        alts.append(chosen)
    by_label: list[list[float]] = [[] for _ in range(k)]
    index = {key: j for j, key in enumerate(keys)}
    for token, value in alts:
        j = index.get(norm(token))
        if j is not None:
            by_label[j].append(value)
    row = np.array([logsumexp(v) if v else np.nan for v in by_label])
    observed = ~np.isnan(row)
    if not observed.any():
        return _failed(k, f"none of the labels among the top-{len(alts)} alternatives")
    uncovered = min(1.0, max(0.0, 1.0 - float(np.exp(row[observed]).sum())))
    missing = [labels[j] for j in np.flatnonzero(~observed)]
    if missing and biased and _sampled_from_other_distribution(top, chosen):
        return _failed(k, (
            f"labels {missing!r} not among the top-{len(top)} alternatives, and "
            "logit_bias changed only the generated token: the server reports "
            "log-probabilities without the bias (llama-cpp-python does), so the "
            "labels' ranking is unknown"
        ))
    bounded = False
    if missing and missing_label == "bound":
        shown = [v for _, v in top] or [v for _, v in alts]
        rest = 1.0 - sum(math.exp(v) for _, v in alts)
        for j in np.flatnonzero(~observed):
            count = spellings(labels[j]) if n_spellings is None else n_spellings[j]
            bound = math.log(max(count, 1)) + min(shown)
            if rest > 1e-12:
                bound = min(bound, math.log(rest))
            row[j] = min(bound, 0.0)
        if row[~observed].max() >= row[observed].max():
            return _failed(k, (
                f"labels {missing!r} not among the top-{len(top)} alternatives, "
                "and their upper bound is not below the best observed label, so "
                "the most likely label is unknown (raise top_logprobs, or use "
                "missing_label='nan')"
            ))
        bounded = True
    if biased and _tied(row):
        return _failed(k, (
            "label log-probabilities tied at exactly the same value under "
            "logit_bias (saturated or clipped by the server): no ranking"
        ))
    return FirstTokenMatch(row, uncovered, None, bounded)


def _sampled_from_other_distribution(top, chosen) -> bool:
    """The greedy token is not the most probable reported one.

    At temperature 0 a server that reports the distribution it sampled from
    generates its argmax. A lower generated token means the reported
    log-probabilities ignore what picked it: llama-cpp-python applies
    ``logit_bias`` when sampling only.
    """
    if chosen is None or not top:
        return False
    return chosen[1] < max(v for _, v in top) - 1e-6


def _tied(row) -> bool:
    """Two or more labels share exactly the best finite value."""
    finite = row[np.isfinite(row)]
    return finite.size >= 2 and int((finite == finite.max()).sum()) >= 2
