"""LogisticRegressionCV across the supported scikit-learn releases."""

from __future__ import annotations

import inspect

import sklearn
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import log_loss, make_scorer
from sklearn.utils.fixes import parse_version

__all__ = ["log_loss_scoring", "logistic_cv"]

_SKLEARN_1_9 = parse_version(sklearn.__version__).release >= (1, 9)


def logistic_cv(**params):
    """``LogisticRegressionCV(**params)``, L2, without transition warnings.

    scikit-learn 1.9 warns unless ``l1_ratios`` and ``use_legacy_attributes``
    are given; 1.8 has neither transition.

    Parameters
    ----------
    **params : dict
        Passed to :class:`~sklearn.linear_model.LogisticRegressionCV`.

    Returns
    -------
    model : LogisticRegressionCV
    """
    if "use_legacy_attributes" in inspect.signature(LogisticRegressionCV).parameters:
        params = {"l1_ratios": (0.0,), "use_legacy_attributes": False, **params}
    return LogisticRegressionCV(**params)


def log_loss_scoring(labels):
    """``scoring`` for a LogisticRegressionCV whose folds may lack a class.

    scikit-learn 1.9's ``"neg_log_loss"`` scores a validation fold that lacks
    a class of the training labels; 1.8's raises ("y_true and y_prob contain
    different number of classes"): there the classes are given explicitly.

    Parameters
    ----------
    labels : array-like of shape (n_classes,)
        The classes of the whole training set.

    Returns
    -------
    scoring : str or callable
    """
    if _SKLEARN_1_9:
        return "neg_log_loss"
    return make_scorer(log_loss, greater_is_better=False,
                       response_method="predict_proba", labels=list(labels))
