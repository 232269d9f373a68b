"""ConfidenceCascade: cheap model, stronger ones, then a person, certified."""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, MetaEstimatorMixin
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ..scoring._failures import finite_rows, predict_with_failures
from ..utils._sklearn_compat import Interval, _fit_context, _num_samples
from ..utils._warn import warn_external
from ._certificate import (
    certificate_of,
    data_fingerprint,
    differences,
    language_models,
)
from ._report import label_or_tier, routing_report
from ._router import copy_input_attributes, fitted_or_refit, routing_tags
from ._stats import (
    accepted_counts,
    binomial_p_values,
    default_thresholds,
    fixed_sequence_threshold,
    precision_lower_bound,
)

__all__ = ["ConfidenceCascade"]

# Thresholds of the earlier stages, each with its own path over the last
# stage's threshold (inf: only the last stage answers).
EARLY_THRESHOLDS = (np.inf, 0.9999, 0.999, 0.99, 0.98, 0.95, 0.9)


def _stage_proba(estimator, X):
    """Probabilities and failed rows of one stage (reported failures or NaN)."""
    proba, failed, _ = predict_with_failures(estimator, X, "predict_proba")
    proba = np.asarray(proba, dtype=float)
    return proba, failed | ~finite_rows(proba)


def _take(X, rows):
    """Rows of X (list of str, array or DataFrame) at integer positions."""
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    if issparse(X):  # row slicing needs CSR (a DIA or COO matrix has none)
        return X.tocsr()[rows]
    if isinstance(X, (list, tuple)):
        return [X[i] for i in rows]
    return np.asarray(X, dtype=object if np.ndim(X) == 1 else None)[rows]


def _usage(estimator):
    """Summed usage counters of the language models in a stage."""
    total = {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for clf in language_models(estimator):
        used = clf.usage_.as_dict()
        for key in total:
            total[key] += used[key]
    return total


class ConfidenceCascade(MetaEstimatorMixin, BaseEstimator):
    """Classifiers in order of cost, each answering what it is confident about.

    Stage ``k`` answers a row when its confidence (largest class
    probability) reaches the threshold ``lambda`` and no earlier stage
    answered it; the rows no stage answers go to ``final_tier`` (a person).
    Only the rows that reach a stage are sent to its model.

    :meth:`fit` scores every calibration row with every stage and certifies
    the stages' thresholds so that, with probability at least ``1 - delta``
    over the draw of the calibration rows, the precision of all the answers
    the cascade gives (whichever stage gives them) is at least ``target`` on
    new rows exchangeable with the calibration rows. The candidate
    configurations form a few paths fixed before any label is seen: one
    threshold shared by every stage, and, for each earlier-stage threshold in
    ``EARLY_THRESHOLDS`` (``inf``: the earlier stages answer nothing), the
    last stage's threshold from the most selective down. Each path is tested
    in order by fixed-sequence testing with binomial p-values
    (learn-then-test, Angelopoulos et al. 2021; the certification of a
    cheap-to-strong judge cascade in "Trust or Escalate", Jung, Brahman and
    Choi, ICLR 2025) at ``delta / n_paths`` (Bonferroni over the paths), so
    every certified configuration holds at once and :meth:`fit` keeps the one
    that answers the most calibration rows (and, among those, sends the fewest
    to the last stage).

    Parameters
    ----------
    stages : list of (str, estimator)
        Names and probabilistic classifiers, cheapest first; all with the same
        ``classes_``. The rule is the router's: a
        :class:`~sklearn.frozen.FrozenEstimator` of a fitted classifier is used
        as it is; any other stage is cloned and fitted on a stratified part of
        the rows given to :meth:`fit` (the other ``calibration_size`` part
        certifies), also when it is already fitted (with a
        :class:`~sklearn_llmconf.routing.RefittedWarning`), so that :meth:`fit`
        behaves the same before and after :func:`~sklearn.base.clone`. When
        every stage is frozen, every row certifies.

    target : float, default=0.95
        Precision to certify for the cascade's answers.

    delta : float, default=0.05
        Probability that the guarantee fails.

    thresholds : array-like of float, default=None
        Candidate thresholds; the router's default grid if None.

    final_tier : str, default="human"
        Tier of the rows no stage answers (and rows every stage failed on).

    calibration_size : float, default=0.5
        Share of the rows certifying the thresholds when some stage is not a
        :class:`~sklearn.frozen.FrozenEstimator`.

    random_state : int, RandomState instance or None, default=None
        Split of the rows when some stage is not a
        :class:`~sklearn.frozen.FrozenEstimator`.

    Attributes
    ----------
    stages_ : list of (str, estimator)
        The stages scored: the frozen ones as given, the fitted clones of the
        others.

    classes_ : ndarray of shape (n_classes,)

    stage_names_ : ndarray of str of shape (n_stages,)

    tier_names_ : ndarray of str of shape (n_stages + 1,)
        Stage names then ``final_tier``: the tiers :meth:`route` returns.

    thresholds_ : ndarray of shape (n_stages,)
        Certified confidence threshold of each stage; all ``inf`` when nothing
        could be certified (every row then goes to ``final_tier``).

    targets_ : ndarray of shape (n_stages,)
        ``target`` for each stage, so that
        :class:`~sklearn_llmconf.plotting.RoutingDisplay` and
        :func:`~sklearn_llmconf.routing.routing_report` read the cascade like
        a router.

    n_accepted_, n_errors_ : int
        Calibration rows the cascade answers at ``thresholds_``, wrong answers.

    precision_lower_bound_ : float
        One-sided Clopper-Pearson bound (level ``1 - delta``) of their
        precision; NaN when nothing is accepted.

    stage_share_ : ndarray of shape (n_stages,)
        Share of the calibration rows each stage answers.

    n_calibration_ : int

    certificates_ : list of dict
        What each stage was certified for (see
        :attr:`ConfidenceRouter.certificate_`), with the calibration data hash.

    n_features_in_ : int
        That of the first stage, where it has one.

    feature_names_in_ : ndarray of str
        That of the first stage, where it has one.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_llmconf.routing import ConfidenceCascade
    >>> X, y = make_classification(n_samples=4000, class_sep=1.5, random_state=0)
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> weak = make_pipeline(FunctionTransformer(lambda Z: Z[:, :3]),
    ...                      LogisticRegression()).fit(X[:1000], y[:1000])
    >>> strong = LogisticRegression().fit(X[:1000], y[:1000])
    >>> stages = [("weak", FrozenEstimator(weak)), ("strong", FrozenEstimator(strong))]
    >>> cascade = ConfidenceCascade(stages,
    ...                             target=0.9).fit(X[1000:3000], y[1000:3000])
    >>> cascade.thresholds_.tolist()  # the 3-column model answers nothing
    [inf, 0.0]
    >>> np.unique(cascade.route(X[3000:])).tolist()
    ['strong']
    """

    _parameter_constraints: dict = {
        "stages": [list],
        "target": [Interval(Real, 0, 1, closed="neither")],
        "delta": [Interval(Real, 0, 1, closed="neither")],
        "thresholds": ["array-like", None],
        "final_tier": [str],
        "calibration_size": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(self, stages, *, target=0.95, delta=0.05, thresholds=None,
                 final_tier="human", calibration_size=0.5, random_state=None):
        self.stages = stages
        self.target = target
        self.delta = delta
        self.thresholds = thresholds
        self.final_tier = final_tier
        self.calibration_size = calibration_size
        self.random_state = random_state

    def _check_stages(self):
        try:
            names = [str(name) for name, _ in self.stages]
            estimators = [est for _, est in self.stages]
        except (TypeError, ValueError) as e:
            raise ValueError(
                "stages must be a list of (name, estimator) pairs, got "
                f"{self.stages!r}."
            ) from e
        if not names:
            raise ValueError("stages must hold at least one (name, estimator) pair.")
        if len(set(names + [self.final_tier])) != len(names) + 1:
            raise ValueError(
                f"stage names {names} and final_tier {self.final_tier!r} must be "
                "distinct."
            )
        for name, est in zip(names, estimators):
            if not hasattr(est, "predict_proba"):
                raise ValueError(f"stage {name!r} has no predict_proba.")
        return names, estimators

    def _fit_stages(self, names, estimators, X, y):
        """The fitted stages, their classes and the calibration rows."""
        if all(isinstance(est, FrozenEstimator) for est in estimators):
            X_fit, X_cal, y_fit, y_cal = None, X, None, y
        else:
            X_fit, X_cal, y_fit, y_cal = train_test_split(
                X, y, test_size=self.calibration_size, stratify=y,
                random_state=self.random_state,
            )
        fitted = [fitted_or_refit("ConfidenceCascade", est, f"stage {name!r}",
                                  X_fit, y_fit, {})
                  for name, est in zip(names, estimators)]
        classes = [np.asarray(est.classes_) for est in fitted]
        if any(not np.array_equal(c, classes[0]) for c in classes[1:]):
            raise ValueError(
                "every stage must have the same classes_; got "
                f"{[c.tolist() for c in classes]}."
            )
        return fitted, classes[0], X_cal, y_cal

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Certify the threshold on labelled rows scored by every stage.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str
            Rows not used to fit (or calibrate) any frozen stage; the stages
            that are not frozen are fitted on a part of them.
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : ConfidenceCascade
        """
        names, estimators = self._check_stages()
        y = column_or_1d(y)
        estimators, self.classes_, X, y = self._fit_stages(names, estimators, X, y)
        self.stages_ = list(zip(names, estimators))
        copy_input_attributes(estimators[0], self)
        self.stage_names_ = np.array(names)
        self.tier_names_ = np.array(names + [self.final_tier])
        conf, pred = [], []
        for est in estimators:
            proba, failed = _stage_proba(est, X)
            p = np.argmax(np.where(failed[:, None], 0.0, proba), axis=1)
            conf.append(np.where(failed, -np.inf, proba[np.arange(len(p)), p]))
            pred.append(p)
        conf, pred = np.array(conf), np.array(pred)
        wrong = self.classes_[pred] != y[None, :]
        grid = (default_thresholds() if self.thresholds is None
                else np.sort(np.asarray(self.thresholds, dtype=float))[::-1])
        self.thresholds_ = self._certify_paths(conf, wrong, grid, self.target,
                                               self.delta)
        stage = self._answering_stage(conf, self.thresholds_)
        answered = stage < len(names)
        self.n_calibration_ = len(y)
        self.n_accepted_ = int(answered.sum())
        self.n_errors_ = int(wrong[np.minimum(stage, len(names) - 1),
                                   np.arange(len(y))][answered].sum())
        self.precision_lower_bound_ = float(precision_lower_bound(
            self.n_accepted_ - self.n_errors_, self.n_accepted_, 1.0 - self.delta))
        self.p_value_ = float(binomial_p_values(self.n_accepted_, self.n_errors_,
                                                self.target))
        self.stage_share_ = np.bincount(stage, minlength=len(names) + 1)[:-1] / len(y)
        self.targets_ = np.full(len(names), float(self.target))
        fingerprint = data_fingerprint(X, y)
        self._state_hashes = [{} for _ in estimators]
        self.certificates_ = [
            dict(certificate_of(est, memo), calibration_data=fingerprint)
            for est, memo in zip(estimators, self._state_hashes)]
        return self

    def __sklearn_tags__(self):
        try:
            estimators = [est for _, est in self.stages]
        except (TypeError, ValueError):  # fit says what is wrong with them
            estimators = []
        return routing_tags(super().__sklearn_tags__(), estimators)

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_state_hashes", None)  # memos holding the stages' values
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "certificates_" in state:
            self._state_hashes = [{} for _ in state["certificates_"]]

    @classmethod
    def _certify_paths(cls, conf, wrong, grid, target, delta):
        """Per-stage thresholds of the certified configuration answering most.

        Returns
        -------
        thresholds : ndarray of shape (n_stages,)
            All ``inf`` when no path certifies anything.
        """
        n_stages, n = conf.shape
        early_grid = EARLY_THRESHOLDS if n_stages > 1 else ()
        level = delta / (1 + len(early_grid))
        n_acc, n_err = cls._path_counts(conf, wrong, grid)
        lam = fixed_sequence_threshold(grid, n_acc, n_err, target, level)
        candidates = [np.full(n_stages, lam)]
        cols = np.arange(n)
        for a in early_grid:
            early = np.full(n_stages - 1, a)
            stage = cls._answering_stage(conf[:-1], early)
            by_early = stage < n_stages - 1
            e_err = wrong[np.minimum(stage, n_stages - 2), cols][by_early].sum()
            rest = ~by_early
            last_acc, last_err = accepted_counts(conf[-1][rest], ~wrong[-1][rest],
                                                 grid)
            b = fixed_sequence_threshold(grid, by_early.sum() + last_acc,
                                         e_err + last_err, target, level)
            candidates.append(np.r_[early, b])
        # most rows answered; among those, fewest rows sent to the last stage
        scores = []
        for t in candidates:
            stage = cls._answering_stage(conf, t)
            scores.append((np.sum(stage < n_stages), -np.sum(stage >= n_stages - 1))
                          if np.isfinite(t[-1]) else (-1, 0))
        best = candidates[max(range(len(scores)), key=scores.__getitem__)]
        return best if np.isfinite(best[-1]) else np.full(n_stages, np.inf)

    @staticmethod
    def _answering_stage(conf, thresholds):
        """First stage whose confidence reaches its threshold; n_stages if none."""
        reach = conf >= np.reshape(thresholds, (-1, 1))
        return np.where(reach.any(axis=0), np.argmax(reach, axis=0), len(conf))

    @staticmethod
    def _path_counts(conf, wrong, grid):
        """Answered and wrong calibration rows at each shared threshold.

        Stage ``k`` answers a row at ``lam`` iff ``M_k < lam <= c_k`` with
        ``M_k`` the largest confidence of the stages before it: counts of
        values ``>= lam`` over the grid, by sorting once per stage.
        """
        def count_ge(values, weights):
            order = np.argsort(-values, kind="stable")
            total = np.r_[0, np.cumsum(weights[order])]
            return total[np.searchsorted(-values[order], -grid, side="right")]

        n_acc = count_ge(conf.max(axis=0), np.ones(conf.shape[1]))
        n_err = np.zeros(len(grid))
        before = np.full(conf.shape[1], -np.inf)
        for c, w in zip(conf, wrong.astype(float)):
            n_err += count_ge(c, w) - count_ge(np.minimum(c, before), w)
            before = np.maximum(before, c)
        return n_acc.astype(int), np.rint(n_err).astype(int)

    def _check_certificates(self):
        memos = getattr(self, "_state_hashes", None) or [None] * len(self.stages_)
        changed = {
            name: diff for name, (_, est), cert, memo in zip(
                self.stage_names_, self.stages_, self.certificates_, memos)
            if (diff := differences(cert, certificate_of(est, memo)))
        }
        if changed:
            warn_external(
                f"ConfidenceCascade: stages {changed} differ from what the threshold "
                "was certified for; the precision guarantee does not apply. Fit the "
                "cascade again on fresh labels.",
                UserWarning,
            )
        return not changed

    def decide(self, X):
        """Send each row down the cascade; the decision and what it cost.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str

        Returns
        -------
        decisions : :class:`~sklearn.utils.Bunch`
            ``label`` (answer of the answering stage, or of the last stage
            scored for the rows left to ``final_tier``; None where it failed),
            ``tier`` (stage name or ``final_tier``), ``stage`` (its index,
            ``n_stages`` for ``final_tier``), ``confidence``, ``proba``
            (probabilities of the last stage scored), ``certified``, and per
            stage: ``n_scored`` (rows sent to it) and ``usage`` (calls, cache
            hits, tokens of its language models during this call).
        """
        check_is_fitted(self)
        certified = self._check_certificates()
        n, n_stages = _num_samples(X), len(self.stage_names_)
        proba = np.full((n, len(self.classes_)), np.nan)
        stage = np.full(n, n_stages)
        pending = np.arange(n)
        n_scored, usage = np.zeros(n_stages, dtype=int), []
        for k, (_, est) in enumerate(self.stages_):
            before = _usage(est)
            if len(pending):
                p, failed = _stage_proba(est, _take(X, pending))
                proba[pending] = np.where(failed[:, None], np.nan, p)
                with np.errstate(invalid="ignore"):
                    ok = ~failed & (np.nan_to_num(p, nan=-1).max(axis=1)
                                    >= self.thresholds_[k])
                stage[pending[ok]] = k
                n_scored[k] = len(pending)
                pending = pending[~ok]
            after = _usage(est)
            usage.append({key: after[key] - before[key] for key in after})
        ok = np.isfinite(proba).all(axis=1)
        best = np.argmax(np.where(ok[:, None], proba, 0.0), axis=1)
        labels = np.empty(n, dtype=object)
        labels[ok] = self.classes_[best[ok]]
        labels[~ok] = None
        return Bunch(label=labels, tier=self.tier_names_[stage], stage=stage,
                     confidence=np.where(ok, proba[np.arange(n), best], np.nan),
                     proba=proba, certified=np.full(n, certified),
                     n_scored=n_scored, usage=usage)

    def route(self, X):
        """Stage name answering each row, or ``final_tier``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str

        Returns
        -------
        tiers : ndarray of str of shape (n_samples,)
        """
        return self.decide(X).tier

    def predict(self, X):
        """The answer where a stage answers, ``final_tier`` elsewhere.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        d = self.decide(X)
        return label_or_tier(d.stage < len(self.stage_names_), d.label,
                             np.full(len(d.label), self.final_tier, dtype=object),
                             self.classes_)

    def predict_proba(self, X):
        """Probabilities of the last stage each row reached.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            NaN rows failed.
        """
        return self.decide(X).proba

    def routing_report(self, X, y, *, confidence_level=0.95):
        """Per stage and for ``final_tier``: share of rows, precision, bound.

        The ``cumulative_*`` figures of the last stage are those of all the
        cascade's answers: the quantity :meth:`fit` certifies.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str
        y : array-like of shape (n_samples,)
        confidence_level : float, default=0.95

        Returns
        -------
        report : dict
            See :func:`~sklearn_llmconf.routing.routing_report`.
        """
        d = self.decide(X)
        return routing_report(y, d.label, d.tier, tier_names=self.tier_names_,
                              confidence_level=confidence_level)
