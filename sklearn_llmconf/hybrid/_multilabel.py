"""The hybrid for several labels per text: blocks computed once, stacked per label.

:class:`MultiLabelStackingClassifier` takes the blocks of the hybrid (a
:class:`~sklearn.pipeline.FeatureUnion`: TF-IDF, embeddings, the LLM's
scores) and an indicator matrix ``Y``:

1. every block is fitted and transformed **once** on the training texts
   with all of ``Y``: the :class:`~sklearn_llmconf.hybrid.LLMScores` block
   fits one multi-label :class:`~sklearn_llmconf.LLMClassifier` and scores
   each text once (every label's log-odds from one prompt), out-of-prompt
   for its demonstrations;
2. for each label ``j``, a :class:`BlockStackingClassifier` on those fixed
   features (each block a :class:`ColumnBlock` of the stacked matrix) and
   the 0/1 column ``Y[:, j]``: a logistic regression per block, their
   out-of-fold probabilities stacked, as for one label per text.

So the LLM is called once per text whatever the number of labels (not once
per label, as scikit-learn's :class:`~sklearn.multioutput.MultiOutputClassifier`
around the hybrid would). A label that is constant on the training texts
gets the add-one probability ``(positives + 1) / (n + 2)``.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from scipy.special import logit
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.pipeline import FeatureUnion
from sklearn.utils.validation import check_is_fitted

from ..utils._sklearn_compat import Interval, _fit_context, _num_samples
from ..utils._warn import warn_external
from ._stacking import (
    BlockStackingClassifier,
    _finite_rows,
    _hstack,
    _transform_with_failures,
)

__all__ = ["ColumnBlock", "MultiLabelStackingClassifier"]


def _named(Y, names):
    """``Y`` as a DataFrame whose columns are the label names, so that an LLM
    block prompts with the names rather than the column numbers (``Y`` as it
    is where pandas is not installed)."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        warn_external("pandas is not installed: the hybrid's blocks see the labels "
                      "as column numbers (an LLM block prompts with '0', '1', ...); "
                      "pip install 'sklearn-llmconf[pandas]'.")
        return Y
    return pd.DataFrame(Y, columns=[str(c) for c in names])


class ColumnBlock(TransformerMixin, BaseEstimator):
    """The columns ``start:stop`` of a numeric matrix (dense or sparse).

    Parameters
    ----------
    start, stop : int
    """

    def __init__(self, start=0, stop=1):
        self.start = start
        self.stop = stop

    def fit(self, X, y=None):
        """Nothing to learn; returns self."""
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        """``X[:, start:stop]``."""
        check_is_fitted(self)
        F = X[:, self.start:self.stop]
        return F.tocsr() if sp.issparse(F) else np.asarray(F)


class MultiLabelStackingClassifier(ClassifierMixin, BaseEstimator):
    """The stacked hybrid for an indicator ``Y``: blocks once, a stack per label.

    Parameters
    ----------
    features : FeatureUnion
        The blocks (as :class:`BlockStackingClassifier` takes them).
    Cs, final_Cs, cv, max_iter
        Of each label's :class:`BlockStackingClassifier`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_labels,)
        The label names.
    transformers_ : list of (str, transformer)
        The fitted blocks.
    label_estimators_ : list of (BlockStackingClassifier or None)
        Each label's stack (None: the label was constant in training).
    label_prior_ : ndarray of shape (n_labels,)
        Each label's add-one training rate (used where it was constant).
    n_failed_train_ : int
        Training texts a block could not score (left out).

    Examples
    --------
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from sklearn.pipeline import make_union
    >>> from sklearn_llmconf.hybrid import LLMScores, MultiLabelStackingClassifier
    >>> model = MultiLabelStackingClassifier(
    ...     make_union(TfidfVectorizer(), LLMScores()))  # doctest: +SKIP
    >>> model.fit(X_train, Y_train).predict_proba(X_test)  # doctest: +SKIP
    """

    _parameter_constraints: dict = {
        "features": [FeatureUnion],
        "Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "final_Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "cv": ["cv_object"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, features, *, Cs=10, final_Cs=10, cv=5, max_iter=2000):
        self.features = features
        self.Cs = Cs
        self.final_Cs = final_Cs
        self.cv = cv
        self.max_iter = max_iter

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, Y, *, classes=None):
        """Fit every block once, then one stack per label.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)
        Y : array-like of shape (n_samples, n_labels)
            0/1 indicator matrix (a DataFrame's column names are the labels).
        classes : array-like of shape (n_labels,), default=None
            The label names of a plain array (default: the column numbers).

        Returns
        -------
        self : MultiLabelStackingClassifier
        """
        names = None
        if hasattr(Y, "columns"):
            names = [str(c) for c in Y.columns]
            Y = Y.to_numpy()
        Y = np.asarray(Y)
        if Y.ndim != 2 or not set(np.unique(Y).tolist()) <= {0, 1}:
            raise ValueError("Y must be a 0/1 indicator matrix (n_samples, "
                             "n_labels).")
        if _num_samples(X) != len(Y):
            raise ValueError(f"X has {_num_samples(X)} rows but Y has {len(Y)}.")
        if classes is not None:
            names = [str(c) for c in classes]
        if names is not None and len(names) != Y.shape[1]:
            raise ValueError(f"{len(names)} label names for {Y.shape[1]} columns.")
        self.classes_ = (np.asarray(names, dtype=object) if names is not None
                         else np.arange(Y.shape[1]))
        blocks = [(name, clone(t)) for name, t in self.features.transformer_list
                  if not (isinstance(t, str) and t == "drop")]
        if not blocks:
            raise ValueError("features has no block (all are 'drop').")
        self.transformers_, matrices = [], []
        Y_blocks = Y if names is None else _named(Y, self.classes_)
        for name, transformer in blocks:
            F = transformer.fit_transform(X, Y_blocks)
            matrices.append(F if sp.issparse(F) else np.asarray(F, dtype=float))
            self.transformers_.append((name, transformer))
        finite = _finite_rows(matrices)
        self.n_failed_train_ = int((~finite).sum())
        if self.n_failed_train_:
            if not finite.any():
                raise ValueError("No training text could be scored by every block.")
            warn_external(f"{self.n_failed_train_} of {len(finite)} training "
                          "texts could not be scored by every block; the "
                          "stacking leaves them out.")
        M, union = self._stacked(matrices)
        M, Y = M[finite], Y[finite]
        self.label_prior_ = (Y.sum(axis=0) + 1.0) / (len(Y) + 2.0)
        self.label_estimators_ = []
        for j in range(Y.shape[1]):
            if len(np.unique(Y[:, j])) < 2:
                self.label_estimators_.append(None)
                continue
            stack = BlockStackingClassifier(
                union, Cs=self.Cs, final_Cs=self.final_Cs, cv=self.cv,
                max_iter=self.max_iter)
            self.label_estimators_.append(stack.fit(M, Y[:, j]))
        first = self.transformers_[0][1]
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(first, name):
                setattr(self, name, getattr(first, name))
        return self

    def _stacked(self, matrices):
        """The blocks side by side and the union of ColumnBlocks over them."""
        parts, start = [], 0
        for (name, _), F in zip(self.transformers_, matrices):
            parts.append((name, ColumnBlock(start, start + F.shape[1])))
            start += F.shape[1]
        M = _hstack(matrices)
        return (M.tocsr() if sp.issparse(M) else M), FeatureUnion(parts)

    def _predict_with_failures(self, X, method):
        """Output of ``method``, the failed rows and their reasons."""
        check_is_fitted(self)
        matrices, ok, reasons = [], None, None
        for _, transformer in self.transformers_:
            F, failed, why = _transform_with_failures(transformer, X)
            matrices.append(F if sp.issparse(F) else np.asarray(F, dtype=float))
            ok = ~failed if ok is None else ok & ~failed
            reasons = why if reasons is None else [
                a if a is not None else b for a, b in zip(reasons, why)]
        ok &= _finite_rows(matrices)
        M, _ = self._stacked(matrices)
        P = np.full((len(ok), len(self.classes_)), np.nan)
        if ok.any():
            M = M[ok]
            for j, stack in enumerate(self.label_estimators_):
                P[ok, j] = (self.label_prior_[j] if stack is None
                            else stack.predict_proba(M)[:, 1])
        failed = ~ok
        reasons = [(r or "a block could not score it (non-finite features)")
                   if f else r for f, r in zip(failed, reasons)]
        if method == "predict_proba":
            out = P
        elif method == "predict_log_proba":
            with np.errstate(divide="ignore"):
                out = np.log(P)
        elif method == "decision_function":
            out = logit(P)
        else:
            raise ValueError(f"unknown method {method!r}")
        return out, failed, reasons

    def predict_proba(self, X):
        """Independent per-label probabilities, shape (n_samples, n_labels);
        NaN rows could not be scored."""
        return self._predict_with_failures(X, "predict_proba")[0]

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`."""
        return self._predict_with_failures(X, "predict_log_proba")[0]

    def decision_function(self, X):
        """Per-label log-odds, shape (n_samples, n_labels)."""
        return self._predict_with_failures(X, "decision_function")[0]

    def predict(self, X):
        """The indicator matrix: 1 where a label's probability is above 0.5."""
        P = self.predict_proba(X)
        if not np.isfinite(P).all():
            raise ValueError("some rows could not be scored; use predict_proba "
                             "and handle the NaN rows.")
        return (P > 0.5).astype(int)
