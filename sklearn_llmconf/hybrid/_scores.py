"""An LLM's per-class log-scores as features for a stacked model.

The flow of :class:`LLMScores` (``fit_transform`` on labelled texts)::

    training texts --fit--> LLMClassifier (calibration=None): prompt P0 with
                           demonstrations D0 drawn from the texts
    texts not in D0  --> scored with P0 (the prompt the test texts get)
    texts in D0      --> scored with P1: the same classifier fitted on the
                         texts not in D0, so its demonstrations D1 are other
                         texts (one extra shared prompt prefix); P1 offers
                         every class of P0, also a rare class whose only
                         texts are in D0 (a label without demonstration in
                         P1), so a class of one labelled text works
    test texts (transform) --> scored with P0

so no training text's feature comes from a prompt that shows it as a
demonstration, and every training text is scored exactly once. Nearly all
training features come from the very prompt the test texts are scored with
(a K-fold scheme would give every training text a prompt the test texts
never see). A text equal to a demonstration after normalising case,
punctuation and spaces counts as that demonstration. With
``demo_selection="similar"`` every text has its own demonstrations, from
which the classifier already leaves the text itself out: P0 serves all.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from .._classifier import LLMClassifier
from .._input import rows_from_X
from ..prompts._text import normalize_text
from ..scoring import predict_with_failures
from ..utils._sklearn_compat import Interval, _fit_context, _safe_indexing

__all__ = ["LLMScores"]


def _indexable(X):
    """X itself when rows can be taken from it, else as an array."""
    return X if issparse(X) or hasattr(X, "__getitem__") else np.asarray(X)


class LLMScores(TransformerMixin, BaseEstimator):
    """Per-class log-scores of a language model, as features.

    A transformer for :class:`~sklearn.pipeline.FeatureUnion`,
    :class:`~sklearn.compose.ColumnTransformer` or
    :class:`~sklearn.pipeline.Pipeline`: each text becomes the
    ``decision_function`` of an :class:`~sklearn_llmconf.LLMClassifier`
    fitted on the training texts with ``calibration=None`` (the model on top
    of the features is the calibrator: a multinomial logistic regression on
    the log-scores alone is a matrix calibration of them). Binary: one
    column, the log-odds of ``classes_[1]``; multiclass: one column per class,
    the log-probabilities normalised over the classes. Values are clipped to
    ``[-clip, clip]`` so that a label the model never says does not dominate
    a linear model.

    ``fit_transform`` (what a pipeline calls) gives out-of-prompt scores: no
    training text is scored by a prompt showing it as a demonstration. The
    texts that are demonstrations of the fitted prompt are scored by a second
    prompt whose demonstrations are drawn from the other texts; all others by
    the fitted prompt, the one ``transform`` uses for new texts (see
    :mod:`sklearn_llmconf.hybrid._scores`). So ``fit_transform(X, y)`` makes
    one model call per distinct training text and differs from
    ``fit(X, y).transform(X)`` on the demonstration rows, like
    :class:`~sklearn.preprocessing.TargetEncoder`. Calls go through the
    classifier's ``cache``; with a persistent cache, refitting on the same
    texts, or grid-searching the model on top, makes no new call. ``fit``
    alone makes no model call.

    Rows the model could not score follow the classifier's ``on_error``
    policy: ``"raise"``, ``"warn"`` (uniform scores: 0 log-odds, or
    ``-log k`` for each class) or ``"nan"`` (NaN features; use a model that
    accepts them, e.g. :class:`~sklearn.ensemble.HistGradientBoostingClassifier`).

    Parameters
    ----------
    estimator : LLMClassifier or None, default=None
        The classifier whose scores become features (cloned; its
        ``calibration`` is set to None). None: ``LLMClassifier()``.
    clip : float, default=27.6
        Bound on the absolute value of a feature (27.6 is ``-log 1e-12``).

    Attributes
    ----------
    estimator_ : LLMClassifier
        Fitted on all training texts: the prompt of ``transform``.
    swap_estimator_ : LLMClassifier or None
        Fitted on the training texts that are not demonstrations of
        ``estimator_`` (with the same ``classes_``: a class whose only texts
        are demonstrations is offered without a demonstration; when every
        text is a demonstration, zero-shot); scores those demonstrations in
        ``fit_transform``. None when ``estimator_`` has no fixed
        demonstrations.
    demo_mask_ : ndarray of bool of shape (n_samples,)
        Training rows that are (duplicates of) a demonstration of
        ``estimator_``.
    classes_ : ndarray of shape (n_classes,)
    n_features_out_ : int
        1 for binary, ``n_classes`` otherwise.
    n_features_in_ : int
        Columns of the input, when it is 2-D (that of ``estimator_``).
    feature_names_in_ : ndarray of str
        Column names of a DataFrame input (that of ``estimator_``).

    Examples
    --------
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from sklearn.linear_model import LogisticRegressionCV
    >>> from sklearn.pipeline import make_pipeline, make_union
    >>> from sklearn_llmconf.hybrid import LLMScores
    >>> model = make_pipeline(
    ...     make_union(TfidfVectorizer(), LLMScores()),
    ...     LogisticRegressionCV(scoring="neg_log_loss"))  # doctest: +SKIP
    >>> model.fit(X_train, y_train).predict_proba(X_test)  # doctest: +SKIP
    """

    _parameter_constraints: dict = {
        "estimator": [LLMClassifier, None],
        "clip": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, estimator=None, *, clip=27.6):
        self.estimator = estimator
        self.clip = clip

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True
        tags.target_tags.required = True
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the classifier(s) on the labelled texts; no model call.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix (several labels per
            text: the features are each label's log-odds).

        Returns
        -------
        self : LLMScores
        """
        X = _indexable(X)
        base = LLMClassifier() if self.estimator is None else self.estimator
        self.estimator_ = clone(base).set_params(calibration=None).fit(X, y)
        self.classes_ = self.estimator_.classes_
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(self.estimator_, name):
                setattr(self, name, getattr(self.estimator_, name))
        # several labels per text (an indicator y): one log-odds per label
        self.n_features_out_ = (1 if len(self.classes_) == 2 and np.ndim(y) == 1
                                else len(self.classes_))
        self.demo_mask_ = self._demo_mask(X)
        self.swap_estimator_ = None
        if self.demo_mask_.any():
            # The swap prompt offers every class, also one whose only texts
            # are demonstrations of estimator_: it is a label without a
            # demonstration there (zero-shot for that class), never a leak.
            rest = np.flatnonzero(~self.demo_mask_)
            swap = clone(self.estimator_)
            if not len(rest):  # every text is a demonstration: no shots left
                rest = np.flatnonzero(self.demo_mask_)
                swap.set_params(n_shots=0)
            self.swap_estimator_ = swap.fit(
                _safe_indexing(X, rest), _safe_indexing(np.asarray(y), rest),
                classes=self.classes_,
            )
        return self

    def _demo_mask(self, X) -> np.ndarray:
        clf = self.estimator_
        rows = rows_from_X(clf, X, clf.prompt_template_.fields, reset=False)
        demo_keys = {normalize_text(" ".join(d)) for d, _ in clf.demos_}
        return np.array([normalize_text(" ".join(r)) in demo_keys for r in rows],
                        dtype=bool)

    def fit_transform(self, X, y):
        """Fit, then give every training text its out-of-prompt scores.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)
        y : array-like of shape (n_samples,)

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
        """
        X = _indexable(X)
        self.fit(X, y)
        mask = self.demo_mask_
        out = np.empty((len(mask), self.n_features_out_))
        for estimator, rows in ((self.estimator_, ~mask),
                                (self.swap_estimator_, mask)):
            idx = np.flatnonzero(rows)
            if len(idx):
                out[idx] = self._features(estimator, _safe_indexing(X, idx))
        return out

    def transform(self, X):
        """Scores of new texts with the fitted prompt.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
        """
        check_is_fitted(self)
        return self._features(self.estimator_, X)

    def _transform_with_failures(self, X):
        """:meth:`transform`, the failed rows and their reasons (see
        :func:`~sklearn_llmconf.scoring.predict_with_failures`)."""
        check_is_fitted(self)
        scores, failed, reasons = predict_with_failures(
            self.estimator_, X, "decision_function")
        scores = np.asarray(scores, dtype=float).reshape(len(scores), -1)
        return np.clip(scores, -self.clip, self.clip), failed, reasons

    def _features(self, estimator, X) -> np.ndarray:
        scores = np.asarray(estimator.decision_function(X), dtype=float)
        scores = scores.reshape(len(scores), -1)
        return np.clip(scores, -self.clip, self.clip)

    def get_feature_names_out(self, input_features=None):
        """``llmscores_<class>`` per column (binary: of ``classes_[1]``).

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self)
        classes = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
        return np.asarray([f"llmscores_{c}" for c in classes], dtype=object)
