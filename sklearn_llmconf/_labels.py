"""Label verbalization: the word shown for each class and the strings scored.

A class becomes a *label word* (``str(class)``, a word from the verbalizer, or a
letter); the words fill ``{labels}`` and end each demonstration; the *label
strings* (the template's answer prefix followed by the word) are what the
backend scores after the prompt.
"""

from __future__ import annotations

__all__ = ["LETTERS", "label_words", "labels_text"]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


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
    return words


def labels_text(verbalizer, words, classes, separator: str) -> str | None:
    """What ``{labels}`` shows: None (the joined words) unless letters are used.

    Letter codes mean nothing by themselves, so ``{labels}`` shows
    ``"A: <class>"`` pairs for them.
    """
    if verbalizer != "letters":
        return None
    return separator.join(f"{w}: {c}" for w, c in zip(words, classes))
