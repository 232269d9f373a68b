"""Warnings that point at the user's line, however deep inside the package.

A hard-coded ``stacklevel`` is right for one call path only (``predict_proba``
and ``decision_function`` reach the scoring code through different numbers of
frames). :func:`warn_external` walks out of this package's frames instead, like
``warnings.warn(..., skip_file_prefixes=...)`` of Python 3.12.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["external_stacklevel", "warn_external"]

# The package root (this file lives in its utils/ folder).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def external_stacklevel() -> int:
    """The ``stacklevel`` that makes the caller's ``warnings.warn`` point outside.

    Returns
    -------
    stacklevel : int
        For a ``warnings.warn`` call made by the function calling this one:
        the number of frames up to and including the first frame whose file is
        not inside this package.
    """
    frame = sys._getframe(1)  # the function that will call warnings.warn
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(
        _PACKAGE_DIR
    ):
        frame = frame.f_back
        level += 1
    return level


def warn_external(message: str, category=UserWarning) -> None:
    """``warnings.warn`` attributed to the first frame outside this package.

    Parameters
    ----------
    message : str
    category : type of Warning, default=UserWarning
    """
    warnings.warn(message, category, stacklevel=external_stacklevel())
