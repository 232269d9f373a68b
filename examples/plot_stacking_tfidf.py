"""
=====================================================
Stacking the LLM with TF-IDF + logistic regression
=====================================================

When labels are plentiful, a user would try TF-IDF features with a logistic
regression before anything else. The two models see the texts differently:
the language model reads them with what it learned in pre-training (plus a
few demonstrations), TF-IDF + LR learns word weights from the labelled texts
only. :class:`~sklearn.ensemble.StackingClassifier` combines them: a logistic
regression on the out-of-fold probabilities of both.

The language model is fitted once, on a pool of demonstration candidates that
is disjoint from the evaluated texts, and frozen
(:class:`~sklearn.frozen.FrozenEstimator`): the stack's internal
cross-validation then scores every text once, on the same prompts, and the
response cache (shared with :ref:`sphx_glr_auto_examples_plot_cross_validation.py`)
answers every later request. ``calibration=None`` keeps the model's raw
scores: the stack's final logistic regression calibrates them anyway.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.ensemble import StackingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    StratifiedKFold,
    cross_validate,
    train_test_split,
)
from sklearn.pipeline import make_pipeline

from sklearn_llmconf import LLMClassifier, ResponseCache, TemperatureScaler
from sklearn_llmconf.datasets import load_sms_spam

X, y = load_sms_spam(return_X_y=True)
X_pool, X_eval, y_pool, y_eval = train_test_split(
    X, y, test_size=200, stratify=y, random_state=0
)
cache = ResponseCache(os.environ.get(
    "SKLEARN_LLMCONF_EXAMPLES_CACHE",
    os.path.expanduser("~/.cache/sklearn_llmconf/examples.sqlite"),
))
llm = LLMClassifier(
    n_shots=4, calibration=None, cache=cache, random_state=0
).fit(X_pool, y_pool)
frozen = FrozenEstimator(llm)
tfidf = make_pipeline(
    TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=1000)
)
inner_cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=1)
candidates = {
    "LLM + temperature/bias": TemperatureScaler(frozen, bias=True),
    "TF-IDF + LR": tfidf,
    "stack (LLM, TF-IDF + LR)": StackingClassifier(
        [("llm", frozen), ("tfidf", tfidf)],
        final_estimator=LogisticRegression(),
        cv=inner_cv,
        stack_method="predict_proba",
    ),
}

# %%
# Cross-validated comparison
# --------------------------
# Five outer folds of the 200 evaluated texts: every model is trained on 160
# labelled texts (the calibrator, the TF-IDF model, the stack) and tested on
# the other 40. The LLM's demonstrations come from the separate pool.
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
scoring = {"accuracy": "accuracy", "roc_auc": "roc_auc",
           "log_loss": "neg_log_loss"}
rows = {}
for name, estimator in candidates.items():
    scores = cross_validate(estimator, X_eval, y_eval, cv=cv, scoring=scoring)
    rows[name] = {m: abs(scores[f"test_{m}"]).mean() for m in scoring}
table = pd.DataFrame(rows).T
print(table.round(3).to_string())
print(f"\nmodel calls: {llm.usage_.calls}, cache hits: {llm.usage_.cache_hits}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, metric in zip(axes, ["roc_auc", "log_loss"]):
    ax.barh(table.index, table[metric], color=["C0", "C1", "C2"])
    ax.set_xlabel(metric.replace("_", " ") + (" (lower is better)"
                                              if metric == "log_loss" else ""))
axes[1].set_yticks([])
fig.tight_layout()
plt.show()

# %%
# How the two base models disagree
# --------------------------------
# Out-of-fold probability of spam from each base model, one point per text.
# Where one model is unsure the other often is not: that is what the stack's
# final logistic regression learns to weigh.
# (The folds are looped over by hand: ``cross_val_predict`` would label-encode
# ``y``, which the frozen classifier's string classes cannot follow.)
p_llm = np.empty(len(y_eval))
p_tfidf = np.empty(len(y_eval))
for train, test in cv.split(X_eval, y_eval):
    scaler = TemperatureScaler(frozen, bias=True).fit(X_eval[train], y_eval[train])
    p_llm[test] = scaler.predict_proba(X_eval[test])[:, 1]
    model = tfidf.fit(X_eval[train], y_eval[train])
    p_tfidf[test] = model.predict_proba(X_eval[test])[:, 1]
encoded = (y_eval == "spam").astype(int)
fig, ax = plt.subplots(figsize=(5, 4.5))
for label, marker in ((0, "o"), (1, "^")):
    sel = encoded == label
    ax.scatter(p_llm[sel], p_tfidf[sel], marker=marker,
               alpha=0.6, label=["ham", "spam"][label])
ax.set_xlabel("LLM (calibrated): P(spam)")
ax.set_ylabel("TF-IDF + LR: P(spam)")
ax.legend()
fig.tight_layout()
plt.show()
