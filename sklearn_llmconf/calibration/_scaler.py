"""Temperature scaling (optionally with a per-class bias) as a meta-estimator."""

from inspect import signature
from numbers import Integral, Real

import numpy as np
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneOut, check_cv, cross_val_predict
from sklearn.utils import get_tags, indexable
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    process_routing,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ..scoring._failures import finite_rows, predict_with_failures
from ..utils._sklearn_compat import (
    HasMethods,
    Interval,
    StrOptions,
    _check_method_params,
    _check_response_method,
    _check_sample_weight,
    _fit_context,
    _manual_routing,
    _num_samples,
    _routing_enabled,
    _safe_indexing,
)
from ..utils._warn import warn_external
from ._temperature import fit_temperature, logits_to_proba, scale_logits, to_logits

__all__ = ["TemperatureScaler"]

def _check_calibration_set(y):
    """Refuse an empty calibration set; warn on one with a single class."""
    if len(y) == 0:
        raise ValueError(
            "TemperatureScaler needs labelled calibration rows, got an empty "
            "set (0 samples): a temperature fitted on nothing would be 1 and a "
            "bias undefined. Pass held-out texts and their labels."
        )
    present = np.unique(y)
    if len(present) < 2:
        warn_external(
            f"The calibration set holds one class only ({present[0].item()!r}, "
            f"{len(y)} rows): the temperature then only sharpens or flattens "
            "towards that class and says nothing about the others. Calibrate on "
            "rows of every class."
        )


def _response_method_name(estimator):
    return _check_response_method(
        estimator, ["decision_function", "predict_proba"]
    ).__name__


def _score(estimator, method_name, X, n_classes):
    """Logits of ``X``, the mask of the rows that failed, and their reasons."""
    raw, failed, reasons = predict_with_failures(estimator, X, method_name)
    logits = to_logits(raw, method_name, n_classes)
    return logits, failed | ~finite_rows(logits), reasons


def _drop_failed(logits, failed, y, sample_weight):
    """Leave the failed rows out of a temperature fit, warning with the count."""
    if not failed.any():
        return logits, y, sample_weight
    if failed.all():
        raise ValueError(
            f"All {len(failed)} calibration rows failed in the wrapped estimator "
            "(NaN scores or rows reported as failed); nothing to fit the "
            "temperature on."
        )
    warn_external(
        f"{int(failed.sum())} of {len(failed)} calibration rows failed in the "
        "wrapped estimator and were left out of the temperature fit."
    )
    keep = ~failed
    y = np.asarray(y)[keep]
    sample_weight = None if sample_weight is None else sample_weight[keep]
    return logits[keep], y, sample_weight


class _TemperatureCalibratedClassifier:
    """A fitted classifier and its fitted temperature / bias."""

    def __init__(self, estimator, temperature, bias, *, method_name, n_classes):
        self.estimator = estimator
        self.temperature = temperature
        self.bias = bias
        self.method_name = method_name
        self.n_classes = n_classes

    def calibrated_logits(self, X):
        """``z / T + b`` for the scored rows; failed rows as the estimator gave them.

        Returns
        -------
        z : ndarray of shape (n,) or (n, k)
        failed : ndarray of bool of shape (n,)
            Rows the wrapped estimator reported as failed or left non-finite:
            they are not rescaled, so a uniform placeholder stays uniform and a
            NaN row stays NaN.
        reasons : list of (str or None)
            Why each row failed, as the wrapped estimator reported it.
        """
        logits, failed, reasons = _score(self.estimator, self.method_name, X,
                                         self.n_classes)
        z = scale_logits(logits, self.temperature, self.bias)
        z[failed] = logits[failed]
        return z, failed, reasons

    def proba_with_failures(self, X):
        """Calibrated probabilities, failed rows and their reasons."""
        z, failed, reasons = self.calibrated_logits(X)
        return logits_to_proba(z), failed, reasons


def _encode(y, classes):
    """Column index of each label of ``y`` in ``classes`` (which may be unsorted)."""
    order = np.argsort(classes)
    sorted_classes = classes[order]
    pos = np.clip(np.searchsorted(sorted_classes, y), 0, len(classes) - 1)
    unknown = sorted_classes[pos] != y
    if np.any(unknown):
        message = (
            f"y contains labels {np.unique(np.asarray(y)[unknown]).tolist()} that "
            f"the wrapped estimator does not know (classes_={classes.tolist()})."
        )
        y_arr = np.asarray(y)
        if y_arr.dtype.kind in "iu" and set(np.unique(y_arr)) <= set(
            range(len(classes))
        ):
            # The usual cause: cross_val_predict(method="predict_proba") passes
            # y through a LabelEncoder, which a frozen estimator cannot follow.
            message += (
                " y looks label-encoded (0 .. n_classes - 1), as "
                "cross_val_predict(method='predict_proba') does; a frozen "
                "estimator keeps its original classes, so pass y as is, e.g. "
                "calibrate with cross_validate / cross_val_score, or loop over "
                "the folds yourself."
            )
        raise ValueError(message)
    return order[pos]


def _estimator_classes(estimator, y):
    classes = getattr(estimator, "classes_", None)
    return np.unique(y) if classes is None else np.asarray(classes)


def _fit_pair(estimator, X, y, train, test, sample_weight, fit_params, fit_bias,
              shrinkage):
    """Fit ``estimator`` on ``train`` and its temperature on ``test``."""
    fit_params_train = _check_method_params(X, params=fit_params, indices=train)
    estimator.fit(
        _safe_indexing(X, train), _safe_indexing(y, train), **fit_params_train
    )
    classes = _estimator_classes(estimator, y)
    method_name = _response_method_name(estimator)
    X_test, y_test = _safe_indexing(X, test), _safe_indexing(y, test)
    logits, failed, _ = _score(estimator, method_name, X_test, len(classes))
    sw = None if sample_weight is None else _safe_indexing(sample_weight, test)
    logits, y_test, sw = _drop_failed(logits, failed, y_test, sw)
    temperature, bias = fit_temperature(
        logits, _encode(y_test, classes), sw, fit_bias, shrinkage=shrinkage
    )
    pair = _TemperatureCalibratedClassifier(
        estimator, temperature, bias, method_name=method_name, n_classes=len(classes)
    )
    return pair, classes


class TemperatureScaler(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Calibrate a classifier's probabilities by temperature scaling.

    Fits a single positive temperature ``T`` (and, with ``bias=True``, a
    per-class offset ``b``) on held-out labels by minimising the log loss:
    calibrated probabilities are ``softmax(z / T + b)``, where ``z`` are the
    wrapped classifier's logits. This keeps the ranking of the classes when
    ``bias=False`` (accuracy is unchanged) and repairs both the scale and the
    prior when ``bias=True``.

    The logits ``z`` come from the estimator's ``decision_function`` if it has
    one (1-D log-odds of ``classes_[1]`` for binary problems, ``(n, k)``
    log-scores otherwise), else from ``log(predict_proba)`` clipped at 1e-12.

    The interface mirrors :class:`sklearn.calibration.CalibratedClassifierCV`:
    to calibrate an already fitted classifier (e.g. a zero-shot
    ``LLMClassifier``), wrap it in :class:`sklearn.frozen.FrozenEstimator`;
    then all of ``X, y`` is used for calibration and the classifier is not
    refitted.

    Parameters
    ----------
    estimator : estimator instance, default=None
        Classifier with ``fit`` and ``decision_function`` or ``predict_proba``.
        ``None`` means ``LogisticRegression()``.

    bias : bool, default=False
        If False, fit the temperature only (Guo et al. 2017). If True, also fit
        a bias: for binary problems a scalar added to the log-odds,
        ``sigmoid(z / T + b)`` (this is Platt scaling); for multiclass a
        vector of ``n_classes`` offsets constrained to sum to zero (the softmax
        ignores a common shift), i.e. vector scaling with a shared slope.

    bias_shrinkage : float >= 0 or "auto", default="auto"
        Only with ``bias=True``: strength of an L2 penalty pulling the bias
        toward the label-free batch prior correction of the calibration scores
        (``-log`` of their mean predicted distribution, Zhou et al. 2024), in
        pseudo-rows: the penalty is ``bias_shrinkage / (2 n)`` times the
        squared distance, added to the mean log loss of the ``n`` calibration
        rows (see :mod:`sklearn_llmconf.calibration._temperature`). ``0`` fits a free
        bias; large values keep the label-free correction and fit only the
        temperature. ``"auto"`` chooses it among
        ``(0, 1, 3, 10, 30, 100, 1000)`` by 5-fold cross-validated log loss on
        the calibration scores (no extra call to the wrapped estimator), or
        uses 30 below 20 calibration rows. Free biases overfit when labels per
        class are few; ``benchmarks/bench_shrinkage.py`` compares free,
        shrunk and label-free corrections (figures in :ref:`shrunk_bias`).


    cv : int, cross-validation generator, iterable or None, default=None
        How to split the data between fitting the classifier and fitting the
        temperature, as in ``CalibratedClassifierCV`` (None: 5-fold
        stratified). Not used for a :class:`~sklearn.frozen.FrozenEstimator`
        with ``ensemble=False``: then the temperature is fitted on all data.

    ensemble : bool or "auto", default="auto"
        ``True``: for each split fit a clone on the training part and a
        temperature on the test part; ``predict_proba`` averages the
        probabilities of all pairs. ``False``: fit the temperature on
        out-of-fold predictions (``cross_val_predict``) and the classifier on
        all data. ``"auto"``: ``False`` for a ``FrozenEstimator``, ``True``
        otherwise.

    n_jobs : int, default=None
        Number of jobs to fit the ensemble pairs or ``cross_val_predict`` in
        parallel. ``None`` means 1.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, taken from the fitted wrapped estimator (so a frozen
        classifier's classes are kept even if the calibration labels miss one).

    calibrated_classifiers_ : list
        Fitted (classifier, temperature, bias) pairs; one per fold with
        ``ensemble=True``, a single one otherwise. Each has attributes
        ``estimator``, ``temperature`` and ``bias``.

    temperature_ : float
        Fitted temperature; with several pairs, the mean over the pairs (the
        per-pair values are in ``calibrated_classifiers_``).

    bias_ : float or ndarray of shape (n_classes,)
        Fitted bias (a float for binary, a zero-sum vector for multiclass;
        zeros when ``bias=False``); the mean over pairs if several.

    n_features_in_ : int
        Number of features seen during fit, when the estimator exposes it.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when the estimator exposes them.

    See Also
    --------
    sklearn.calibration.CalibratedClassifierCV : sigmoid, isotonic and
        temperature calibration (temperature only, no bias).

    Notes
    -----
    With ``bias=False`` this is ``CalibratedClassifierCV(method="temperature")``
    (same folds, same fits, one temperature each) up to the optimiser: on
    identical logits the temperatures differ by a relative 1e-5 at most and the
    probabilities by 1e-7 to 1e-5 (``tests/calibration/test_calibration.py``).
    The bias-free case is not delegated to scikit-learn because it would move
    every existing model's probabilities by that much and because scikit-learn's
    calibrator cannot keep failed rows out of the fit (below): it rescales a
    uniform placeholder like any other row and raises on a NaN row.

    Failed rows, that is rows the wrapped estimator reports as failed (an
    :class:`~sklearn_llmconf.LLMClassifier` with ``on_error="warn"`` or
    ``"nan"``) or whose scores are not finite, are left out of the fit, with a
    warning giving their count, and pass through ``predict_proba`` /
    ``decision_function`` exactly as the wrapped estimator gave them (uniform
    or NaN), never rescaled; ``predict`` raises for NaN rows, like
    ``LLMClassifier.predict``.

    References
    ----------
    .. [1] C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger. "On Calibration of
       Modern Neural Networks", ICML 2017.
    .. [2] J. Platt. "Probabilistic Outputs for Support Vector Machines and
       Comparisons to Regularized Likelihood Methods", 1999.
    .. [3] Z. Zhao, E. Wallace, S. Feng, D. Klein, S. Singh. "Calibrate Before
       Use: Improving Few-Shot Performance of Language Models", ICML 2021
       (the prior/bias problem of LLM classifiers).

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_llmconf import TemperatureScaler
    >>> X, y = make_classification(n_samples=400, random_state=0)
    >>> clf = LogisticRegression().fit(X[:200], y[:200])
    >>> scaler = TemperatureScaler(FrozenEstimator(clf)).fit(X[200:], y[200:])
    >>> scaler.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints: dict = {
        "estimator": [
            HasMethods(["fit", "predict_proba"]),
            HasMethods(["fit", "decision_function"]),
            None,
        ],
        "bias": ["boolean"],
        "bias_shrinkage": [Interval(Real, 0, None, closed="left"),
                           StrOptions({"auto"})],
        "cv": ["cv_object"],
        "ensemble": ["boolean", StrOptions({"auto"})],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        estimator=None,
        *,
        bias=False,
        bias_shrinkage="auto",
        cv=None,
        ensemble="auto",
        n_jobs=None,
    ):
        self.estimator = estimator
        self.bias = bias
        self.bias_shrinkage = bias_shrinkage
        self.cv = cv
        self.ensemble = ensemble
        self.n_jobs = n_jobs

    def _get_estimator(self):
        if self.estimator is None:
            estimator = LogisticRegression()
            if _routing_enabled():
                estimator.set_fit_request(sample_weight=True)
            return estimator
        return self.estimator

    @_fit_context(
        # the wrapped estimator is validated by its own fit
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y, sample_weight=None, **fit_params):
        """Fit the classifier(s) and the temperature.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str
            Input accepted by the wrapped estimator.

        y : array-like of shape (n_samples,)
            Target labels.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights for the calibration loss; also passed to the estimator's
            ``fit`` if it accepts them (or, with metadata routing enabled, if
            it requests them).

        **fit_params : dict
            Passed to the estimator's ``fit`` (routed when metadata routing is
            enabled).

        Returns
        -------
        self : object
            Fitted scaler.
        """
        # column_or_1d warns and ravels a (n, 1) y, as sklearn estimators do
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        X, y = indexable(X, y)
        _check_calibration_set(y)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, y)
        estimator = self._get_estimator()
        frozen = isinstance(estimator, FrozenEstimator)
        ensemble = (not frozen) if self.ensemble == "auto" else self.ensemble

        routed_params = self._route_params(estimator, frozen, sample_weight,
                                           fit_params)
        fit_kw = routed_params.estimator.fit

        if frozen and not ensemble:
            # A frozen model is not refitted, so out-of-fold predictions equal
            # in-sample ones: skip the splitting (and its per-class minimum).
            this_estimator = clone(estimator).fit(X, y, **fit_kw)
            classes = _estimator_classes(this_estimator, y)
            method_name = _response_method_name(this_estimator)
            logits, failed, _ = _score(this_estimator, method_name, X,
                                       len(classes))
            pairs = [
                self._calibrate(
                    this_estimator, logits, failed, y, method_name, sample_weight
                )
            ]
        else:
            cv = self._check_cv(y)
            if ensemble:
                pairs, classes = self._fit_fold_pairs(
                    estimator, X, y, cv.split(X, y, **routed_params.splitter.split),
                    sample_weight, fit_kw,
                )
            else:
                this_estimator = clone(estimator)
                method_name = _response_method_name(this_estimator)
                raw = cross_val_predict(
                    this_estimator,
                    X,
                    y,
                    cv=cv,
                    method=method_name,
                    n_jobs=self.n_jobs,
                    params=fit_kw,
                )
                this_estimator.fit(X, y, **fit_kw)
                classes = _estimator_classes(this_estimator, y)
                # Out-of-fold calls have fold lengths: only non-finite (NaN)
                # rows can be recognised as failed here.
                logits = to_logits(raw, method_name, len(classes))
                pairs = [
                    self._calibrate(
                        this_estimator, logits, ~finite_rows(logits), y,
                        method_name, sample_weight,
                    )
                ]

        self.classes_ = classes
        self.calibrated_classifiers_ = pairs
        self.temperature_ = float(np.mean([p.temperature for p in pairs]))
        self.bias_ = np.mean([p.bias for p in pairs], axis=0)
        if len(classes) == 2:
            self.bias_ = float(self.bias_)
        first = pairs[0].estimator
        if hasattr(first, "n_features_in_"):
            self.n_features_in_ = first.n_features_in_
        if hasattr(first, "feature_names_in_"):
            self.feature_names_in_ = first.feature_names_in_
        return self

    def _route_params(self, estimator, frozen, sample_weight, fit_params):
        """The parameters of the estimator's ``fit`` and of the splitter."""
        if _routing_enabled():
            return process_routing(self, "fit", sample_weight=sample_weight,
                                   **fit_params)
        supports_sw = "sample_weight" in signature(estimator.fit).parameters
        if sample_weight is not None and not supports_sw and not frozen:
            warn_external(
                f"{type(estimator).__name__} does not accept sample_weight; "
                "the weights are used for the calibration only."
            )
        fit_kwargs = dict(fit_params)
        if sample_weight is not None and supports_sw:
            fit_kwargs["sample_weight"] = sample_weight
        return _manual_routing({"splitter": {}, "estimator": {"fit": fit_kwargs}})

    def _fit_fold_pairs(self, estimator, X, y, splits, sample_weight, fit_kw):
        """One calibrated copy of the estimator per cross-validation fold."""
        results = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_pair)(
                clone(estimator), X, y, train, test, sample_weight, fit_kw,
                self.bias, self.bias_shrinkage,
            )
            for train, test in splits
        )
        classes = results[0][1]
        for _, fold_classes in results[1:]:
            if not np.array_equal(fold_classes, classes):
                raise ValueError(
                    "The estimators fitted on different folds saw "
                    f"different classes ({classes.tolist()} vs "
                    f"{fold_classes.tolist()}); use a stratified cv."
                )
        return [pair for pair, _ in results], classes

    def _calibrate(self, estimator, logits, failed, y, method_name, sample_weight):
        classes = _estimator_classes(estimator, y)
        logits, y, sample_weight = _drop_failed(logits, failed, y, sample_weight)
        temperature, bias = fit_temperature(
            logits, _encode(y, classes), sample_weight, self.bias,
            shrinkage=self.bias_shrinkage,
        )
        return _TemperatureCalibratedClassifier(
            estimator,
            temperature,
            bias,
            method_name=method_name,
            n_classes=len(classes),
        )

    def _check_cv(self, y):
        # Same guards as CalibratedClassifierCV: every test fold must be able
        # to hold every class.
        if isinstance(self.cv, Integral):
            n_folds = self.cv
        elif hasattr(self.cv, "n_splits"):
            n_folds = self.cv.n_splits
        else:
            n_folds = None
        if n_folds:
            _, counts = np.unique(y, return_counts=True)
            if np.any(counts < n_folds):
                raise ValueError(
                    f"Requesting {n_folds}-fold cross-validation but provided "
                    f"less than {n_folds} examples for at least one class."
                )
        if isinstance(self.cv, LeaveOneOut):
            raise ValueError(
                "LeaveOneOut cross-validation cannot put every class in each "
                "test split; use a stratified splitter."
            )
        return check_cv(self.cv, y, classifier=True)

    def _mean_proba(self, X):
        """Mean calibrated probabilities; a row failed if it failed in any pair."""
        proba = np.zeros((_num_samples(X), len(self.classes_)))
        failed, reasons = None, None
        for pair in self.calibrated_classifiers_:
            pair_proba, pair_failed, pair_reasons = pair.proba_with_failures(X)
            proba += pair_proba
            if failed is None:
                failed, reasons = pair_failed, pair_reasons
            else:
                failed = failed | pair_failed
        return proba / len(self.calibrated_classifiers_), failed, reasons

    def _predict_with_failures(self, X, method):
        """See :func:`sklearn_llmconf.scoring.predict_with_failures`."""
        check_is_fitted(self)
        if method == "decision_function" and len(self.calibrated_classifiers_) == 1:
            z, failed, reasons = self.calibrated_classifiers_[0].calibrated_logits(X)
            return (z if z.ndim == 1 else log_softmax(z, axis=1)), failed, reasons
        proba, failed, reasons = self._mean_proba(X)
        if method == "predict_proba":
            return proba, failed, reasons
        log_p = np.log(np.clip(proba, np.finfo(float).tiny, None))
        if method == "decision_function" and log_p.shape[1] == 2:
            return log_p[:, 1] - log_p[:, 0], failed, reasons
        return log_p, failed, reasons

    def predict_proba(self, X):
        """Calibrated class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str
            Input accepted by the wrapped estimator.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``; the mean over
            the calibrated pairs when ``ensemble=True``.
        """
        return self._predict_with_failures(X, "predict_proba")[0]

    def decision_function(self, X):
        """Calibrated log-scores, consistent with :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str
            Input accepted by the wrapped estimator.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Binary: calibrated log-odds of ``classes_[1]`` (1-D).
            Multiclass: calibrated log-probabilities. With one calibrated pair
            these are exactly ``z / T + b`` (normalised by log-softmax for
            multiclass); with an ensemble they are the logarithm of the
            averaged probabilities.
        """
        return self._predict_with_failures(X, "decision_function")[0]

    def predict(self, X):
        """Class with the highest calibrated probability.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or list of str
            Input accepted by the wrapped estimator.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted labels.

        Raises
        ------
        ValueError
            If some rows have no score (NaN from the wrapped estimator, e.g. a
            failed row of an ``LLMClassifier(on_error="nan")``), as the
            wrapped ``LLMClassifier.predict`` does.
        """
        proba = self.predict_proba(X)
        failed = np.isnan(proba).any(axis=1)
        if failed.any():
            raise ValueError(
                f"{int(failed.sum())} rows have no score (NaN from the wrapped "
                "estimator, e.g. on_error='nan'); use predict_proba and handle "
                "the NaN rows, or set on_error='warn'."
            )
        return self.classes_[np.argmax(proba, axis=1)]

    def get_metadata_routing(self):
        """Get metadata routing of this object.

        Returns
        -------
        routing : MetadataRouter
            Routing of ``fit`` parameters to the estimator and the splitter.
        """
        return (
            MetadataRouter(owner=self)
            .add_self_request(self)
            .add(
                estimator=self._get_estimator(),
                method_mapping=MethodMapping().add(caller="fit", callee="fit"),
            )
            .add(
                splitter=self.cv,
                method_mapping=MethodMapping().add(caller="fit", callee="split"),
            )
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        estimator_tags = get_tags(self._get_estimator())
        # text input (LLMClassifier) and sparse input pass straight through
        tags.input_tags = estimator_tags.input_tags
        return tags
