"""Turning X (texts, 2-D arrays, DataFrames) into rows of prompt field values.

Every cell must be text (a number is accepted in a 2-D column); anything else
raises a ``ValueError`` naming the row (and column) where it sits.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d, validate_data

__all__ = ["check_cell", "check_indicator", "check_targets", "is_2d",
           "is_indicator", "rows_from_X"]


def check_cell(value, where: str, *, numbers_ok: bool) -> str:
    """Return a cell of X as text, or raise a ValueError saying where and why."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            # A lone surrogate (e.g. from a JSON "\ud800" escape) is not text a
            # model can read; say which row before anything is scored (#11).
            raise ValueError(
                f"Input X has a lone surrogate {value[exc.start]!r} at {where}, "
                f"position {exc.start}: not valid Unicode text. Repair it first, "
                "e.g. text.encode('utf-8', 'replace').decode('utf-8')."
            ) from None
        return value
    if value is None:
        raise ValueError(f"Input X contains None at {where}; expected a str.")
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isnan(value):
            raise ValueError(f"Input X contains NaN at {where}; expected a str.")
        if math.isinf(value):
            raise ValueError(f"Input X contains inf at {where}; expected a str.")
        if numbers_ok:
            return str(value)  # a numeric column fills its field as text
    elif isinstance(value, numbers.Complex):
        raise ValueError(f"Complex data not supported: input X has one at {where}.")
    raise ValueError(
        f"Input X has a {type(value).__name__} at {where}; expected a str"
        + (" or a number." if numbers_ok else ".")
    )


def is_2d(X) -> bool:
    """True for a DataFrame, a list of rows or a 2-D array."""
    if hasattr(X, "columns"):  # a DataFrame
        return True
    if isinstance(X, (list, tuple)):
        return len(X) > 0 and isinstance(X[0], (list, tuple, np.ndarray))
    return np.ndim(X) == 2


def rows_from_X(estimator, X, fields, *, reset: bool) -> list[tuple[str, ...]]:
    """Turn X into one tuple of field values per row, with clear errors.

    Parameters
    ----------
    estimator : estimator
        Holds ``n_features_in_`` / ``feature_names_in_`` for 2-D X (set when
        ``reset``, checked otherwise, as by :func:`validate_data`).
    X : sequence of str or array-like of shape (n_samples, n_columns)
    fields : tuple of str
        The prompt's field placeholders. 1-D X fills ``("text",)``; 2-D X fills
        them by column name, by position, or (one field) joins all columns.
    reset : bool
        True in ``fit``.

    Returns
    -------
    rows : list of tuple of str
    """
    if X is None:
        raise ValueError(
            f"{type(estimator).__name__} needs X: a sequence of texts or a 2-D "
            "array / DataFrame of text columns, got None."
        )
    if isinstance(X, (str, bytes)):
        raise ValueError(
            "Expected a sequence of texts (e.g. a list of str), got a single "
            f"{type(X).__name__}. Wrap it in a list: [text]."
        )
    if sp.issparse(X):
        raise TypeError(
            f"Sparse data was passed for X, but {type(estimator).__name__} needs "
            "texts: sparse input is not supported."
        )
    if not (isinstance(X, (list, tuple)) or hasattr(X, "columns")):
        # Array-likes, Series, generators: one conversion, no per-cell copies.
        X = np.asarray(X, dtype=object) if hasattr(X, "__array__") else list(X)
    if is_2d(X):
        return _rows_2d(estimator, X, fields, reset=reset)
    if not reset and hasattr(estimator, "n_features_in_"):
        raise ValueError(
            f"Expected 2-D X with {estimator.n_features_in_} columns, as in fit, "
            "got 1-D X. Reshape your data or pass a DataFrame."
        )
    if reset and hasattr(estimator, "n_features_in_"):
        del estimator.n_features_in_
    if fields != ("text",):
        raise ValueError(
            "1-D X fills the {text} placeholder, but the prompt's fields "
            f"are {list(fields)}. Pass 2-D X (a DataFrame) with these columns."
        )
    # np.ndim of a list of str would build a fixed-width copy of every text
    # (4 bytes a character of the longest one): a list is 1-D here already.
    if not isinstance(X, (list, tuple)) and np.ndim(X) != 1:
        raise ValueError(f"X must be 1-D or 2-D, got {np.ndim(X)}-D.")
    rows = [(check_cell(v, f"row {i}", numbers_ok=False),) for i, v in enumerate(X)]
    if reset and not rows:
        raise ValueError("X has no rows: at least one text is required.")
    return rows


def _rows_2d(estimator, X, fields, *, reset: bool) -> list[tuple[str, ...]]:
    X_arr = validate_data(
        estimator, X, reset=reset, dtype=None, ensure_all_finite=False,
        ensure_min_samples=1,
    )
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and set(fields) <= set(names):
        cols = [int(np.flatnonzero(names == f)[0]) for f in fields]
    elif X_arr.shape[1] == len(fields):
        cols = list(range(len(fields)))
    elif len(fields) == 1:
        cols = None  # every column is a part of the one text field
    else:
        raise ValueError(
            f"The prompt's fields {list(fields)} cannot be matched to X's "
            f"{X_arr.shape[1]} columns"
            + (f" {list(names)}" if names is not None else "")
            + ": name the columns after the fields (a DataFrame), or pass one "
            "column per field in template order."
        )
    rows = []
    for i, row in enumerate(X_arr):
        cells = [
            check_cell(v, f"row {i}, column {j}", numbers_ok=True)
            for j, v in enumerate(row if cols is None else row[cols])
        ]
        rows.append(tuple(cells) if cols is not None else ("\n".join(cells),))
    return rows


def _is_missing(value) -> bool:
    """None, NaN, pandas.NA or NaT."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT; pandas.NA raises
    except TypeError:
        return True


def check_targets(y, n_rows: int) -> np.ndarray:
    """Return ``y`` as a 1-D array of class labels, one per row of X.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    n_rows : int
        Number of rows of X.

    Returns
    -------
    y : ndarray of shape (n_samples,)
    """
    y = column_or_1d(y, warn=True)
    if len(y) != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {len(y)}: they must match.")
    if y.dtype == object or y.dtype.kind == "f":
        missing = [i for i, v in enumerate(y) if _is_missing(v)]
        if missing:
            raise ValueError(
                f"y contains {y[missing[0]]!r} at row {missing[0]} "
                f"({len(missing)} row(s) in all), a missing label; every sample "
                "needs a class label. Drop the unlabelled rows or give them a "
                "class."
            )
    check_classification_targets(y)
    return y


def is_indicator(y) -> bool:
    """Whether ``y`` is a multi-label indicator matrix (2-D, 0/1, > 1 column)."""
    if hasattr(y, "columns") and getattr(y, "ndim", 1) == 2:
        return y.shape[1] > 1
    if sp.issparse(y):
        return y.shape[1] > 1
    try:
        return type_of_target(y) == "multilabel-indicator"
    except (ValueError, TypeError):  # e.g. None among str: check_targets says
        return False


def check_indicator(Y, n_rows: int, classes=None):
    """Return an indicator matrix, its label names and dtype, with clear errors.

    Parameters
    ----------
    Y : array-like or DataFrame of shape (n_samples, n_labels)
        0/1 per label; a DataFrame's column names are the label names.
    n_rows : int
        Number of rows of X.
    classes : array-like of shape (n_labels,), default=None
        Names of the columns of a plain array (None: the column numbers).

    Returns
    -------
    Y : ndarray of int8 of shape (n_samples, n_labels)
    names : ndarray of shape (n_labels,)
    dtype : str
        The dtype of the given matrix (that of ``predict``'s output), as
        numpy's type string (``"<i8"``): a model file then holds no
        ``numpy.dtype`` object, a type ``skops`` does not trust.
    """
    names = None
    if hasattr(Y, "columns"):
        names = np.asarray([str(c) for c in Y.columns], dtype=object)
        Y = Y.to_numpy()
    if sp.issparse(Y):
        Y = Y.toarray()
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"A multi-label y must be 2-D, got shape {Y.shape}.")
    if len(Y) != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {len(Y)}: they must match.")
    values = np.unique(Y)
    if not set(values.tolist()) <= {0, 1}:
        raise ValueError(
            "A 2-D y must be a binary indicator matrix (0/1 per label); got the "
            f"values {values[:5].tolist()!r}. Use MultiLabelBinarizer for lists of "
            "label sets."
        )
    if classes is not None:
        given = np.asarray(classes, dtype=object).ravel()
        if names is not None and list(given) != list(names):
            raise ValueError("classes names the columns of a plain array; a "
                             "DataFrame's column names already are the labels.")
        if len(given) != Y.shape[1]:
            raise ValueError(
                f"classes has {len(given)} names but y has {Y.shape[1]} columns.")
        names = np.asarray([str(c) for c in given], dtype=object)
    if names is None:
        names = np.arange(Y.shape[1])
    if len(set(np.asarray(names).tolist())) != len(names):
        raise ValueError(f"The label names must be distinct, got {list(names)!r}.")
    return Y.astype(np.int8), np.asarray(names), Y.dtype.str
