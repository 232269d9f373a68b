"""Label verbalization: the word shown for each class and the strings scored.

A class becomes a *label word* (``str(class)``, a word from the verbalizer, or a
letter); the words fill ``{labels}`` and end each demonstration; the *label
strings* (the template's answer prefix followed by the word) are what the
backend scores after the prompt.

When one label string is a prefix of another (``" 1"`` and ``" 10"``, ``" ham"``
and ``" ham radio"``), ``P(" 1" | prompt)`` already contains ``P(" 10" |
prompt)``: the shorter label would take the longer one's mass and the scores
would not be a distribution over the answers. :func:`scored_label_strings` then
ends every label string with the line break that follows an answer in the
prompt's demonstrations, which makes the scored events disjoint: the model's
probability of answering exactly that label.
"""

from __future__ import annotations

__all__ = [
    "LABEL_SEPARATORS",
    "LETTERS",
    "check_label_words",
    "choose_label_separator",
    "has_prefix_pair",
    "label_words",
    "labels_text",
    "scored_label_strings",
]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: What ``label_separator=None`` tries, in order: the first that no label word
#: contains joins the ``{labels}`` list; one label per line when all are taken.
LABEL_SEPARATORS = (", ", "; ", " | ", " / ", "\n")


def choose_label_separator(words, separator=None) -> str:
    """Return ``separator``, or the first :data:`LABEL_SEPARATORS` not in ``words``.

    Parameters
    ----------
    words : sequence of str
        The label words.
    separator : str or None, default=None
        The template's ``label_separator``; None chooses.

    Returns
    -------
    separator : str
        ``", "`` for labels without a comma and space; ``"; "`` for labels
        such as ``"billing, refunds"``; ``"\n"`` (one label per line) when
        every candidate occurs in some word.
    """
    if separator is not None:
        return separator
    for candidate in LABEL_SEPARATORS:
        if not any(candidate in w for w in words):
            return candidate
    return LABEL_SEPARATORS[-1]  # label words hold no line break


def label_words(verbalizer, classes) -> list[str]:
    """Return the word of each class, in ``classes`` order.

    Parameters
    ----------
    verbalizer : dict, list of str, "letters" or None
        See :class:`~sklearn_llmconf.LLMClassifier`.
    classes : ndarray of shape (n_classes,)
        The sorted classes.

    Returns
    -------
    words : list of str
        Non-empty and distinct.
    """
    if verbalizer is None:
        words = [str(c) for c in classes]
    elif verbalizer == "letters":
        if len(classes) > len(LETTERS):
            raise ValueError(
                f"verbalizer='letters' supports at most {len(LETTERS)} classes, "
                f"got {len(classes)}."
            )
        words = list(LETTERS[: len(classes)])
    else:
        if isinstance(verbalizer, (list, tuple)):
            if len(verbalizer) != len(classes):
                raise ValueError(
                    f"The verbalizer lists {len(verbalizer)} words but there "
                    f"are {len(classes)} classes {list(classes)}."
                )
            words = list(verbalizer)
        else:
            missing = [c for c in classes if c not in verbalizer]
            if missing:
                raise ValueError(f"The verbalizer has no word for classes {missing}.")
            words = [verbalizer[c] for c in classes]
        if not all(isinstance(w, str) for w in words):
            raise ValueError("Every verbalizer word must be a str.")
    if any(not w.strip() for w in words):
        raise ValueError(f"Label words must not be empty, got {words}.")
    if len(set(words)) != len(words):
        raise ValueError(f"Label words must be distinct, got {words}.")
    stripped = [w.strip() for w in words]
    if len(set(stripped)) != len(stripped):
        same = sorted({w for w in words if stripped.count(w.strip()) > 1})
        raise ValueError(
            f"Label words {same} differ only in surrounding spaces, so the prompt "
            "shows them alike and the model cannot tell them apart. Strip the "
            "class labels (e.g. y = [s.strip() for s in y]) or give a verbalizer "
            "with distinct words."
        )
    return words


def labels_text(verbalizer, words, classes, separator: str) -> str | None:
    """What ``{labels}`` shows: None (the joined words) unless letters are used.

    Letter codes mean nothing by themselves, so ``{labels}`` shows
    ``"A: <class>"`` pairs for them.
    """
    if verbalizer != "letters":
        return None
    return separator.join(f"{w}: {c}" for w, c in zip(words, classes))


def check_label_words(words, separator: str) -> None:
    """Refuse label words that would corrupt the rendered prompt.

    A word holding the separator of the ``{labels}`` list would read as two
    labels; a line break would end the answer line of a demonstration early.

    Parameters
    ----------
    words : list of str
    separator : str
        The template's ``label_separator``.
    """
    for word in words:
        if "\n" in word or "\r" in word:
            raise ValueError(
                f"Label word {word!r} contains a line break, which would split the "
                "answer line of the prompt; choose words without line breaks (the "
                "verbalizer parameter maps classes to words)."
            )
        if separator.strip() and separator in word:
            raise ValueError(
                f"Label word {word!r} contains the label separator {separator!r}, "
                "so the {labels} list of the prompt would show it as several "
                "labels; choose another word (verbalizer) or label_separator."
            )


def has_prefix_pair(strings) -> bool:
    """True when one of ``strings`` is a proper prefix of another."""
    # In sorted order a string is a prefix of some other one exactly when it is
    # a prefix of the one right after it.
    ordered = sorted(strings)
    return any(b.startswith(a) for a, b in zip(ordered, ordered[1:]))


def scored_label_strings(prefix: str, words, separator: str) -> list[str]:
    """The strings the backend scores, one per label word.

    Parameters
    ----------
    prefix : str
        What separates the prompt from the answer (the template's
        ``label_prefix``).
    words : list of str
        The label words.
    separator : str
        What follows an answer in the demonstrations (``demo_separator``).
        When (and only when) one string is a prefix of another, every string
        ends with the separator up to and including its first line break
        (``"\n"`` for the default ``"\n\n"``): a line break ends an answer
        with or without demonstrations, and label words hold none (chosen by
        ``benchmarks/bench_prefix_marker.py``; figures in the user guide,
        "Labels that are prefixes of other labels"). Other label sets are
        scored exactly as ``prefix + word``.

    Returns
    -------
    strings : list of str
    """
    strings = [prefix + w for w in words]
    if not has_prefix_pair(strings):
        return strings
    line_break = separator.find("\n")
    end = separator[: line_break + 1] if line_break >= 0 else separator
    ended = [s + end for s in strings]
    if not end or has_prefix_pair(ended):
        raise ValueError(
            f"The label strings {strings} include one that is a prefix of another, "
            "so each must be scored with the text that ends an answer, but the "
            f"template's demo_separator {separator!r} does not separate them; use "
            "a demo_separator with a line break."
        )
    return ended
