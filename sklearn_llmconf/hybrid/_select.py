"""Candidates compared by cross-validated log loss; the best one kept, in the open.

The flow of :class:`BestCandidateClassifier` (``fit`` on the training part)::

    training rows --stratified folds (once)--> for each candidate:
        fit a clone on each fold's training rows, predict_proba its held-out
        rows --> out-of-fold probabilities --> log loss, accuracy
    the candidate with the lowest out-of-fold log loss --refit on all rows-->
        best_estimator_ (predict*, classes_)

Every candidate is judged on the same folds, with probabilities of rows its
fold's model never saw; nothing outside ``fit``'s rows is used (the decision
service certifies on rows it keeps away from ``fit``). A candidate is any
classifier with ``predict_proba``: :func:`service_candidates` lists the
decision service's (the calibrated :class:`~sklearn_llmconf.LLMClassifier`
and the stacked hybrid); further blocks become further ``(name, estimator)``
pairs without another change.
"""

from __future__ import annotations

import time
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, indexable

from .._classifier import LLMClassifier
from ..scoring import predict_with_failures
from ..utils._sklearn_compat import Interval, _fit_context, _num_samples
from ._hybrid import llm_blocks, make_hybrid_classifier
from ._setfit import SetFitClassifier
from ._stacking import _check_finite_input, out_of_fold_proba, stratified_folds

__all__ = ["BestCandidateClassifier", "service_candidates"]

_EPS = 1e-15


def service_candidates(llm=None, *, embeddings="auto", kinds=("llm", "hybrid"),
                       extra=(), multilabel=False):
    """The decision service's candidates built around one LLM or several.

    Parameters
    ----------
    llm : LLMClassifier, list of LLMClassifier or None, default=None
        The calibrated classifier (candidate ``"llm"``), and the LLM whose
        scores are the hybrid's LLM block. None: ``LLMClassifier()``. A list
        (several checkpoints): the first is candidate ``"llm"``; each is one
        LLM block of the hybrid (see :func:`make_hybrid_classifier`).
    embeddings : bool, "auto" or transformer, default="auto"
        The hybrid's embedding block (see :func:`make_hybrid_classifier`).
    kinds : sequence of {"llm", "hybrid", "setfit"}, default=("llm", "hybrid")
        Which candidates, in this order. ``"setfit"``:
        :class:`SetFitClassifier` (all-MiniLM-L6-v2 fine-tuned on the labels,
        extra ``setfit``; no LLM).
    extra : sequence of (str, estimator), default=()
        Further candidates, after those (a fine-tuned encoder, a hybrid with
        more blocks or LLMs): they are compared the same way.
    multilabel : bool, default=False
        Candidates for several labels per text: the hybrid is a
        :class:`MultiLabelStackingClassifier` (``"setfit"`` is refused).

    Returns
    -------
    candidates : list of (str, estimator)
    """
    blocks = [(name, LLMClassifier() if c is None else c)
              for name, c in llm_blocks(llm)]
    first = blocks[0][1]
    several = [(name, clone(c)) for name, c in blocks]
    makers = {"llm": lambda: clone(first),
              "hybrid": lambda: make_hybrid_classifier(
                  clone(first) if len(blocks) == 1 else [
                      (n, clone(c)) for n, c in several],
                  embeddings=embeddings, multilabel=multilabel),
              "setfit": SetFitClassifier}
    if multilabel and "setfit" in kinds:
        raise ValueError("the setfit candidate takes one label per text.")
    unknown = [k for k in kinds if k not in makers]
    if unknown:
        raise ValueError(f"unknown candidate kinds {unknown}; known: {sorted(makers)}.")
    return [(k, makers[k]()) for k in kinds] + [(n, clone(e)) for n, e in extra]


def _scores(y, proba, classes):
    """Log loss and accuracy of the rows scored (finite), and the failed count."""
    ok = np.isfinite(proba).all(axis=1)
    if not ok.any():
        return float("nan"), float("nan"), int((~ok).sum())
    p = np.clip(proba[ok], _EPS, 1.0)
    p /= p.sum(axis=1, keepdims=True)
    y_idx = np.searchsorted(classes, y[ok])
    log_loss = float(-np.mean(np.log(p[np.arange(len(y_idx)), y_idx])))
    accuracy = float(np.mean(np.argmax(p, axis=1) == y_idx))
    return log_loss, accuracy, int((~ok).sum())


class BestCandidateClassifier(ClassifierMixin, BaseEstimator):
    """Keep the candidate with the best cross-validated log loss.

    Each candidate is cross-validated on the same stratified folds of the
    training rows (out-of-fold probabilities; a class with fewer rows than
    folds as in :class:`BlockStackingClassifier`); the one with the lowest log
    loss (a tie keeps the earlier) is refitted on all rows and answers
    ``predict*``. ``cv_results_`` says what each candidate scored, so the
    choice can be shown to a user or an auditor.

    Cost: each candidate is fitted ``n_folds + 1`` times. An LLM candidate
    scores every training row once as a held-out row, plus what its ``fit``
    scores (in-fit calibration, the hybrid's out-of-prompt features) per fold;
    the folds' prompts have other demonstrations, so the response cache does
    not spare those calls (it does spare a rerun of the same ``fit``).

    Parameters
    ----------
    candidates : list of (str, estimator)
        Named classifiers with ``predict_proba``, e.g.
        :func:`service_candidates`. Names must be distinct.
    cv : int, default=3
        Stratified folds (at most as many as the largest class has rows).
        With one candidate the folds still run: its figures are reported.
    random_state : int or None, default=0
        Shuffles the folds (None: no shuffle).

    Attributes
    ----------
    cv_results_ : dict of str to dict
        Per candidate, in order: ``log_loss`` and ``accuracy`` of its
        out-of-fold probabilities (rows it could not score left out),
        ``n_failed`` such rows, ``fit_seconds`` for all its fits of the
        folds.
    best_name_ : str
        The kept candidate.
    best_estimator_ : estimator
        The kept candidate refitted on all training rows.
    classes_ : ndarray of shape (n_classes,)
    n_splits_ : int
        Folds used.

    Examples
    --------
    >>> from sklearn_llmconf import LLMClassifier
    >>> from sklearn_llmconf.hybrid import (BestCandidateClassifier,
    ...                                     service_candidates)
    >>> model = BestCandidateClassifier(service_candidates(LLMClassifier()))
    >>> model.fit(X_train, y_train).cv_results_  # doctest: +SKIP
    {'llm': {'log_loss': 0.52, 'accuracy': 0.74, ...}, 'hybrid': {...}}
    """

    _parameter_constraints: dict = {
        "candidates": [list],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, candidates, *, cv=3, random_state=0):
        self.candidates = candidates
        self.cv = cv
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True
        # sparse input: when every candidate takes it
        tags.input_tags.sparse = bool(self.candidates) and all(
            get_tags(est).input_tags.sparse for _, est in self.candidates)
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Cross-validate every candidate, keep the best, refit it.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : BestCandidateClassifier
        """
        if not self.candidates:
            raise ValueError("candidates is empty: give at least one.")
        names = [name for name, _ in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names must be distinct; got {names}.")
        if y is None:
            raise ValueError("BestCandidateClassifier requires y to be passed, "
                             "but the target y is None.")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if _num_samples(X) != len(y):
            raise ValueError(f"X has {_num_samples(X)} rows but y has {len(y)}.")
        _check_finite_input(X)
        X = indexable(X)[0]  # sparse to CSR, array-likes to arrays: folds index it
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("BestCandidateClassifier needs at least two classes; "
                             "got 1 class.")
        rs = self.random_state
        folds = stratified_folds(self.cv, np.searchsorted(self.classes_, y),
                                 random_state=rs)
        self.n_splits_ = len(folds)
        self.cv_results_ = {}
        for name, candidate in self.candidates:
            start = time.perf_counter()
            proba = out_of_fold_proba(candidate, X, y, folds, self.classes_)
            log_loss, accuracy, n_failed = _scores(y, proba, self.classes_)
            self.cv_results_[name] = {
                "log_loss": log_loss, "accuracy": accuracy, "n_failed": n_failed,
                "fit_seconds": time.perf_counter() - start,
            }
        finite = {n: r["log_loss"] for n, r in self.cv_results_.items()
                  if np.isfinite(r["log_loss"])}
        if not finite:
            raise ValueError("No candidate scored any held-out row.")
        self.best_name_ = min(finite, key=lambda n: (finite[n], names.index(n)))
        best = dict(self.candidates)[self.best_name_]
        self.best_estimator_ = clone(best).fit(X, y)
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(self.best_estimator_, name):
                setattr(self, name, getattr(self.best_estimator_, name))
        return self

    def predict_proba(self, X):
        """The kept candidate's probabilities.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.best_estimator_.predict_proba(X)

    def predict(self, X):
        """The kept candidate's most probable class.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.best_estimator_.predict(X)

    def _predict_with_failures(self, X, method):
        check_is_fitted(self)
        return predict_with_failures(self.best_estimator_, X, method)
