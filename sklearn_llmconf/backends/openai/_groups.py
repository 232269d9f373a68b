"""Any number of labels over a top-k API: groups of biased labels and an anchor.

A chat API reports at most ``k`` alternatives (OpenAI: 20). With one equal
``logit_bias`` on every label token the labels fill the top-k, but only when
all their tokens (every merged spelling of every label) fit in ``k``. Beyond
that, labels are scored in groups: each request biases one shared *anchor*
label plus at most ``k - len(anchor tokens)`` tokens of other labels. A
server that reports the biased distribution reports, within one request,
``log p(t) + B - log Z_g`` for every biased token ``t``; the normaliser
``Z_g`` differs between groups but cancels in ``score(label) - score(anchor)``.
Every group's scores are shifted onto the first group's scale through the
anchor, so the stitched row has exactly the ratios of the unbiased
distribution. Requests per text: the number of groups, which is
``ceil((n_labels - 1) / (k - 1))`` for single-spelling labels.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
from scipy.special import logsumexp

from ._matching import FirstTokenMatch
from ._tokenizer import LabelSpec

#: The bias of a group's tokens. Larger than the single-request bias: only
#: ratios within a group are used, so the non-label mass may vanish, and every
#: biased token must outrank every unbiased one (a label token of probability
#: above ``exp(-30)`` does).
GROUP_BIAS_VALUE = 30.0


def plan_groups(label_ids, k):
    """The anchor and the groups of other labels, or None when all fit.

    Parameters
    ----------
    label_ids : sequence of tuple of int
        Per label, the token ids of its merged spellings.
    k : int
        Alternatives reported per request (``top_logprobs``).

    Returns
    -------
    plan : (int, list of list of int) or None
        None also when some label has too many spellings to share a request
        with the anchor (such a request would not show them all either way):
        single-request scoring with its bounds then applies.
    """
    if sum(len(ids) for ids in label_ids) <= k:
        return None
    anchor = min(range(len(label_ids)), key=lambda j: (len(label_ids[j]), j))
    budget = k - len(label_ids[anchor])
    groups, current, used = [], [], 0
    for j, ids in enumerate(label_ids):
        if j == anchor:
            continue
        if len(ids) > budget:
            return None
        if used + len(ids) > budget:
            groups.append(current)
            current, used = [], 0
        current.append(j)
        used += len(ids)
    groups.append(current)
    return anchor, groups


def _sub_spec(spec, members) -> LabelSpec:
    ids = sorted({i for j in members for i in spec.label_ids[j]})
    return LabelSpec(
        tuple(spec.keys[j] for j in members),
        {str(i): GROUP_BIAS_VALUE for i in ids},
        tuple(spec.spellings[j] for j in members),
        tuple(spec.label_ids[j] for j in members),
    )


async def score_grouped(one, text, spec, labels, plan):
    """First-token scores of many labels from one request per group.

    Parameters
    ----------
    one : coroutine function
        ``one(text, spec, labels)`` -> ``(FirstTokenMatch, Usage)`` for one
        request (the backend's single-request scorer).
    text : str
    spec : LabelSpec
        With ``label_ids``.
    labels : list of str
    plan : (int, list of list of int)
        From :func:`plan_groups`.

    Returns
    -------
    match : FirstTokenMatch
    usage : Usage
    """
    anchor, groups = plan
    members = [[anchor] + g for g in groups]
    outs = await asyncio.gather(*(
        one(text, _sub_spec(spec, m), [labels[j] for j in m]) for m in members
    ))
    usage = outs[0][1]
    for _, use in outs[1:]:
        usage += use
    k = len(labels)
    row = np.full(k, np.nan)
    scale = None
    for m, (match, _) in zip(members, outs):
        if match.error is not None:
            return FirstTokenMatch(np.full(k, np.nan), math.nan, match.error), usage
        if match.bounded or not np.isfinite(match.row).all():
            missing = [labels[j] for j, v in zip(m, match.row) if not np.isfinite(v)]
            return FirstTokenMatch(np.full(k, np.nan), math.nan, (
                f"labels {missing or [labels[j] for j in m]!r} not all observed "
                "in their biased group of the top-k alternatives"
            )), usage
        if scale is None:
            scale = match.row[0]
        row[m] = match.row - match.row[0] + scale
    # Only the ratios are known: on the first group's (biased) scale the labels
    # of the other groups can add up to more than 1, so the row is renormalised
    # over the labels then (valid log-probabilities, same ratios).
    total = float(logsumexp(row))
    if total > 0:
        row -= total
    uncovered = min(1.0, max(0.0, 1.0 - float(np.exp(row).sum())))
    return FirstTokenMatch(row, uncovered), usage
