"""LogisticRegressionCV across the supported scikit-learn releases."""

from __future__ import annotations

import inspect

from sklearn.linear_model import LogisticRegressionCV

__all__ = ["logistic_cv"]


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
