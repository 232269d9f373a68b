"""Pure first-token matching and bound arithmetic (no network).

Everything here works on plain lists of ``(token, logprob)`` alternatives, so it
is unit-tested without a server.
"""

from __future__ import annotations

import math

import numpy as np

from ._client import _RowError


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


def parse_alternatives(resp, endpoint):
    """(token, logprob) alternatives for the first generated position.

    The generated token is appended when the server did not list it among the
    alternatives.

    Raises
    ------
    _RowError
        The response has no choices or no log-probabilities.
    """
    if not getattr(resp, "choices", None):
        raise _RowError("response has no choices")
    lp = resp.choices[0].logprobs
    if endpoint == "chat":
        if lp is None or not lp.content:
            raise _RowError("response has no logprobs")
        first = lp.content[0]
        alts = [(a.token, a.logprob) for a in (first.top_logprobs or [])]
        chosen = (first.token, first.logprob)
    else:
        if lp is None or not lp.top_logprobs or not lp.top_logprobs[0]:
            raise _RowError("response has no logprobs")
        alts = list(lp.top_logprobs[0].items())
        chosen = (lp.tokens[0], lp.token_logprobs[0]) if lp.tokens else None
    if chosen is not None and chosen[0] not in {t for t, _ in alts}:
        alts.append(chosen)
    alts = [
        (str(t), float(v))
        for t, v in alts
        if v is not None and not math.isnan(float(v))
    ]
    if not alts:
        raise _RowError("response has no logprobs")
    return alts


def match_first_token(alts, keys, missing_label):
    """Label log-probabilities from one position's alternatives.

    Parameters
    ----------
    alts : list of (str, float)
        The alternatives the server reported.
    keys : sequence of str
        Normalised first token of each label.
    missing_label : {"bound", "nan"}
        What a label absent from ``alts`` gets when another label is present.

    Returns
    -------
    row : ndarray of shape (n_labels,)
    uncovered : float
        ``1 - sum`` of the observed labels' probabilities; NaN for a failed row.
    error : str or None
        Why the row failed (no label among the alternatives).
    """
    k = len(keys)
    by_label: list[list[float]] = [[] for _ in range(k)]
    index = {key: j for j, key in enumerate(keys)}
    for token, value in alts:
        j = index.get(norm(token))
        if j is not None:
            by_label[j].append(value)
    row = np.array([logsumexp(v) if v else np.nan for v in by_label])
    observed = ~np.isnan(row)
    if not observed.any():
        error = f"none of the labels among the top-{len(alts)} alternatives"
        return np.full(k, np.nan), math.nan, error
    uncovered = min(1.0, max(0.0, 1.0 - float(np.exp(row[observed]).sum())))
    if not observed.all() and missing_label == "bound":
        shown = [v for _, v in alts]
        bound = min(shown)
        rest = 1.0 - sum(math.exp(v) for v in shown)
        if rest > 1e-12:
            bound = min(bound, math.log(rest))
        row[~observed] = bound
    return row, uncovered, None
