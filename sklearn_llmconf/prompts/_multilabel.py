"""Prompts for several labels per text: the answer of a label set, the strings scored.

Each label is scored on its own, in one prompt per text, by one of two
layouts (``LogProbs(multilabel=...)`` chooses, ``"label_vs_none"`` by
default):

``"yes_no"``
    A demonstration answers every label on a line of its own, ``"<label>:
    yes"`` or ``"<label>: no"``; the text to classify is followed, for every
    label, by the two strings ``"<label>: yes"`` and ``"<label>: no"``. They
    share the tokens of ``"<label>:"``, so a local backend's label tree
    evaluates each label name once and reads ``yes`` / ``no`` off one
    position: ``log P(yes | ..., label:) - log P(no | ..., label:)`` is the
    label's log-odds.
``"label_vs_none"``
    A demonstration answers the labels that apply as a list (``"comedy,
    drama"``) or ``"none"``; the text to classify is followed by each label
    word and by ``"none"``: the label's score is ``log P(label) - log
    P(none)`` (the label named first against no label at all).

Both are single-label prompts underneath: one forward pass over the text (the
demonstrations are a prefix shared by every text) plus the label tree.
"""

from __future__ import annotations

import numpy as np

from ._labels import scored_label_strings

__all__ = [
    "MULTILABEL_DESIGNS",
    "MULTILABEL_TEMPLATES",
    "NONE_WORD",
    "answer_text",
    "label_set_index",
    "multilabel_demos",
    "multilabel_strings",
]

#: The scoring layouts, the default first (chosen by
#: ``benchmarks/bench_multilabel.py``).
MULTILABEL_DESIGNS = ("label_vs_none", "yes_no")

#: The word of "no label applies" in the ``"label_vs_none"`` layout.
NONE_WORD = "none"

#: The template used when the classifier's ``prompt`` is None, per layout.
MULTILABEL_TEMPLATES = {
    "yes_no": ("Say for each label whether it applies to the text. "
               "Labels: {labels}.\n\nText: {text}\n"),
    "label_vs_none": ("List the labels that apply to the text, from: {labels}; "
                      "or none.\n\nText: {text}\nLabels:"),
}


def answer_text(design: str, words, present) -> str:
    """The answer a demonstration shows for its label set.

    Parameters
    ----------
    design : {"yes_no", "label_vs_none"}
    words : sequence of str
        The label words, in ``classes_`` order.
    present : sequence of bool
        Whether each label applies to the demonstration.

    Returns
    -------
    answer : str
        ``"yes_no"``: one ``"<word>: yes|no"`` line per label;
        ``"label_vs_none"``: the words that apply joined by ``", "``, or
        ``"none"``.

    Examples
    --------
    >>> from sklearn_llmconf.prompts._multilabel import answer_text
    >>> print(answer_text("yes_no", ["comedy", "drama"], [True, False]))
    comedy: yes
    drama: no
    >>> answer_text("label_vs_none", ["comedy", "drama"], [False, False])
    'none'
    """
    if design == "yes_no":
        return "\n".join(f"{w}: {'yes' if p else 'no'}"
                         for w, p in zip(words, present, strict=True))
    chosen = [w for w, p in zip(words, present, strict=True) if p]
    return ", ".join(chosen) if chosen else NONE_WORD


def multilabel_strings(design: str, prefix: str, words, separator: str) -> list[str]:
    """The strings the backend scores after each prompt.

    Parameters
    ----------
    design : {"yes_no", "label_vs_none"}
    prefix : str
        The template's ``label_prefix``.
    words : sequence of str
    separator : str
        The template's ``demo_separator`` (ends a label string that is the
        prefix of another, see :func:`scored_label_strings`).

    Returns
    -------
    strings : list of str
        ``"yes_no"``: ``2 k`` strings, ``yes`` then ``no`` of each label;
        ``"label_vs_none"``: ``k + 1`` strings, the labels then ``"none"``.
    """
    if design == "yes_no":
        return [f"{prefix}{w}: {answer}" for w in words for answer in ("yes", "no")]
    return scored_label_strings(prefix, [*words, NONE_WORD], separator)


def label_set_index(Y) -> np.ndarray:
    """The index of each row's label set among the distinct label sets.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_labels)
        Binary indicator matrix.

    Returns
    -------
    index : ndarray of int of shape (n_samples,)
        Equal for rows with equal label sets (used to stratify by label set).
    """
    _, index = np.unique(np.asarray(Y, dtype=np.int8), axis=0, return_inverse=True)
    return np.asarray(index).ravel()


def multilabel_demos(Y, n_shots: int, selection: str, rng) -> np.ndarray:
    """Rows of ``Y`` shown as demonstrations.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_labels)
        Indicator matrix of the candidate rows.
    n_shots : int
    selection : {"stratified", "random"}
        ``"stratified"``: labels take turns, rarest first, each picking one of
        its positive rows not yet picked, until every label has as many
        positives shown as the turns allow; rows without a label fill a share
        of the shots equal to their share of the data (at least one when
        there are some); the rest is random. ``"random"``: a random sample.
    rng : RandomState

    Returns
    -------
    index : ndarray of int
        At most ``n_shots`` distinct rows, in a random order.
    """
    Y = np.asarray(Y, dtype=bool)
    n = len(Y)
    n_shots = min(n_shots, n)
    if selection == "random":
        return rng.permutation(n)[:n_shots]
    picked: list[int] = []
    taken = np.zeros(n, dtype=bool)
    empty = np.flatnonzero(~Y.any(axis=1))
    n_empty = 0 if not len(empty) else max(1, round(n_shots * len(empty) / n))
    n_empty = min(n_empty, len(empty), n_shots)
    order = np.argsort(Y.sum(axis=0), kind="stable")
    pools = [list(rng.permutation(np.flatnonzero(Y[:, j]))) for j in order]
    while len(picked) < n_shots - n_empty and any(pools):
        for pool in pools:
            while pool and taken[pool[0]]:
                pool.pop(0)
            if pool and len(picked) < n_shots - n_empty:
                i = pool.pop(0)
                taken[i] = True
                picked.append(i)
    for i in rng.permutation(empty)[:n_empty]:
        taken[i] = True
        picked.append(int(i))
    rest = rng.permutation(np.flatnonzero(~taken))[: n_shots - len(picked)]
    picked.extend(int(i) for i in rest)
    return rng.permutation(np.asarray(picked, dtype=int))
