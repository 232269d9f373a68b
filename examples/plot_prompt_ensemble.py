"""
=============================================
A soft-voting ensemble of prompts on SMS spam
=============================================

A tiny language model's answer depends a lot on how the question is worded.
Instead of picking one prompt, we let three prompts vote: scikit-learn's own
:class:`~sklearn.ensemble.VotingClassifier` with ``voting="soft"`` averages the
probabilities of three :class:`~sklearn_llmconf.LLMClassifier` instances that
differ only in their prompt.

Each member is fitted on the real labels and frozen with
:class:`~sklearn.frozen.FrozenEstimator`: ``VotingClassifier`` fits its members
on label-*encoded* targets (0, 1, ...), which an unfrozen ``LLMClassifier``
would show to the model as the words "0" and "1". Freezing also means fitting
the ensemble makes no model call. All members share one response cache, so no
prompt is ever evaluated twice.

The embedded model is SmolLM2-135M-Instruct (98 MB) running on the CPU; the
example scores 120 texts with each of three prompts, a few minutes on 2 cores.
"""

# %%
# Data: a de-duplicated SMS spam collection, split into a pool of labelled
# texts for demonstrations and a test set.
import os

from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

from sklearn_llmconf import LLMClassifier, ResponseCache
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.datasets import load_sms_spam

X, y = load_sms_spam(return_X_y=True)
X_pool, X_test, y_pool, y_test = train_test_split(
    X, y, test_size=120, stratify=y, random_state=0
)

# %%
# Three prompts for the same task. Each shows the same 4 demonstrations
# (``n_shots=4``, drawn once, stratified), rendered in its own format.
prompts = {
    "cloze": "Classify each text as one of: {labels}.\n\nText: {text}\nAnswer:",
    "question": "Is this SMS message spam or ham (a normal message)? "
    "Options: {labels}.\n\nSMS: {text}\nLabel:",
    "category": "Message: {text}\nCategory ({labels}):",
}

backend = LlamaCppBackend()

# One persistent response cache shared by the members (and by the other
# examples): a rerun of this example costs no model call.
cache_path = os.environ.get(
    "SKLEARN_LLMCONF_EXAMPLES_CACHE",
    os.path.expanduser("~/.cache/sklearn_llmconf/examples.sqlite"),
)
os.makedirs(os.path.dirname(cache_path), exist_ok=True)
cache = ResponseCache(cache_path)
members = [
    (
        name,
        FrozenEstimator(
            LLMClassifier(
                prompt, backend=backend, n_shots=4, calibration=None, cache=cache,
                random_state=0
            ).fit(X_pool, y_pool)
        ),
    )
    for name, prompt in prompts.items()
]

# %%
# Each prompt alone, then the soft vote. Scoring the ensemble reads every
# member's answers from the cache.
results = {}
for name, member in members:
    proba = member.predict_proba(X_test)
    results[name] = proba

ensemble = VotingClassifier(members, voting="soft").fit(X_pool, y_pool)
results["soft vote"] = ensemble.predict_proba(X_test)

y_true = (y_test == "spam").astype(int)
print(f"{'prompt':<10} {'AUC':>6} {'log loss':>9}")
for name, proba in results.items():
    print(f"{name:<10} {roc_auc_score(y_true, proba[:, 1]):>6.3f} "
          f"{log_loss(y_true, proba):>9.3f}")

calls = sum(m.estimator.usage_.calls for _, m in members)
hits = sum(m.estimator.usage_.cache_hits for _, m in members)
print(f"\nmodel calls: {calls}, cache hits: {hits}")

# %%
# Averaging does not calibrate: it pulls the members' probabilities toward
# each other, and a tiny model's are biased to begin with. Fit a calibrator on
# held-out labels
# (e.g. ``CalibratedClassifierCV(FrozenEstimator(ensemble), method="sigmoid")``)
# before acting on thresholds.
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(5, 3.5))
for name, proba in results.items():
    ax.hist(proba[:, 1], bins=20, range=(0, 1), histtype="step", label=name)
ax.set_xlabel("P(spam)")
ax.set_ylabel("texts")
ax.legend()
ax.set_title("Predicted spam probability per prompt")
fig.tight_layout()
plt.show()
