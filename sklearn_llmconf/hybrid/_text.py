"""Several text columns as one text, for the blocks that read one text per row.

The LLM block fills a prompt's named fields from the columns of a 2-D X (as
:class:`~sklearn_llmconf.LLMClassifier` does); TF-IDF and sentence embeddings
read one string per row. :class:`JoinColumns` gives them the row's columns
joined by a line break, so the same X (1-D texts, a 2-D array, a list of
tuples or a DataFrame) feeds every block of the hybrid.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = ["JoinColumns", "texts_of"]


def texts_of(X, owner) -> list[str]:
    """The texts of a 1-D X as a list of str; a single str is an error.

    Parameters
    ----------
    X : sequence of str of shape (n_samples,)
    owner : str
        The class name the error message names.
    """
    if isinstance(X, str):
        raise ValueError(f"{owner} expects a sequence of texts, got a single str.")
    return [str(x) for x in np.asarray(X, dtype=object).ravel()]


class JoinColumns(TransformerMixin, BaseEstimator):
    """One string per row: 1-D texts as they are, 2-D rows' columns joined.

    Stateless (``fit`` learns nothing). A DataFrame's columns are joined in
    their order, a 2-D array's or a list of tuples' in column order.

    Parameters
    ----------
    separator : str, default="\\n"
        Put between the columns of a row.

    Examples
    --------
    >>> from sklearn_llmconf.hybrid import JoinColumns
    >>> JoinColumns().transform([("Re: invoice", "Please pay"), ("Hi", "lunch?")])
    ['Re: invoice\\nPlease pay', 'Hi\\nlunch?']
    """

    _parameter_constraints: dict = {"separator": [str]}

    def __init__(self, separator="\n"):
        self.separator = separator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True
        tags.requires_fit = False
        return tags

    def fit(self, X, y=None):
        """Learn nothing.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)
        y : ignored

        Returns
        -------
        self : JoinColumns
        """
        return self

    def transform(self, X):
        """The texts, one per row.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        texts : list of str of length n_samples
        """
        if isinstance(X, str):
            raise ValueError("Expected a sequence of texts, got a single str.")
        if hasattr(X, "iloc"):  # a DataFrame (or Series)
            X = X.to_numpy(dtype=object)
        sep = self.separator
        return [r if isinstance(r, str) else
                sep.join(str(v) for v in np.ravel(np.asarray(r, dtype=object)))
                for r in list(X)]

    def get_feature_names_out(self, input_features=None):
        """``["text"]``: one joined text.

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        names : ndarray of str
        """
        return np.asarray(["text"], dtype=object)
