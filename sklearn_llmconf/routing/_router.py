"""ConfidenceRouter: route each prediction to a tier at a certified precision."""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.stats import norm
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch, ClassifierTags, get_tags
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ..scoring._failures import finite_rows, predict_with_failures
from ..utils._sklearn_compat import (
    HasMethods,
    Interval,
    StrOptions,
    _fit_context,
    _num_samples,
)
from ..utils._warn import warn_external
from ._certificate import (
    UncertifiedWarning,
    certificate_of,
    data_fingerprint,
    differences,
)
from ._report import label_or_tier, routing_report
from ._stats import (
    N_STARTS,
    accepted_counts,
    default_thresholds,
    ltt_threshold,
    min_accepted,
    plugin_threshold,
    precision_lower_bound,
    required_calibration_size,
)

__all__ = ["ConfidenceRouter", "RefittedWarning"]


def _is_fitted(estimator):
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def copy_input_attributes(fitted, owner):
    """``n_features_in_`` and ``feature_names_in_`` of ``fitted`` onto ``owner``."""
    for name in ("n_features_in_", "feature_names_in_"):
        if hasattr(fitted, name):
            setattr(owner, name, getattr(fitted, name))
        elif name in vars(owner):
            delattr(owner, name)


def routing_tags(tags, estimators):
    """A router's tags: the input tags of what it wraps, a classifier's others.

    Input: that of the first estimator, sparse only when every one accepts it.
    ``classifier_tags`` are set (``predict_proba`` and ``classes_`` are a
    classifier's) while ``estimator_type`` stays None: ``predict`` returns tier
    names for the rows no tier accepts.
    """
    inner = [get_tags(est) for est in estimators]
    if inner:
        tags.input_tags = inner[0].input_tags
        tags.input_tags.sparse = all(t.input_tags.sparse for t in inner)
        tags.input_tags.allow_nan = all(t.input_tags.allow_nan for t in inner)
    tags.classifier_tags = ClassifierTags()
    tags.classifier_tags.poor_score = True
    return tags


class RefittedWarning(UserWarning):
    """A fitted, non-frozen estimator given to a router or cascade is refitted."""


def fitted_or_refit(owner, estimator, role, X_fit, y_fit, fit_params):
    """The estimator a meta-estimator scores with: frozen as is, else refitted.

    A :class:`~sklearn.frozen.FrozenEstimator` is used as it is (its clone is
    itself, so ``clone(owner).fit`` does the same). Any other estimator is
    cloned and fitted on ``X_fit, y_fit``, which is what a clone of ``owner``
    would do with it; when it is already fitted, a warning says so.

    Parameters
    ----------
    owner : str
        Class name of the meta-estimator, for the warning.
    estimator : estimator instance
    role : str
        What the estimator is to the owner ("estimator", "stage 'cheap'").
    X_fit, y_fit : rows to fit a non-frozen estimator on.
    fit_params : dict
        Passed to its ``fit``.

    Returns
    -------
    fitted : estimator instance
    """
    if isinstance(estimator, FrozenEstimator):
        check_is_fitted(estimator.estimator)
        return estimator
    if _is_fitted(estimator):
        warn_external(
            f"{owner}: the {role} ({type(estimator).__name__}) is already fitted "
            "but not frozen, so it is cloned and refitted on a part of the rows "
            f"given to fit, as a clone of the {owner} would be (GridSearchCV, "
            "cross_validate). Pass "
            "FrozenEstimator(estimator) (sklearn.frozen) to certify it as it is "
            "on all the rows.",
            RefittedWarning,
        )
    return clone(estimator).fit(X_fit, y_fit, **fit_params)


def _labels_needed(confidence, correct, target, delta, thresholds):
    """Calibration labels needed to certify ``target`` at the observed precision.

    Over the candidate thresholds whose observed precision beats the target:
    the accepted rows needed at that precision
    (:func:`required_calibration_size`) divided by the share of rows the
    threshold accepts. The threshold is picked with a normal approximation,
    the count is exact. None when no observed precision beats the target.
    """
    n_acc, n_err = accepted_counts(confidence, correct, thresholds)
    alpha = 1.0 - target
    rate = n_err / np.maximum(n_acc, 1)
    usable = (n_acc > 0) & (rate < alpha - 1e-12)
    if not usable.any():
        return None
    z = norm.isf(delta)
    approx = (z * np.sqrt(alpha * target) / (alpha - rate[usable])) ** 2
    approx = np.maximum(approx, np.log(delta) / np.log(target))
    share = n_acc[usable] / len(correct)
    best = np.argmin(approx / share)
    need = required_calibration_size(target, delta=delta,
                                     error_rate=rate[usable][best])
    return None if need is None else int(np.ceil(need / share[best]))


class ConfidenceRouter(MetaEstimatorMixin, BaseEstimator):
    """Route predictions to tiers whose precision is certified on held-out labels.

    A prediction goes to the first tier whose confidence threshold its
    confidence (largest class probability) reaches; the rest go to
    ``fallback_tier``, and so do rows that could not be scored. :meth:`fit`
    chooses each tier's threshold so that, with probability at least
    ``1 - delta`` over the draw of the calibration data, the precision of the
    predictions at or above the threshold, on new data exchangeable with the
    calibration data, is at least the tier's target -- for every tier at once.

    Parameters
    ----------
    estimator : estimator instance
        Probabilistic classifier (``predict_proba`` and ``classes_``): an
        :class:`~sklearn_llmconf.LLMClassifier`, a
        :class:`~sklearn_llmconf.TemperatureScaler`, a
        :class:`~sklearn.calibration.CalibratedClassifierCV`, a
        :class:`~sklearn.frozen.FrozenEstimator` of any of them. A
        ``FrozenEstimator(fitted)`` is used as it is and every row given to
        :meth:`fit` certifies the thresholds. Any other estimator is cloned and
        fitted on a stratified part of the rows, and the other
        ``calibration_size`` part certifies -- also when it is already fitted
        (with a :class:`RefittedWarning`), because that is what a clone of the
        router (``GridSearchCV``, ``cross_validate``) does with it: ``fit``
        behaves the same before and after :func:`~sklearn.base.clone`.

    tiers : sequence of (str, float), default=(("accept", 0.99), ("review", 0.90))
        Tier names with their target precision, highest target first.

    delta : float, default=0.05
        Probability that some tier's guarantee fails. It is split evenly over
        the tests (Bonferroni): ``delta / n_tiers``, and ``delta / (n_tiers *
        n_classes)`` with ``per_class=True``. The tests share the calibration
        rows, so the union bound is what makes all guarantees hold together
        without assumptions on their dependence.

    method : {"ltt", "plugin"}, default="ltt"
        ``"ltt"``: learn-then-test with binomial p-values and fixed-sequence
        testing (Angelopoulos et al., 2021): from the most confident threshold
        down, test "precision < target" and stop at the first hypothesis not
        rejected; two such sequences with different starts run at
        ``delta / 2`` each. ``"plugin"``: the smallest threshold whose accepted
        calibration predictions meet the target; no guarantee, for comparison.

    per_class : bool, default=False
        One threshold per tier and predicted class: the guarantee then holds
        for each predicted class (class-conditional precision).

    thresholds : array-like of float, default=None
        Candidate thresholds; fixed before seeing the data, as the guarantee
        requires. None: steps of 0.01 and a logarithmic grid up to 0.9999.

    fallback_tier : str, default="escalate"
        Name of the lowest tier: rows no tier accepts, and failed rows.

    calibration_size : float, default=0.5
        Share of the rows certifying the thresholds when ``estimator`` is not
        a :class:`~sklearn.frozen.FrozenEstimator`.

    random_state : int, RandomState instance or None, default=None
        Split of the rows when ``estimator`` is not a
        :class:`~sklearn.frozen.FrozenEstimator`.

    on_uncertified : {"warn", "escalate", "raise"}, default="warn"
        What scoring does when the estimator no longer matches the
        certificate recorded by :meth:`fit` (another model file or server
        model, another prompt, other labels, a refitted calibration):
        ``"warn"`` routes as usual and warns (:meth:`decide` marks every row
        uncertified), ``"escalate"`` also sends every row to
        ``fallback_tier``, ``"raise"`` raises a ValueError.

    Attributes
    ----------
    estimator_ : estimator instance
        The classifier whose probabilities are routed.

    classes_ : ndarray of shape (n_classes,)
        Class labels.

    tier_names_ : ndarray of str of shape (n_tiers + 1,)
        Tier names, highest target first, ``fallback_tier`` last.

    targets_ : ndarray of shape (n_tiers,)
        Target precision of each tier.

    thresholds_ : ndarray of shape (n_tiers,) or (n_tiers, n_classes)
        Confidence threshold of each tier (and predicted class); ``inf`` where
        nothing could be certified (the tier accepts nothing).

    certified_ : ndarray of bool, same shape as ``thresholds_``

    n_accepted_ : ndarray of int, same shape as ``thresholds_``
        Calibration rows at or above each threshold.

    n_errors_ : ndarray of int, same shape as ``thresholds_``
        Wrong predictions among them.

    precision_lower_bound_ : ndarray of float, same shape as ``thresholds_``
        One-sided Clopper-Pearson bound at level ``1 - delta_per_test_`` of the
        precision at each threshold (NaN where nothing is accepted). It is at
        least the target wherever ``method="ltt"`` certified the threshold.

    n_labels_needed_ : ndarray of object, same shape as ``thresholds_``
        Calibration labels a certification would need at the observed
        precision of the best threshold; None where no threshold's observed
        precision beats the target.

    delta_per_test_ : float
        Level of each test after the Bonferroni split.

    n_calibration_ : int
        Rows used to certify the thresholds.

    n_failed_calibration_ : int
        Calibration rows that could not be scored; they are left out (failed
        rows are never accepted, so they do not enter the precision).

    certificate_ : dict
        What the thresholds were certified for: ``model`` (each language
        model's ``backend.cache_identity()``: file name and SHA-256 of a GGUF,
        or server URL and model name), ``prompt`` (each rendered prompt,
        ``{text}`` standing for the text), ``labels``, ``state`` (hash of the
        remaining fitted state) and ``calibration_data`` (hash of the
        calibration rows and labels). Scoring compares the first four with the
        estimator's current ones; see ``on_uncertified``. The hashes of the
        fitted state are kept from :meth:`fit`: before each prediction only
        values a refit replaced are hashed again (an edit made in place inside
        a fitted array is not seen).

    calibration_confidence_ : ndarray of shape (n_calibration,)
        Confidence of each scored calibration row: the reference of a
        :class:`~sklearn_llmconf.routing.DriftMonitor`.

    n_features_in_ : int
        That of ``estimator_``, where it has one.

    feature_names_in_ : ndarray of str
        That of ``estimator_``, where it has one.

    References
    ----------
    A. N. Angelopoulos, S. Bates, E. J. Candès, M. I. Jordan and L. Lei,
    "Learn then Test: Calibrating predictive algorithms to achieve risk
    control", 2021, arXiv:2110.01052.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_llmconf.routing import ConfidenceRouter
    >>> X, y = make_classification(n_samples=3000, class_sep=2, random_state=0)
    >>> clf = LogisticRegression().fit(X[:1000], y[:1000])
    >>> router = ConfidenceRouter(FrozenEstimator(clf), tiers=[("accept", 0.95)]).fit(
    ...     X[1000:2000], y[1000:2000])
    >>> router.route(X[2000:2005]).tolist()
    ['accept', 'accept', 'accept', 'accept', 'accept']
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["predict_proba"])],
        "tiers": ["array-like"],
        "delta": [Interval(Real, 0, 1, closed="neither")],
        "method": [StrOptions({"ltt", "plugin"})],
        "per_class": ["boolean"],
        "thresholds": ["array-like", None],
        "fallback_tier": [str],
        "calibration_size": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "on_uncertified": [StrOptions({"warn", "escalate", "raise"})],
    }

    def __init__(
        self,
        estimator,
        *,
        tiers=(("accept", 0.99), ("review", 0.90)),
        delta=0.05,
        method="ltt",
        per_class=False,
        thresholds=None,
        fallback_tier="escalate",
        calibration_size=0.5,
        random_state=None,
        on_uncertified="warn",
    ):
        self.estimator = estimator
        self.tiers = tiers
        self.delta = delta
        self.method = method
        self.per_class = per_class
        self.thresholds = thresholds
        self.fallback_tier = fallback_tier
        self.calibration_size = calibration_size
        self.random_state = random_state
        self.on_uncertified = on_uncertified

    def _check_tiers(self):
        try:
            names = [str(name) for name, _ in self.tiers]
            targets = np.array([float(t) for _, t in self.tiers])
        except (TypeError, ValueError) as e:
            raise ValueError(
                "tiers must be a sequence of (name, target precision) pairs, "
                f"got {self.tiers!r}."
            ) from e
        if len(names) == 0:
            raise ValueError("tiers must hold at least one (name, target) pair.")
        if len(set(names + [self.fallback_tier])) != len(names) + 1:
            raise ValueError(
                f"tier names {names} and fallback_tier {self.fallback_tier!r} "
                "must be distinct."
            )
        if not np.all((targets > 0) & (targets < 1)):
            raise ValueError(f"tier targets must lie in (0, 1), got {targets}.")
        if np.any(np.diff(targets) >= 0):
            raise ValueError(
                f"tier targets must be strictly decreasing, got {targets.tolist()}."
            )
        return names, targets

    def _check_fit_input(self, X, y, names):
        """Lengths, thresholds and tier names, before any row is scored."""
        n_x = _num_samples(X)
        if n_x != len(y):
            raise ValueError(
                f"X has {n_x} rows but y has {len(y)}: they must match (checked "
                "before any row is scored)."
            )
        if self.thresholds is not None:
            grid = np.asarray(self.thresholds, dtype=float).ravel()
            if grid.size == 0 or not np.all((grid >= 0) & (grid <= 1)):
                raise ValueError(
                    "thresholds must be confidence levels in [0, 1] (no NaN), got "
                    f"{grid.tolist()}."
                )
        tiers = set(names + [self.fallback_tier])
        clash = sorted({str(c) for c in np.unique(y)} & tiers)
        if clash:
            raise ValueError(
                f"The tier names {clash} are also class labels, so route() and "
                "predict() output could not tell a tier from a class. Rename the "
                "tiers (tiers=[(name, target), ...], fallback_tier=...)."
            )

    def _proba(self, X):
        """Probabilities and failed-row mask (reported failures or NaN rows)."""
        proba, failed, _ = predict_with_failures(self.estimator_, X, "predict_proba")
        proba = np.asarray(proba, dtype=float)
        return proba, failed | ~finite_rows(proba)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, **fit_params):
        """Certify one confidence threshold per tier on labelled rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str
            Input accepted by the estimator; rows not seen when the estimator
            (or its calibrator) was fitted.

        y : array-like of shape (n_samples,)
            True labels.

        **fit_params : dict
            Passed to the estimator's ``fit`` when it is not a
            :class:`~sklearn.frozen.FrozenEstimator`.

        Returns
        -------
        self : object
        """
        names, targets = self._check_tiers()
        y = column_or_1d(y)
        self._check_fit_input(X, y, names)
        if isinstance(self.estimator, FrozenEstimator):
            X_fit, X_cal, y_fit, y_cal = None, X, None, y
        else:
            X_fit, X_cal, y_fit, y_cal = train_test_split(
                X, y, test_size=self.calibration_size, stratify=y,
                random_state=self.random_state,
            )
        self.estimator_ = fitted_or_refit("ConfidenceRouter", self.estimator,
                                          "estimator", X_fit, y_fit, fit_params)
        copy_input_attributes(self.estimator_, self)
        self.tier_names_ = np.array(names + [self.fallback_tier])
        self.targets_ = targets
        return self._certify_on(X_cal, y_cal)

    def _certify_on(self, X_cal, y_cal):
        """Score the calibration rows, certify, record what was certified."""
        self.classes_ = np.asarray(self.estimator_.classes_)
        proba, failed = self._proba(X_cal)
        ok = ~failed
        pred = np.argmax(np.where(ok[:, None], proba, 0.0), axis=1)
        confidence = proba[np.arange(len(pred)), pred][ok]
        correct = (self.classes_[pred] == np.asarray(y_cal))[ok]
        pred = pred[ok]
        self.n_calibration_ = int(ok.sum())
        self.n_failed_calibration_ = int(failed.sum())
        n_classes = len(self.classes_) if self.per_class else 1
        self.delta_per_test_ = self.delta / (len(self.targets_) * n_classes)
        self._certify(confidence, correct, pred)
        self.calibration_confidence_ = confidence
        self._state_hashes = {}
        self.certificate_ = certificate_of(self.estimator_, self._state_hashes)
        self.certificate_["calibration_data"] = data_fingerprint(X_cal, y_cal)
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def recertify(self, X, y):
        """Certify the thresholds again, on fresh labelled rows, as things are now.

        The estimator is kept as it is now (a new model file, a new prompt,
        refitted calibration): only the thresholds, their statistics and
        ``certificate_`` are replaced. Use it after a
        :class:`~sklearn_llmconf.routing.RoutingMonitor` alarm, a drift alarm
        or a change of model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str
            Rows not used to fit the estimator or its calibration, and not
            used for an earlier certification.
        y : array-like of shape (n_samples,)
            True labels.

        Returns
        -------
        self : object
        """
        check_is_fitted(self)
        return self._certify_on(X, column_or_1d(y))

    def check_certificate(self):
        """What changed since the thresholds were certified.

        Returns
        -------
        changed : list of str
            Empty when the estimator still matches ``certificate_``; else some
            of ``"model"``, ``"prompt"``, ``"labels"``, ``"state"``.
        """
        check_is_fitted(self)
        return differences(self.certificate_, certificate_of(
            self.estimator_, getattr(self, "_state_hashes", None)))

    def _certified(self):
        """Check the certificate before scoring; warn or raise per policy."""
        changed = self.check_certificate()
        if not changed:
            return True
        message = (
            f"ConfidenceRouter: the {', '.join(changed)} differ from what the "
            "thresholds were certified for (certificate_); the tiers' precision "
            "guarantees do not apply to this output. Re-certify with "
            "recertify(X, y) on fresh labels."
        )
        if self.on_uncertified == "raise":
            raise ValueError(message)
        warn_external(message, UncertifiedWarning)
        return False

    def _certify(self, confidence, correct, pred):
        """Fill the per-tier (and per-class) thresholds and their statistics."""
        grid = (default_thresholds() if self.thresholds is None
                else np.sort(np.asarray(self.thresholds, dtype=float))[::-1])
        groups = (
            [pred == c for c in range(len(self.classes_))]
            if self.per_class else [np.ones(len(pred), dtype=bool)]
        )
        shape = (len(self.targets_), len(groups))
        thr = np.full(shape, np.inf)
        n_acc, n_err = np.zeros(shape, int), np.zeros(shape, int)
        needed = np.empty(shape, dtype=object)
        d = self.delta_per_test_
        for t, target in enumerate(self.targets_):
            for g, rows in enumerate(groups):
                conf, corr = confidence[rows], correct[rows]
                if self.method == "ltt":
                    thr[t, g] = ltt_threshold(conf, corr, target, d, grid)
                else:
                    thr[t, g] = plugin_threshold(conf, corr, target, grid)
                n_acc[t, g] = np.sum(conf >= thr[t, g])
                n_err[t, g] = np.sum(~corr[conf >= thr[t, g]])
                needed[t, g] = _labels_needed(conf, corr, target, d / N_STARTS, grid)
        squeeze = (lambda a: a) if self.per_class else (lambda a: a[:, 0])
        self.thresholds_ = squeeze(thr)
        self.certified_ = squeeze(np.isfinite(thr))
        self.n_accepted_ = squeeze(n_acc)
        self.n_errors_ = squeeze(n_err)
        self.precision_lower_bound_ = squeeze(
            precision_lower_bound(n_acc - n_err, n_acc, 1.0 - d)
        )
        self.n_labels_needed_ = squeeze(needed)
        self._warn_uncertified(thr, needed, len(groups))

    def _warn_uncertified(self, thr, needed, n_groups):
        for t, target in enumerate(self.targets_):
            for g in range(n_groups):
                if np.isfinite(thr[t, g]):
                    continue
                where = (f" for predicted class {self.classes_[g:g + 1].tolist()[0]!r}"
                         if self.per_class else "")
                n_zero = min_accepted(target, self.delta_per_test_ / N_STARTS)
                need = needed[t, g]
                at_obs = (
                    f"at the observed precision about {need} labelled rows"
                    f"{' of that class' if self.per_class else ''} would be needed"
                    if need is not None else
                    "no threshold's observed precision reaches the target"
                )
                tier = str(self.tier_names_[t])
                warn_external(
                    f"Tier {tier!r} (precision >= {target:g}){where}: "
                    f"no threshold could be certified with {self.n_calibration_} "
                    f"calibration rows at delta {self.delta_per_test_:.3g}; the tier "
                    f"accepts nothing. Certifying needs at least {n_zero} accepted "
                    f"rows with no error; {at_obs}."
                )

    def tiers_from_proba(self, proba, failed=None):
        """Tier of each row from probabilities already computed.

        What :meth:`route` does after scoring, for callers that hold the
        model's probabilities already (a chunked prediction, an audit of
        stored scores): no model call, and no check that the probabilities
        come from the certified model.

        Parameters
        ----------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities of the router's model, columns in ``classes_``.
        failed : ndarray of bool of shape (n_samples,), default=None
            Rows that were not scored (they go to the last tier). None: the
            rows whose probabilities are not all finite.

        Returns
        -------
        tier : ndarray of int of shape (n_samples,)
            Index into ``tier_names_``.
        pred : ndarray of int of shape (n_samples,)
            Index into ``classes_`` of each row's predicted class.
        scored : ndarray of bool of shape (n_samples,)
            Rows that were scored.
        """
        check_is_fitted(self)
        proba = np.asarray(proba, dtype=float)
        if failed is None:
            failed = ~np.isfinite(proba).all(axis=1)
        return self._tier_index(proba, np.asarray(failed, dtype=bool))

    def _tier_index(self, proba, failed):
        ok = ~failed
        pred = np.argmax(np.where(ok[:, None], proba, 0.0), axis=1)
        confidence = np.where(ok, proba[np.arange(len(pred)), pred], -np.inf)
        n_tiers = len(self.targets_)
        tier = np.full(len(pred), n_tiers)
        for t in range(n_tiers)[::-1]:  # highest tier last: it wins
            thr = self.thresholds_[t]
            thr = thr[pred] if self.per_class else thr
            tier[ok & (confidence >= thr)] = t
        return tier, pred, ok

    def route(self, X):
        """Tier of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str

        Returns
        -------
        tiers : ndarray of str of shape (n_samples,)
            One of ``tier_names_``; rows that failed are in the last tier.
        """
        check_is_fitted(self)
        return self._decisions(X).tier

    def _decisions(self, X):
        certified = self._certified()
        proba, failed = self._proba(X)
        tier, pred, ok = self._tier_index(proba, failed)
        if not certified and self.on_uncertified == "escalate":
            tier[:] = len(self.targets_)
        labels = np.empty(len(pred), dtype=object)
        labels[ok] = self.classes_[pred[ok]]
        labels[~ok] = None
        confidence = np.where(ok, proba[np.arange(len(pred)), pred], np.nan)
        return Bunch(label=labels, tier=self.tier_names_[tier],
                     confidence=confidence,
                     certified=np.full(len(pred), certified))

    def _labels_and_tiers(self, X):
        decisions = self._decisions(X)
        return decisions.label, decisions.tier

    def decide(self, X):
        """Every column of a decision: label, tier, confidence, certified.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str

        Returns
        -------
        decisions : :class:`~sklearn.utils.Bunch`
            Arrays of shape (n_samples,): ``label`` (predicted class, None for
            failed rows), ``tier``, ``confidence`` (largest probability, NaN
            for failed rows) and ``certified`` (False for every row when the
            estimator no longer matches ``certificate_``).
            ``pandas.DataFrame(decisions)`` makes a table of them.
        """
        check_is_fitted(self)
        return self._decisions(X)

    def predict(self, X):
        """Label of the rows in the top tier, the tier name for the others.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            A string array when the classes are strings; otherwise an object
            array mixing labels and tier names. :meth:`route` gives the tiers
            alone.
        """
        check_is_fitted(self)
        labels, tiers = self._labels_and_tiers(X)
        return label_or_tier(tiers == self.tier_names_[0], labels, tiers,
                             self.classes_)

    def predict_proba(self, X):
        """The wrapped estimator's probabilities (NaN rows kept).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        self._certified()
        return self._proba(X)[0]

    def routing_report(self, X, y, *, confidence_level=0.95):
        """Per tier: share of rows, observed precision and its lower bound.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str
            Held-out rows (not the calibration rows).
        y : array-like of shape (n_samples,)
            True labels.
        confidence_level : float, default=0.95
            Level of the one-sided Clopper-Pearson bounds.

        Returns
        -------
        report : dict
            See :func:`~sklearn_llmconf.routing.routing_report`.
        """
        check_is_fitted(self)
        labels, tiers = self._labels_and_tiers(X)
        return routing_report(y, labels, tiers, tier_names=self.tier_names_,
                              confidence_level=confidence_level)

    def __sklearn_tags__(self):
        return routing_tags(super().__sklearn_tags__(), [self.estimator])

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_state_hashes", None)  # a memo holding the estimator's values
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "certificate_" in state:
            self._state_hashes = {}

