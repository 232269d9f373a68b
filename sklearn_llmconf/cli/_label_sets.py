"""Several labels per row: the options, the label cells and the split.

``fit --multilabel`` reads a label column whose cells hold several labels,
``"comedy;romance"``, split on ``--label-separator`` (default ``";"``; the
spaces around each label are dropped, and so are empty parts such as a
trailing separator). This separator belongs to the data file; the prompt's
own ``label_separator`` (how the prompt lists the label words) is another
setting, chosen by the prompt template.

A row with no label at all (an empty cell, or separators only) is refused,
as a label forgotten by the annotator, unless ``--allow-no-label`` says that
such a row is one that no label applies to. Without ``--multilabel`` nothing
is split: a label holding the separator is one class, as before.
"""

from __future__ import annotations

import numpy as np

from ._data import CLIError

__all__ = ["DEFAULT_SEPARATOR", "add_label_set_options", "check_options",
           "join_labels", "read_label_sets", "split_label_sets",
           "wants_multilabel"]

#: The default separator of the labels in one cell.
DEFAULT_SEPARATOR = ";"

#: The default target precision of every label and direction.
DEFAULT_TARGET = 0.9


def add_label_set_options(p):
    """``fit``'s options for several labels per row."""
    from ._args import fraction

    g = p.add_argument_group(
        "several labels per row (--multilabel)",
        "The label column holds a set of labels per row; the model scores each "
        "label on its own and certifies a threshold per label and direction.")
    g.add_argument("--multilabel", action="store_true",
                   help="the label column holds several labels per row")
    g.add_argument("--label-separator", dest="label_set_separator", default=None,
                   metavar="SEP",
                   help="with --multilabel: what separates the labels of one "
                        f"row in --label-column (default {DEFAULT_SEPARATOR!r}); "
                        "not how the prompt lists the labels")
    g.add_argument("--allow-no-label", action="store_true",
                   help="with --multilabel: an empty label cell is a row that no "
                        "label applies to (default: refused)")
    g.add_argument("--target-precision", type=fraction, default=None,
                   help="with --multilabel: the precision certified for every "
                        "label and direction, in place of --tiers (default "
                        f"{DEFAULT_TARGET})")


def wants_multilabel(args) -> bool:
    """Whether ``fit``'s arguments ask for a multi-label model."""
    return bool(getattr(args, "multilabel", False))


def check_options(args) -> None:
    """Refuse multi-label options without ``--multilabel`` and the reverse.

    Sets ``args.label_set_separator`` and ``args.target_precision`` to their
    defaults for a multi-label fit.
    """
    given = [flag for flag, value in (
        ("--label-separator", args.label_set_separator is not None),
        ("--allow-no-label", args.allow_no_label),
        ("--target-precision", args.target_precision is not None)) if value]
    if not args.multilabel:
        if given:
            raise CLIError(f"{given[0]} is for several labels per row: give "
                           "--multilabel too.")
        return
    if args.tiers is not None:
        raise CLIError("--tiers is for one label per row; a --multilabel model "
                       "certifies every label at --target-precision (tiers: "
                       "accept when every label of a row is decided, else review).")
    if args.gguf and len(args.gguf) > 1:
        raise CLIError("several --gguf (a hybrid of several LLMs) take one label "
                       "per row; give one --gguf with --multilabel.")
    if args.cv_folds < 2:
        raise CLIError("--cv-folds must be at least 2.")
    if args.label_set_separator is None:
        args.label_set_separator = DEFAULT_SEPARATOR
    if not args.label_set_separator.strip():
        raise CLIError("--label-separator must hold a character other than "
                       f"spaces, got {args.label_set_separator!r}.")
    if args.target_precision is None:
        args.target_precision = DEFAULT_TARGET


def parse_cell(cell, separator) -> list[str]:
    """The labels of one cell, in order, each once, spaces stripped."""
    return list(dict.fromkeys(
        part.strip() for part in cell.split(separator) if part.strip()))


def join_labels(labels, separator) -> str:
    """The labels of one row as a cell (the reverse of the split)."""
    return separator.join(labels)


def read_label_sets(table, columns, label_column, separator, allow_empty,
                    known=None):
    """Every row's text values and its label set.

    Parameters
    ----------
    table : Table
    columns : list of str
        The text columns, then the label column.
    label_column : str
    separator : str
    allow_empty : bool
        Whether a row may have no label.
    known : sequence of str, default=None
        The labels a model knows (``report``): any other is refused.

    Returns
    -------
    rows : list of list of str
        The text values of each row.
    sets : list of list of str
        The labels of each row.
    """
    rows, sets = [], []
    known_set = None if known is None else set(known)
    for where, values in table.records(columns, labels=None):
        labels = parse_cell(values[-1], separator)
        if not labels and not allow_empty:
            raise CLIError(
                f"{table.name}: {where} has no label in column {label_column!r} "
                f"(cell {values[-1]!r}, labels separated by {separator!r}); pass "
                "--allow-no-label if no label applies to such a row.")
        if known_set is not None:
            unknown = [lab for lab in labels if lab not in known_set]
            if unknown:
                raise CLIError(
                    f"{table.name}: {where} has the label {unknown[0]!r}, which "
                    f"the model does not know; its labels are: "
                    f"{', '.join(known)}.")
        rows.append(values[:-1])
        sets.append(labels)
    if not rows:
        raise CLIError(f"{table.name}: no data rows.")
    return rows, sets


def split_label_sets(Y, fraction, seed):
    """Training and certification row indices for an indicator matrix.

    A seeded random split (label sets are too many to stratify on), then:
    the rows of a label with a single positive row train (as a class of one
    row does for one label per row), and a label left without a positive
    training row gets one of its certification rows moved to training, so
    that the classifier sees every label applied at least once.

    Returns
    -------
    train, cert : ndarray of int
    """
    from sklearn.model_selection import train_test_split

    Y = np.asarray(Y, dtype=bool)
    n = len(Y)
    single = Y[:, Y.sum(axis=0) == 1].any(axis=1)
    idx = np.flatnonzero(~single)
    if len(idx) < 2:
        raise CLIError(f"cannot split {n} labelled rows into training and "
                       "certification rows.")
    try:
        train, cert = train_test_split(idx, test_size=fraction, random_state=seed)
    except ValueError as exc:
        raise CLIError(f"cannot split {n} labelled rows ({exc}).") from None
    train = list(np.concatenate([train, np.flatnonzero(single)]))
    cert = list(cert)
    for j in range(Y.shape[1]):
        if not Y[train, j].any():
            move = next(i for i in cert if Y[i, j])
            cert.remove(move)
            train.append(move)
    if not cert:
        raise CLIError(f"{n} labelled rows leave no certification row.")
    return np.array(sorted(train)), np.array(sorted(cert))
