"""
==========================================================
Routing at a certified precision: accept, review, escalate
==========================================================

Each text goes to one of three tiers: its label is accepted unchecked, a person
reviews it, or it is escalated. :class:`~sklearn_llmconf.routing.ConfidenceRouter`
chooses the confidence threshold of each tier on labelled texts so that, with
probability at least ``1 - delta``, the accepted predictions reach the tier's
target precision on new texts (learn-then-test, Angelopoulos et al. 2021). The
calibrated model, the thresholds and the final check each use their own
texts, because a threshold chosen and evaluated on the same texts always looks
better than it is. See :ref:`decisions` for what each guarantee means.
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split

from sklearn_llmconf import LLMClassifier, ResponseCache, TemperatureScaler
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.plotting import RoutingDisplay
from sklearn_llmconf.routing import ConfidenceRouter

X, y = load_sms_spam(return_X_y=True)
X_pool, X_rest, y_pool, y_rest = train_test_split(
    X, y, test_size=600, stratify=y, random_state=0
)
X_scale, X_rest, y_scale, y_rest = train_test_split(
    X_rest, y_rest, train_size=100, stratify=y_rest, random_state=0
)
X_cal, X_test, y_cal, y_test = train_test_split(
    X_rest, y_rest, train_size=300, stratify=y_rest, random_state=0
)
cache = ResponseCache(os.environ.get(
    "SKLEARN_LLMCONF_EXAMPLES_CACHE",
    os.path.expanduser("~/.cache/sklearn_llmconf/examples.sqlite"),
))
clf = LLMClassifier(n_shots=4, calibration=None, cache=cache, random_state=0)
clf.fit(X_pool, y_pool)
calibrated = TemperatureScaler(FrozenEstimator(clf), bias=True).fit(X_scale, y_scale)

# %%
# Certify the thresholds
# ----------------------
# Two tiers: accept at a precision of 99 %, review at 90 %; the rest is
# escalated. ``delta=0.05`` is split over the two tiers. When a target cannot
# be certified with the labels given, the tier accepts nothing and a warning
# says how many labels it would take.
router = ConfidenceRouter(
    FrozenEstimator(calibrated), tiers=[("accept", 0.99), ("review", 0.90)],
    delta=0.05,
)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", UserWarning)
    router.fit(X_cal, y_cal)
for w in caught:
    print(w.message)
for name, target, thr, bound, n in zip(
    router.tier_names_, router.targets_, router.thresholds_,
    router.precision_lower_bound_, router.n_accepted_,
):
    if np.isfinite(thr):
        print(f"{name}: confidence >= {thr:.4f}; {n} of {router.n_calibration_} "
              f"calibration texts, precision >= {bound:.3f} certified "
              f"(target {target})")
    else:
        print(f"{name}: target {target} not certified")

# %%
# Check on the test split
# -----------------------
# The share of test texts in each tier and the precision of their labels,
# with a one-sided 95 % Clopper-Pearson lower bound. "at or above" is the
# quantity a tier's threshold certifies: that tier and the more trusted ones.
report = router.routing_report(X_test, y_test)
print(f"{'tier':<9} {'share':>6} {'precision':>10} {'at or above [lower]':>22}")
for name, r in report.items():
    print(f"{name:<9} {r['share']:>6.2f} {r['precision']:>10.3f} "
          f"{r['cumulative_precision']:>14.3f} [{r['cumulative_precision_lower']:.3f}]")

# %%
# The plug-in threshold, for comparison
# -------------------------------------
# "The smallest threshold whose calibration predictions meet the target" has no
# guarantee: in the simulation of :ref:`decisions` its true precision fell
# below the target in 41 % (95 % target, 300 labels) and 20 % (99 %, 3,000
# labels) of calibration draws.
plugin = ConfidenceRouter(FrozenEstimator(calibrated), method="plugin",
                          tiers=[("accept", 0.99), ("review", 0.90)])
plugin.fit(X_cal, y_cal)
plugin_report = plugin.routing_report(X_test, y_test)
for name, thr in zip(plugin.tier_names_, plugin.thresholds_):
    r = plugin_report[name]
    print(f"plug-in {name}: threshold {thr:.4f}, test share at or above "
          f"{r['cumulative_share']:.2f}, precision {r['cumulative_precision']:.3f}")

# %%
# Precision and share accepted against the threshold, on the test split,
# with the certified thresholds marked.
disp = RoutingDisplay.from_estimator(router, X_test, y_test)
plt.show()

# %%
# Prediction sets instead of one label
# ------------------------------------
# When a person picks among a few labels, conformal prediction sets (MAPIE,
# ``pip install "sklearn-llmconf[mapie]"``) contain the true label for a
# share ``1 - alpha`` of texts. MAPIE needs 2-D input: one text column.
try:
    from mapie.classification import SplitConformalClassifier
except ImportError:
    print("MAPIE is not installed; skipping prediction sets.")
else:
    mapie = SplitConformalClassifier(FrozenEstimator(calibrated),
                                     confidence_level=0.9, prefit=True)
    mapie.conformalize(np.asarray(X_cal, dtype=object)[:, None], y_cal)
    _, sets = mapie.predict_set(np.asarray(X_test, dtype=object)[:, None])
    covered = sets[np.arange(len(y_test)),
                   np.searchsorted(calibrated.classes_, y_test), 0]
    sizes = sets[:, :, 0].sum(axis=1)
    print(f"coverage {covered.mean():.3f} at 0.9; set sizes: "
          + ", ".join(f"{k} labels: {np.mean(sizes == k):.2f}"
                      for k in range(len(calibrated.classes_) + 1)))
print(f"scoring: {clf.usage_.as_dict()}")
