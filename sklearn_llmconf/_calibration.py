"""Temperature scaling (optionally with a per-class bias) as a meta-estimator."""

import warnings
from inspect import signature
from numbers import Integral

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit, log_softmax, logsumexp, softmax
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

from ._sklearn_compat import (
    HasMethods,
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

__all__ = ["TemperatureScaler"]

# log(0) from predict_proba is clipped here; same order as sklearn's eps (1e-12).
_PROBA_EPS = 1e-12
# Bounds on log T: T in [4.5e-5, 2.2e4] covers every useful scale while keeping
# the optimiser away from overflow on separable data.
_LOG_T_BOUNDS = (-10.0, 10.0)


def _response_method_name(estimator):
    return _check_response_method(
        estimator, ["decision_function", "predict_proba"]
    ).__name__


def _to_logits(raw, method_name, n_classes):
    """Turn ``decision_function`` / ``predict_proba`` output into logits.

    Binary: 1-D log-odds of the second class. Multiclass: ``(n, k)`` log-scores.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if method_name == "predict_proba":
        if raw.ndim != 2 or raw.shape[1] != n_classes:
            raise ValueError(
                f"predict_proba returned shape {raw.shape}; expected "
                f"(n_samples, {n_classes})."
            )
        logits = np.log(np.clip(raw, _PROBA_EPS, 1.0))
        if n_classes == 2:
            logits = logits[:, 1] - logits[:, 0]
    elif n_classes == 2:
        if raw.ndim == 2 and raw.shape[1] == 1:
            logits = raw.ravel()
        elif raw.ndim == 2 and raw.shape[1] == 2:
            # per-class scores: the log-odds is their difference
            logits = raw[:, 1] - raw[:, 0]
        elif raw.ndim == 1:
            logits = raw
        else:
            raise ValueError(
                f"decision_function returned shape {raw.shape} for a binary "
                "problem; expected (n_samples,) log-odds of classes_[1]."
            )
    else:
        if raw.ndim != 2 or raw.shape[1] != n_classes:
            raise ValueError(
                f"decision_function returned shape {raw.shape}; expected "
                f"(n_samples, {n_classes}) per-class log-scores."
            )
        logits = raw
    if not np.all(np.isfinite(logits)):
        raise ValueError(
            "The wrapped estimator returned non-finite scores (NaN or inf); "
            "temperature scaling needs finite logits. Handle missing label "
            "scores in the base classifier first."
        )
    return logits


def _apply(logits, temperature, bias):
    """Calibrated logits: ``logits / T + b``."""
    return logits / temperature + bias


def _fit_temperature(logits, y_idx, sample_weight, fit_bias):
    """Minimise the (weighted) log loss over log T and, optionally, the bias.

    Returns ``(temperature, bias)``; ``bias`` is a float for binary 1-D logits
    and a zero-sum vector of length k for multiclass (softmax is unchanged by a
    constant shift, so the sum is pinned at 0 for identifiability).
    """
    n = logits.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    w = w / w.sum()
    binary = logits.ndim == 1

    if binary:
        y = (y_idx == 1).astype(float)

        def loss_grad(theta):
            inv_t = np.exp(-theta[0])
            b = theta[1] if fit_bias else 0.0
            z = logits * inv_t + b
            # -log p(y|z) = log(1 + e^z) - y z
            loss = -np.dot(w, y * log_expit(z) + (1 - y) * log_expit(-z))
            r = w * (expit(z) - y)
            grad = [-np.dot(r, logits) * inv_t]
            if fit_bias:
                grad.append(r.sum())
            return loss, np.asarray(grad)

        theta0 = np.zeros(2 if fit_bias else 1)
    else:
        k = logits.shape[1]
        # shift rows for numerical range; softmax(L/T + b) is unchanged
        logits = logits - logits.max(axis=1, keepdims=True)
        onehot = np.zeros_like(logits)
        onehot[np.arange(n), y_idx] = 1.0

        def expand(free):
            # k-1 free parameters, last one fixed so that the bias sums to 0
            return np.append(free, -free.sum())

        def loss_grad(theta):
            inv_t = np.exp(-theta[0])
            b = expand(theta[1:]) if fit_bias else 0.0
            z = logits * inv_t + b
            lse = logsumexp(z, axis=1)
            loss = np.dot(w, lse - z[np.arange(n), y_idx])
            r = (np.exp(z - lse[:, None]) - onehot) * w[:, None]
            grad = [-np.sum(r * logits) * inv_t]
            if fit_bias:
                g_b = r.sum(axis=0)
                grad.extend(g_b[:-1] - g_b[-1])
            return loss, np.asarray(grad)

        theta0 = np.zeros(k if fit_bias else 1)

    bounds = [_LOG_T_BOUNDS] + [(None, None)] * (len(theta0) - 1)
    res = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
    if not res.success:  # pragma: no cover - L-BFGS-B rarely fails here
        warnings.warn(
            f"Temperature scaling did not converge: {res.message}",
            RuntimeWarning,
            stacklevel=3,
        )
    temperature = float(np.exp(res.x[0]))
    if binary:
        bias = float(res.x[1]) if fit_bias else 0.0
    else:
        bias = expand(res.x[1:]) if fit_bias else np.zeros(logits.shape[1])
    return temperature, bias


class _TemperatureCalibratedClassifier:
    """A fitted classifier and its fitted temperature / bias."""

    def __init__(self, estimator, temperature, bias, *, method_name, n_classes):
        self.estimator = estimator
        self.temperature = temperature
        self.bias = bias
        self.method_name = method_name
        self.n_classes = n_classes

    def calibrated_logits(self, X):
        raw = getattr(self.estimator, self.method_name)(X)
        logits = _to_logits(raw, self.method_name, self.n_classes)
        return _apply(logits, self.temperature, self.bias)

    def predict_proba(self, X):
        z = self.calibrated_logits(X)
        if z.ndim == 1:
            p1 = expit(z)
            return np.column_stack([1.0 - p1, p1])
        return softmax(z, axis=1)


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


def _fit_pair(estimator, X, y, train, test, sample_weight, fit_params, fit_bias):
    """Fit ``estimator`` on ``train`` and its temperature on ``test``."""
    fit_params_train = _check_method_params(X, params=fit_params, indices=train)
    estimator.fit(
        _safe_indexing(X, train), _safe_indexing(y, train), **fit_params_train
    )
    classes = _estimator_classes(estimator, y)
    method_name = _response_method_name(estimator)
    X_test, y_test = _safe_indexing(X, test), _safe_indexing(y, test)
    raw = getattr(estimator, method_name)(X_test)
    logits = _to_logits(raw, method_name, len(classes))
    sw = None if sample_weight is None else _safe_indexing(sample_weight, test)
    temperature, bias = _fit_temperature(logits, _encode(y_test, classes), sw, fit_bias)
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
        "cv": ["cv_object"],
        "ensemble": ["boolean", StrOptions({"auto"})],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self, estimator=None, *, bias=False, cv=None, ensemble="auto", n_jobs=None
    ):
        self.estimator = estimator
        self.bias = bias
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
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, y)
        estimator = self._get_estimator()
        frozen = isinstance(estimator, FrozenEstimator)
        ensemble = (not frozen) if self.ensemble == "auto" else self.ensemble

        if _routing_enabled():
            routed_params = process_routing(
                self, "fit", sample_weight=sample_weight, **fit_params
            )
        else:
            supports_sw = "sample_weight" in signature(estimator.fit).parameters
            if sample_weight is not None and not supports_sw and not frozen:
                warnings.warn(
                    f"{type(estimator).__name__} does not accept sample_weight; "
                    "the weights are used for the calibration only.",
                    stacklevel=3,
                )
            fit_kwargs = dict(fit_params)
            if sample_weight is not None and supports_sw:
                fit_kwargs["sample_weight"] = sample_weight
            routed_params = _manual_routing(
                {"splitter": {}, "estimator": {"fit": fit_kwargs}}
            )
        fit_kw = routed_params.estimator.fit

        if frozen and not ensemble:
            # A frozen model is not refitted, so out-of-fold predictions equal
            # in-sample ones: skip the splitting (and its per-class minimum).
            this_estimator = clone(estimator).fit(X, y, **fit_kw)
            classes = _estimator_classes(this_estimator, y)
            method_name = _response_method_name(this_estimator)
            raw = getattr(this_estimator, method_name)(X)
            pairs = [
                self._calibrate(
                    this_estimator, raw, y, classes, method_name, sample_weight
                )
            ]
        else:
            cv = self._check_cv(y)
            if ensemble:
                results = Parallel(n_jobs=self.n_jobs)(
                    delayed(_fit_pair)(
                        clone(estimator),
                        X,
                        y,
                        train,
                        test,
                        sample_weight,
                        fit_kw,
                        self.bias,
                    )
                    for train, test in cv.split(X, y, **routed_params.splitter.split)
                )
                pairs = [pair for pair, _ in results]
                classes = results[0][1]
                for _, fold_classes in results[1:]:
                    if not np.array_equal(fold_classes, classes):
                        raise ValueError(
                            "The estimators fitted on different folds saw "
                            f"different classes ({classes.tolist()} vs "
                            f"{fold_classes.tolist()}); use a stratified cv."
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
                pairs = [
                    self._calibrate(
                        this_estimator, raw, y, classes, method_name, sample_weight
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

    def _calibrate(self, estimator, raw, y, classes, method_name, sample_weight):
        logits = _to_logits(raw, method_name, len(classes))
        temperature, bias = _fit_temperature(
            logits, _encode(y, classes), sample_weight, self.bias
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
        proba = np.zeros((_num_samples(X), len(self.classes_)))
        for pair in self.calibrated_classifiers_:
            proba += pair.predict_proba(X)
        return proba / len(self.calibrated_classifiers_)

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
        check_is_fitted(self)
        return self._mean_proba(X)

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
        check_is_fitted(self)
        if len(self.calibrated_classifiers_) == 1:
            z = self.calibrated_classifiers_[0].calibrated_logits(X)
            return z if z.ndim == 1 else log_softmax(z, axis=1)
        log_p = np.log(np.clip(self._mean_proba(X), np.finfo(float).tiny, None))
        if log_p.shape[1] == 2:
            return log_p[:, 1] - log_p[:, 0]
        return log_p

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
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self._mean_proba(X), axis=1)]

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
