"""What every stage of the package shares, below all of them.

``_warn`` (warnings attributed to the caller's line), ``_sklearn_compat`` (the
one importer of private scikit-learn names), ``_optional`` (optional
dependencies with an error naming the extra). Nothing here imports another
part of the package. Test doubles live in :mod:`sklearn_llmconf.testing`.
"""

__all__ = []
