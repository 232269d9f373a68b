"""
===========================================
Quick start: calibrated spam probabilities
===========================================

Fit an :class:`~sklearn_llmconf.LLMClassifier` on SMS messages, read its
probabilities, calibrate them with :class:`~sklearn_llmconf.TemperatureScaler`
on held-out labels, and compare both with
:func:`~sklearn_llmconf.metrics.calibration_report`.

The model is the embedded SmolLM2-135M-Instruct (no API key, no network).
"""

# %%
# Data: three disjoint parts
# --------------------------
# The bundled SMS spam data are de-duplicated, so no text can appear in two
# parts. The *pool* supplies the few-shot demonstrations, the *calibration*
# part fits the temperature, the *test* part measures everything.
import os
import time

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split

from sklearn_llmconf import LLMClassifier, ResponseCache, TemperatureScaler
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.metrics import calibration_report

X, y = load_sms_spam(return_X_y=True)
X_pool, X_eval, y_pool, y_eval = train_test_split(
    X, y, test_size=200, stratify=y, random_state=0
)
X_cal, X_test, y_cal, y_test = train_test_split(
    X_eval, y_eval, test_size=100, stratify=y_eval, random_state=0
)
print(f"{len(X_pool)} pool, {len(X_cal)} calibration, {len(X_test)} test texts; "
      f"{np.mean(y_test == 'spam'):.0%} spam in test")

# %%
# A persistent response cache
# ---------------------------
# Every scored prompt is stored in one SQLite file, keyed by the model and the
# rendered prompt: the calibrator below, and the other examples, get these
# scores back without calling the model again.
cache_path = os.environ.get(
    "SKLEARN_LLMCONF_EXAMPLES_CACHE",
    os.path.expanduser("~/.cache/sklearn_llmconf/examples.sqlite"),
)
os.makedirs(os.path.dirname(cache_path), exist_ok=True)
cache = ResponseCache(cache_path)

# %%
# Fit and predict
# ---------------
# ``fit`` makes no model call: it records the classes and draws four
# demonstrations (two per class, ``demo_selection="stratified"``) from the pool.
# Each label's probability is the model's probability of writing the label
# word after the prompt.
# calibration=None keeps the raw scores; by default fit would also calibrate
# them on its own labelled texts (see the user guide's calibration page).
clf = LLMClassifier(n_shots=4, calibration=None, cache=cache, random_state=0)
clf.fit(X_pool, y_pool)
print(clf.prompt_template_.render(
    {"text": X_test[0]}, clf.label_words_,
    [({"text": d[0]}, w) for d, w in clf.demos_],
).text)

# %%
start = time.perf_counter()
proba_raw = clf.predict_proba(X_test)
seconds = time.perf_counter() - start
print(f"classes: {clf.classes_}")
print(np.round(proba_raw[:5], 3))
print(f"{seconds:.1f} s; usage: {clf.usage_.as_dict()}")

# %%
# Calibrate on held-out labels
# ----------------------------
# :class:`~sklearn.frozen.FrozenEstimator` keeps the fitted classifier as it
# is; the scaler fits a temperature and a bias (``bias=True``: Platt scaling of
# the log-odds for two classes) on the calibration part only.
calibrated = TemperatureScaler(FrozenEstimator(clf), bias=True)
calibrated.fit(X_cal, y_cal)
print(f"temperature {calibrated.temperature_:.2f}, "
      f"bias {np.ravel(calibrated.calibrated_classifiers_[0].bias)}")
proba_cal = calibrated.predict_proba(X_test)

# %%
# Compare on the test part
# ------------------------
# ``ece_debiased`` and its bootstrap interval are the honest way to read the
# calibration error of 100 texts: the plug-in ECE of even a perfectly
# calibrated predictor is several points above zero at this size.
import pandas as pd  # noqa: E402

report = pd.DataFrame(
    {
        "raw": calibration_report(y_test, proba_raw, labels=clf.classes_),
        "calibrated": calibration_report(y_test, proba_cal, labels=clf.classes_),
    }
)
print(report.round(3))
print(f"usage since fit: {clf.usage_.as_dict()}")

# %%
# Calibration rescales the scores; it cannot make them discriminate better.
# The ROC AUC measures the ranking alone (0.5 is chance), and is the same for
# both up to ties:
from sklearn.metrics import roc_auc_score  # noqa: E402

for name, proba in [("raw", proba_raw), ("calibrated", proba_cal)]:
    print(f"{name:>10} ROC AUC {roc_auc_score(y_test == 'spam', proba[:, 1]):.3f}")

# %%
# The raw model calls most messages spam, so its accuracy is below the share
# of ham; the bias fitted on 100 labelled texts moves the decision threshold
# to where the errors are fewest, and the temperature fixes the scale. With
# only 100 test texts, the interval on the debiased ECE is wide: see
# :ref:`ece` in the user guide.
