"""Stacking of per-block logistic regressions on features computed once.

The flow of :class:`BlockStackingClassifier` (``fit`` on labelled texts)::

    texts --block b: fit_transform once--> F_b   (LLMScores: out-of-prompt)
    [F_1, ..., F_B] side by side: one more block, "joint" (joint=True)
    F_b --LogisticRegressionCV--> C_b, block model on all texts
    F_b --cross_val_predict(LR(C_b))--> out-of-fold probabilities P_b
    [log P_1, ..., log P_B] --LogisticRegressionCV--> final model
        (also on each log P_b alone; or no final model, block b's as it
         is: the candidate with the best cross-validated log loss is kept)

so each block has its own regularisation (a large TF-IDF block no longer
sets the ``C`` of the LLM's few columns), and the final model sees only
probabilities of texts its block model was not fitted on. The features are
computed once on all training texts: the folds only refit the (cheap)
logistic regressions, never a block's transformer, so an
:class:`~sklearn_llmconf.hybrid.LLMScores` block makes no model call beyond
its one ``fit_transform``. (scikit-learn's
:class:`~sklearn.ensemble.StackingClassifier` refits every base pipeline per
fold, i.e. re-prompts the LLM with other demonstrations per fold, and stacks
probabilities rather than log-probabilities.) The unsupervised part of a
block fitted on all texts (TF-IDF's vocabulary and idf) is shared by the
folds; the supervised parts (the LLM's scores, the regressions) are not.

Rare classes: an int ``cv`` is a :class:`~sklearn.model_selection.StratifiedKFold`
with ``min(cv, size of the largest class)`` folds, computed once and shared
by every regression. A class with fewer texts than folds is in some folds'
held-out part only, never in their training part (whatever the number of
folds, a class of one text is); such a fold's regression gives the class the
probability of a class seen 0 times among the fold's ``m`` training texts
with add-one smoothing, ``1 / (m + n_classes)``, instead of 0, so the
out-of-fold log-probabilities stay finite and the stacked model still learns
the class from the blocks it was seen in. Keeping all folds for the other
classes was chosen over fewer folds for every class: with 300 labels over 21
classes the rarest class often has one text, and two folds would halve every
other class's training part.
"""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, check_cv
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ..utils._sklearn_compat import (
    Interval,
    _fit_context,
    _num_samples,
    _safe_indexing,
)
from ..utils._warn import warn_external
from ._logistic import log_loss_scoring, logistic_cv

__all__ = ["BlockStackingClassifier"]

_EPS = 1e-12
JOINT = "joint"


def _hstack(blocks):
    """Columns of several feature blocks side by side (sparse if one is)."""
    if any(sp.issparse(b) for b in blocks):
        return sp.hstack([sp.csr_matrix(b) for b in blocks], format="csr")
    return np.hstack([np.asarray(b) for b in blocks])


def _log_features(proba: np.ndarray) -> np.ndarray:
    """Stacking features of one block: binary log-odds, else centred log-probs."""
    logp = np.log(np.clip(proba, _EPS, 1.0))
    if logp.shape[1] == 2:
        return logp[:, 1:] - logp[:, :1]
    return logp - logp.mean(axis=1, keepdims=True)


def stratified_folds(cv, y_idx, random_state=None) -> list:
    """The (train, test) folds of ``cv`` for labels ``y_idx``, computed once.

    An int: stratified folds, at most as many as the largest class has texts
    (a class with fewer texts than folds is in the held-out part of some
    folds only; see the module docstring).
    """
    if isinstance(cv, Integral):
        counts = np.unique(y_idx, return_counts=True)[1]
        n_splits = int(min(cv, counts.max()))
        if n_splits < 2:
            raise ValueError(
                f"cv={cv} needs two texts of some class; every class has one. "
                "Label more texts."
            )
        cv = StratifiedKFold(n_splits=n_splits, shuffle=random_state is not None,
                             random_state=random_state)
    cv = check_cv(cv, y_idx, classifier=True)
    with warnings.catch_warnings():
        # "The least populated class in y has only 1 members": handled here
        warnings.filterwarnings("ignore", message="The least populated class",
                                category=UserWarning)
        return list(cv.split(np.zeros((len(y_idx), 1)), y_idx))


def out_of_fold_proba(model, X, y, folds, classes) -> np.ndarray:
    """Out-of-fold probabilities of ``model`` (cloned per fold), columns ``classes``.

    A class missing from a fold's training part gets ``1 / (m + n_classes)``
    (``m`` training rows; add-one smoothing of a count of 0) and the row is
    renormalised, so no out-of-fold probability is 0. A row the fold's model
    could not score (non-finite) stays NaN.

    Parameters
    ----------
    model : classifier with ``predict_proba``
    X : array-like, sparse matrix or sequence of texts
    y : ndarray of shape (n_samples,)
    folds : list of (train, test) index arrays
    classes : ndarray of shape (n_classes,)
        Sorted; every value of ``y`` is one of them.

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
    """
    n_classes = len(classes)
    oof = np.zeros((_num_samples(X), n_classes))
    for train, test in folds:
        y_train = y[train]
        seen = np.unique(y_train)
        if len(seen) < 2:  # one class only in this fold's training part
            proba = np.ones((len(test), 1))
        else:
            fitted = clone(model).fit(_safe_indexing(X, train), y_train)
            seen = np.asarray(fitted.classes_)
            proba = np.asarray(fitted.predict_proba(_safe_indexing(X, test)),
                               dtype=float)
        oof[test] = with_unseen_classes(proba, np.searchsorted(classes, seen),
                                        n_classes, len(train))
    return oof


def with_unseen_classes(proba, seen, n_classes, n_train) -> np.ndarray:
    """``proba`` (columns: the classes ``seen``) spread over ``n_classes`` columns.

    A class missing from the ``n_train`` training rows of the model that gave
    ``proba`` gets ``1 / (n_train + n_classes)`` (add-one smoothing of a count
    of 0) and the seen columns are scaled so that each row sums to 1; with
    every class seen, ``proba`` is returned as it is (values unchanged).

    Parameters
    ----------
    proba : ndarray of shape (n_samples, len(seen))
    seen : ndarray of int
        Column of each of ``proba``'s classes among the ``n_classes``.
    n_classes : int
    n_train : int

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
    """
    floor = 1.0 / (n_train + n_classes)
    rows = np.full((len(proba), n_classes), floor)
    rows[:, seen] = proba * (1.0 - floor * (n_classes - len(seen)))
    return rows


def _transform_with_failures(transformer, X):
    """A block's features with its failed rows and their reasons.

    A transformer that knows its failed rows (``LLMScores``) says so through
    ``_transform_with_failures``; a :class:`~sklearn.pipeline.Pipeline` passes
    its first step's on. Otherwise no row failed and none has a reason.
    """
    own = getattr(transformer, "_transform_with_failures", None)
    if own is not None:
        return own(X)
    if isinstance(transformer, Pipeline):
        F, failed, reasons = _transform_with_failures(transformer[0], X)
        if len(transformer) > 1:
            F = transformer[1:].transform(F)
        return F, failed, reasons
    F = transformer.transform(X)
    n = _num_samples(F)
    return F, np.zeros(n, dtype=bool), [None] * n


def _check_finite_input(X) -> None:
    """Refuse numeric input holding NaN or inf, as scikit-learn's estimators do.

    Text input is not numbers; a text an LLM block cannot score gives NaN
    features, which ``fit`` leaves out and ``predict*`` reports as failed.
    """
    values = np.asarray(X.tocoo().data) if sp.issparse(X) else np.asarray(X)
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        raise ValueError("Input X contains NaN or infinity.")


def _finite_rows(blocks) -> np.ndarray:
    """Rows whose features are finite in every (dense) block."""
    finite = None
    for F in blocks:
        ok = (np.ones(F.shape[0], dtype=bool) if sp.issparse(F)
              else np.isfinite(np.asarray(F, dtype=float)).all(axis=1))
        finite = ok if finite is None else finite & ok
    return finite


def _best_cv_score(model) -> float:
    """Mean over folds of the best ``C``'s score of a fitted LogisticRegressionCV."""
    scores = model.scores_
    if isinstance(scores, dict):  # scikit-learn < 1.9: one entry per class
        scores = next(iter(scores.values()))
    scores = np.asarray(scores)
    return float(scores.reshape(scores.shape[0], -1).mean(axis=0).max())


class BlockStackingClassifier(ClassifierMixin, BaseEstimator):
    """Per-block logistic regressions stacked by a regularised multinomial one.

    Each block of ``features`` (a :class:`~sklearn.pipeline.FeatureUnion`)
    is fitted and transformed once on the training texts; a
    :class:`~sklearn.linear_model.LogisticRegressionCV` on each block's
    features chooses that block's ``C`` by ``cv``-fold log loss; the
    out-of-fold probabilities of each block (``cross_val_predict`` with that
    ``C``, on the same fixed features) become log-probability features of a
    final :class:`~sklearn.linear_model.LogisticRegressionCV` (``final_Cs``).
    The candidates are each block's model as it is (its out-of-fold log
    loss), the final model on each block's log-probabilities alone, and the
    final model on all of them; the one with the best cross-validated log
    loss is kept (``final_blocks_``, ``final_estimator_``; a tie keeps the
    simpler), so a noisy block costs at most the selection's noise. See
    :mod:`sklearn_llmconf.hybrid._stacking` for why the features
    are not recomputed per fold.

    A plain classifier: ``predict_proba`` (columns in ``classes_`` order),
    :func:`~sklearn.base.clone`, ``get_params``/``set_params`` (nested, e.g.
    ``features__llm__llmscores__estimator__n_shots``),
    :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_val_score`,
    :class:`~sklearn_llmconf.routing.ConfidenceRouter`.

    Parameters
    ----------
    features : FeatureUnion
        The blocks; each ``(name, transformer)`` of its ``transformer_list``
        is one block (``"drop"`` skips it; ``transformer_weights`` are
        ignored: each block has its own regularisation).
    joint : bool, default=False
        Also a block ``"joint"``: one regression on all blocks' features side
        by side, with one ``C`` (what :func:`make_hybrid_classifier` was
        before); it is a candidate and a stacking input like the others.
        Off by default: in ``benchmarks/bench_hybrid.py`` it tied or lost
        (Rotten Tomatoes, 200 labels: log loss 0.545 with it, 0.522 without).
    Cs : int or list of float, default=10
        Candidate inverse regularisation strengths of each block's model.
    final_Cs : int or list of float, default=10
        Candidate strengths of the final model.
    cv : int or cross-validation generator, default=5
        Folds for every ``C`` choice and for the out-of-fold probabilities
        (an int: :class:`~sklearn.model_selection.StratifiedKFold` with at
        most as many folds as the largest class has texts; a class with fewer
        texts than folds is handled as the module docstring says).
    max_iter : int, default=2000
        Iterations of each logistic regression.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    transformers_ : list of (str, transformer)
        The fitted blocks.
    block_estimators_ : list of (str, LogisticRegressionCV)
        Each block's model (and the ``"joint"`` one), fitted on all training
        texts.
    block_cv_log_loss_ : dict of str to float
        Out-of-fold log loss of each block's model.
    final_blocks_ : list of str
        The blocks whose log-probabilities the final model uses.
    final_estimator_ : LogisticRegressionCV or None
        None when the kept candidate is one block's model as it is.
    final_cv_log_loss_ : float
        Cross-validated log loss of the kept candidate.
    n_iter_ : int
        Largest number of iterations any of the logistic regressions ran
        (over blocks, ``C`` values and folds); ``max_iter`` means one of them
        stopped before converging.
    n_features_in_ : int
        Columns of the input, where the first block records them.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame input, where the first block records them.
    n_failed_train_ : int
        Training texts left out of the stacking because a block could not
        score them (non-finite features). ``predict*`` gives such a row NaN.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from sklearn.pipeline import make_union
    >>> from sklearn_llmconf.hybrid import BlockStackingClassifier, LLMScores
    >>> model = BlockStackingClassifier(
    ...     make_union(TfidfVectorizer(), LLMScores()))  # doctest: +SKIP
    >>> model.fit(X_train, y_train).predict_proba(X_test)  # doctest: +SKIP
    """

    _parameter_constraints: dict = {
        "features": [FeatureUnion],
        "joint": ["boolean"],
        "Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "final_Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "cv": ["cv_object"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, features, *, joint=False, Cs=10, final_Cs=10, cv=5,
                 max_iter=2000):
        self.features = features
        self.joint = joint
        self.Cs = Cs
        self.final_Cs = final_Cs
        self.cv = cv
        self.max_iter = max_iter

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True
        return tags

    def _lr_cv(self, Cs, cv, labels=()):
        return logistic_cv(Cs=Cs, cv=cv, scoring=log_loss_scoring(labels),
                           max_iter=self.max_iter)

    def _fit_lr_cv(self, Cs, cv, F, y):
        """A fitted LogisticRegressionCV whose arrays have canonical strides.

        ``scores_`` and ``coefs_paths_`` come out as views with unusual
        strides; a saved and loaded copy has plain ones, and the router's
        certificate hashes them: copies keep a loaded model's certificate
        identical to the fitted one's.
        """
        model = self._lr_cv(Cs, cv, np.unique(y)).fit(F, y)
        # The fitted model holds the scoring by name (model files, the
        # certificate's hash) whatever scikit-learn release fitted it.
        model.set_params(scoring="neg_log_loss")
        for name, value in vars(model).items():
            if isinstance(value, np.ndarray):
                setattr(model, name, np.array(value, order="C"))
        return model

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the blocks once, their models, and the stacking model.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : BlockStackingClassifier
        """
        if y is None:
            raise ValueError("BlockStackingClassifier requires y to be passed, "
                             "but the target y is None.")
        y = np.asarray(y)
        check_classification_targets(y)
        if _num_samples(X) != len(y):
            raise ValueError(f"X has {_num_samples(X)} rows but y has {len(y)}.")
        _check_finite_input(X)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError("BlockStackingClassifier needs at least two classes; "
                             "got 1 class.")
        y_idx = encoder.transform(y)
        blocks = [(name, clone(t)) for name, t in self.features.transformer_list
                  if not (isinstance(t, str) and t == "drop")]
        if not blocks:
            raise ValueError("features has no block (all are 'drop').")
        self.transformers_, self.block_estimators_ = [], []
        self.block_cv_log_loss_ = {}
        stacked = {}
        labels = np.arange(len(self.classes_))
        features = {}
        for name, transformer in blocks:
            F = transformer.fit_transform(X, y)
            features[name] = F if sp.issparse(F) else np.asarray(F)
            self.transformers_.append((name, transformer))
        finite = _finite_rows(features.values())
        self.n_failed_train_ = int((~finite).sum())
        if self.n_failed_train_:
            if not finite.any():
                raise ValueError("No training text could be scored by every block.")
            warn_external(
                f"{self.n_failed_train_} of {len(finite)} training texts could "
                "not be scored by every block (non-finite features, e.g. a failed "
                "model call with on_error='nan'); the stacking leaves them out."
            )
            features = {n: F[finite] for n, F in features.items()}
            y_idx = y_idx[finite]
        cv = stratified_folds(self.cv, y_idx)
        if self.joint and len(features) > 1:
            if JOINT in features:
                raise ValueError(f"with joint=True no block may be named {JOINT!r}.")
            features[JOINT] = _hstack(list(features.values()))
        for name, F in features.items():
            model = self._fit_lr_cv(self.Cs, cv, F, y_idx)
            C = float(np.ravel(model.C_)[0])
            oof = out_of_fold_proba(
                LogisticRegression(C=C, max_iter=self.max_iter), F, y_idx, cv,
                labels)
            self.block_estimators_.append((name, model))
            self.block_cv_log_loss_[name] = float(log_loss(y_idx, oof, labels=labels))
            stacked[name] = _log_features(oof)
        # candidates, simplest first (a tie keeps the simpler): each block's
        # model as it is, each block's log-probabilities recalibrated, all
        best_name = min(self.block_cv_log_loss_, key=self.block_cv_log_loss_.get)
        best = (-self.block_cv_log_loss_[best_name], [best_name], None)
        singles = [[n] for n in stacked] if len(stacked) > 1 else []
        candidates = singles + [list(stacked)]
        for names in candidates:
            Z = np.hstack([stacked[n] for n in names])
            final = self._fit_lr_cv(self.final_Cs, cv, Z, y_idx)
            score = _best_cv_score(final)
            if score > best[0]:
                best = (score, names, final)
        score, self.final_blocks_, self.final_estimator_ = best
        self.final_cv_log_loss_ = -score
        fitted = [m for _, m in self.block_estimators_] + [self.final_estimator_]
        self.n_iter_ = int(max(np.max(m.n_iter_) for m in fitted if m is not None))
        first = self.transformers_[0][1]
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(first, name):
                setattr(self, name, getattr(first, name))
        return self

    def _final(self, X, method):
        """``method``'s output; rows a block could not score are NaN."""
        return self._predict_with_failures(X, method)[0]

    def _predict_with_failures(self, X, method):
        """Output of ``method``, the failed rows and their reasons.

        A row whose features are not finite in a block the kept candidate
        uses (the LLM block of a text the model could not score, with the
        LLM's ``on_error="nan"``) gets NaN outputs and is failed; see
        :func:`~sklearn_llmconf.scoring.predict_with_failures`.
        """
        check_is_fitted(self)
        _check_finite_input(X)
        needed = set(self.final_blocks_)
        if JOINT in needed:
            needed.update(name for name, _ in self.transformers_)
        features, ok, reasons = {}, None, None
        for name, transformer in self.transformers_:
            if name in needed:
                F, failed, why = _transform_with_failures(transformer, X)
                features[name] = F if sp.issparse(F) else np.asarray(F)
                ok = ~failed if ok is None else ok & ~failed
                reasons = why if reasons is None else [
                    a if a is not None else b for a, b in zip(reasons, why)]
        if JOINT in needed:
            features[JOINT] = _hstack([features[n] for n, _ in self.transformers_])
        ok &= _finite_rows(features.values())
        features = {n: F[ok] for n, F in features.items()}
        models = dict(self.block_estimators_)
        if self.final_estimator_ is None:  # one block's model as it is
            name = self.final_blocks_[0]
            if method == "decision_function":
                logp = models[name].predict_log_proba(features[name])
                good = logp[:, 1] - logp[:, 0] if logp.shape[1] == 2 else logp
            else:
                good = getattr(models[name], method)(features[name])
        else:
            Z = np.hstack([_log_features(models[n].predict_proba(features[n]))
                           for n in self.final_blocks_])
            good = getattr(self.final_estimator_, method)(Z)
        good = np.asarray(good, dtype=float)
        out = np.full((len(ok), *good.shape[1:]), np.nan)
        out[ok] = good
        failed = ~ok
        reasons = [(r or "a block could not score it (non-finite features)")
                   if f else r for f, r in zip(failed, reasons)]
        return out, failed, reasons

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        return self._final(X, "predict_proba")

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        return self._final(X, "predict_log_proba")

    def decision_function(self, X):
        """Log-odds of ``classes_[1]`` (binary, 1-D), else log-probabilities or
        the final model's decision function.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        return self._final(X, "decision_function")

    def predict(self, X):
        """The most probable class of each text.

        Parameters
        ----------
        X : sequence of str or array-like of shape (n_samples, n_columns)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
