"""Text normalisation and de-duplication: one duplicate rule for the bundled
data sets (``scripts/make_datasets.py``) and for few-shot demonstrations
(``_demos.py``).

This module uses the standard library only, so that the build script can load it
without importing numpy or scikit-learn.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

__all__ = ["dedup_records", "normalize_text"]

_NON_WORD = re.compile(r"[\W_]+")
_SPACE = re.compile(r"\s+")

T = TypeVar("T")


def normalize_text(text: str) -> str:
    """Return the key under which two texts count as duplicates.

    The key is the text after Unicode NFKC normalisation, case folding, replacing
    every run of characters that are neither letters nor digits (punctuation,
    symbols, underscores, whitespace) by one space, and stripping. A text made only
    of punctuation (an SMS ``":)"``, say) would map to the empty string; its key is
    then the case-folded text with whitespace collapsed, so that such texts are
    duplicates only of each other's exact spelling.

    Parameters
    ----------
    text : str
        The text to normalise.

    Returns
    -------
    key : str
        The normalised key.

    Examples
    --------
    >>> from sklearn_llmconf.prompts._text import normalize_text
    >>> normalize_text("Ok lar...  Joking wif u oni!")
    'ok lar joking wif u oni'
    >>> normalize_text(":-) :-)")
    ':-) :-)'
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    key = _NON_WORD.sub(" ", folded).strip()
    if not key:
        key = _SPACE.sub(" ", folded).strip()
    return key


def dedup_records(
    records: Iterable[T],
    *,
    text: Callable[[T], str],
    label: Callable[[T], Sequence[str] | str],
) -> tuple[list[T], dict[str, int]]:
    """De-duplicate records by normalised text, dropping label conflicts.

    Records whose texts share a :func:`normalize_text` key form a group. A group
    whose records all carry the same label keeps its first record (in input
    order). A group whose records carry two or more different labels is dropped
    entirely: no label for that text can be trusted, and keeping any one of them
    would put the same text in the data under a contested label.

    Parameters
    ----------
    records : iterable
        The records, in source order.
    text : callable
        Returns a record's text.
    label : callable
        Returns a record's label (any hashable value; a tuple for several label
        columns, in which case a conflict in any column drops the group).

    Returns
    -------
    kept : list
        The kept records, in source order.
    stats : dict
        ``n_in`` (records read), ``n_groups`` (distinct keys), ``n_conflict_groups``
        and ``n_conflict_records`` (dropped for conflicting labels), ``n_out``.
    """
    records = list(records)
    first: dict[str, int] = {}
    labels: dict[str, set] = {}
    sizes: dict[str, int] = {}
    keys = []
    for i, rec in enumerate(records):
        key = normalize_text(text(rec))
        keys.append(key)
        first.setdefault(key, i)
        labels.setdefault(key, set()).add(label(rec))
        sizes[key] = sizes.get(key, 0) + 1
    conflicts = {k for k, labs in labels.items() if len(labs) > 1}
    kept = [
        rec
        for i, (rec, key) in enumerate(zip(records, keys, strict=True))
        if first[key] == i and key not in conflicts
    ]
    stats = {
        "n_in": len(records),
        "n_groups": len(first),
        "n_conflict_groups": len(conflicts),
        "n_conflict_records": sum(sizes[k] for k in conflicts),
        "n_out": len(kept),
    }
    return kept, stats
