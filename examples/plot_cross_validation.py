"""
=================================================
Cross-validated comparison of raw and calibrated
=================================================

Cross-validate an :class:`~sklearn_llmconf.LLMClassifier` and three
calibrated versions of it with :func:`~sklearn.model_selection.cross_validate`,
score them by accuracy, log loss, Brier score and ECE, and draw their
out-of-fold reliability diagrams with
:class:`~sklearn_llmconf.plotting.ReliabilityDisplay`.

The classifier is fitted once, on a pool of demonstration candidates that is
disjoint from the evaluated texts, and frozen: every candidate is then scored
on the same prompts, each text costs one model call (through the response
cache, shared with :ref:`sphx_glr_auto_examples_plot_quickstart.py`), and only
the calibrators are fitted on the training folds.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split

from sklearn_llmconf import LLMClassifier, ResponseCache, TemperatureScaler
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.metrics import neg_ece_scorer, neg_multiclass_brier_scorer
from sklearn_llmconf.plotting import ReliabilityDisplay

X, y = load_sms_spam(return_X_y=True)
X_pool, X_eval, y_pool, y_eval = train_test_split(
    X, y, test_size=200, stratify=y, random_state=0
)
cache = ResponseCache(os.environ.get(
    "SKLEARN_LLMCONF_EXAMPLES_CACHE",
    os.path.expanduser("~/.cache/sklearn_llmconf/examples.sqlite"),
))
clf = LLMClassifier(n_shots=4, calibration=None, cache=cache, random_state=0)
clf.fit(X_pool, y_pool)
frozen = FrozenEstimator(clf)

candidates = {
    "raw": frozen,
    "temperature": TemperatureScaler(frozen),
    "temperature + bias": TemperatureScaler(frozen, bias=True),
    "sklearn sigmoid": CalibratedClassifierCV(frozen, method="sigmoid"),
}

# %%
# Cross-validation
# ----------------
# Five stratified folds of 200 texts: each test fold holds 40 texts, about
# five of them spam, so every per-fold number is noisy (see the standard
# deviations); the ECE of 40 texts mostly measures that noise.
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
scoring = {
    "accuracy": "accuracy",
    "roc_auc": "roc_auc",
    "log_loss": "neg_log_loss",
    "brier": neg_multiclass_brier_scorer,
    "ece": neg_ece_scorer,
}
rows = {}
for name, estimator in candidates.items():
    scores = cross_validate(estimator, X_eval, y_eval, cv=cv, scoring=scoring)
    rows[name] = {}
    for metric in scoring:
        values = abs(scores[f"test_{metric}"])  # errors are negated scores
        rows[name][f"{metric} mean"] = values.mean()
        rows[name][f"{metric} std"] = values.std()
print(pd.DataFrame(rows).T.round(3).to_string())
print(f"\nscoring so far: {clf.usage_.as_dict()}")

# %%
# The ROC AUC is the same for all four: calibration does not change the
# ranking of the texts. Temperature alone cannot repair the raw model's
# preference for the word "spam": the best single temperature for log loss
# flattens the probabilities towards one half instead. Adding the bias
# (``TemperatureScaler(bias=True)``, which is Platt scaling for two classes,
# the same model as scikit-learn's ``method="sigmoid"``) repairs both, and the
# two agree within the fold-to-fold noise.

# %%
# Reliability diagrams
# --------------------
# Out-of-fold probabilities of all 200 texts (each calibrated by a calibrator
# that did not see its label), ten confidence bins. The folds are looped over
# by hand: :func:`~sklearn.model_selection.cross_val_predict` label-encodes
# ``y`` for ``method="predict_proba"``, and the frozen classifier's classes are
# the strings ``"ham"`` and ``"spam"``, so a calibrator fitted on the encoded
# labels would not match them.


def out_of_fold_proba(estimator):
    proba = np.empty((len(y_eval), len(clf.classes_)))
    for train, test in cv.split(X_eval, y_eval):
        fitted = clone(estimator).fit(X_eval[train], y_eval[train])
        proba[test] = fitted.predict_proba(X_eval[test])
    return proba


fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
for ax, name in zip(axes, ["raw", "temperature + bias"]):
    proba = out_of_fold_proba(candidates[name])
    ReliabilityDisplay.from_predictions(
        y_eval, proba, labels=clf.classes_, n_bins=10, name=name, ax=ax
    )
    ax.set_title(name)
fig.tight_layout()
plt.show()

# %%
# The raw model is far from the diagonal; the calibrated one is close to it
# where it has texts, but the histogram shows how few texts most bins hold: at
# n=200, read the diagram together with the bin counts. The user guide page
# :ref:`ece` quantifies this.
print(f"total: {clf.usage_.as_dict()}")
