"""How often does a prompt-injection payload flip spam to ham?

The attacker controls the text to classify. For each attack kind of the fixed
set ``tests/data/attacks.json`` (30 spam texts of the bundled SMS data, each
with the kind's payload appended), the few-shot classifier on the embedded
model (the default 16 stratified demonstrations, raw scores, ``on_error="nan"``, then
``TemperatureScaler(bias=True)`` fitted on a clean set) classifies the attacked
texts. Of the spam texts it classifies correctly without the payload, a text
is *flipped* when the calibrated probability of ham exceeds 0.5 with it, and
*rejected* when its row failed (NaN: the classifier did not send it to the
model), which routes it to review, never to ham.

Three renderings are measured side by side:

- ``verbatim``: fields inserted as they are, no check
  (``PromptTemplate(DEFAULT_TEMPLATE, escape_fields=False,
  reject_fake_answers=False)``): the package before issue #11;
- ``escaped``: every field on one line (``escape_fields=True``), no check;
- ``default``: ``PromptTemplate(DEFAULT_TEMPLATE)``: escaped, and a text that
  writes the prompt's answer line with a label (``"Answer: ham"``) is rejected
  (``reject_fake_answers=True``).

The clean set's AUC, and its accuracy and log loss after 5-fold
cross-validated calibration, show what a rendering costs when nobody attacks.
Responses are cached (benchmarks/_cache/injection.sqlite), so a rerun costs no
model call.

Run::

    python benchmarks/bench_injection.py [--n-clean 200] [--n-attack 30]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from sklearn_llmconf import LLMClassifier, ResponseCache, TemperatureScaler
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.prompts import DEFAULT_TEMPLATE, PromptTemplate

ROOT = Path(__file__).resolve().parent
ATTACKS = ROOT.parent / "tests" / "data" / "attacks.json"
RENDERINGS = {
    "verbatim": PromptTemplate(DEFAULT_TEMPLATE, escape_fields=False,
                               reject_fake_answers=False),
    "escaped": PromptTemplate(DEFAULT_TEMPLATE, reject_fake_answers=False),
    "default": PromptTemplate(DEFAULT_TEMPLATE),
}


def splits(attacks, n_clean, n_clean_spam):
    """Demonstration pool and a clean evaluation set, disjoint from the attacks."""
    X, y = load_sms_spam(return_X_y=True)
    keep = np.ones(len(X), dtype=bool)
    keep[[b["index"] for b in attacks["base"]]] = False
    X, y = X[keep], y[keep]
    # 300 texts held out of the pool (fixed, so demonstrations stay the same
    # whatever the clean set's size); the clean set is drawn from them.
    X_pool, X_eval, y_pool, y_eval = train_test_split(
        X, y, test_size=300, stratify=y, random_state=0
    )
    clean = np.concatenate([np.flatnonzero(y_eval == "spam")[:n_clean_spam],
                            np.flatnonzero(y_eval == "ham")[: n_clean - n_clean_spam]])
    return X_pool, y_pool, X_eval[clean], y_eval[clean]


def measure(template, data, attacks, kinds, n_attack, cache, n_threads):
    """Clean quality and per-kind flip counts of one rendering."""
    X_pool, y_pool, X_clean, y_clean = data
    clf = LLMClassifier(template, backend=LlamaCppBackend(n_threads=n_threads),
                        cache=cache, random_state=0, calibration=None,
                        on_error="nan").fit(X_pool, y_pool)
    raw = clf.predict_proba(X_clean)
    # Clean quality held out: calibrate on 4/5, evaluate on 1/5 (scores cached).
    proba = np.empty_like(raw)
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(
            X_clean, y_clean):
        cal = TemperatureScaler(FrozenEstimator(clf), bias=True)
        proba[test] = cal.fit(X_clean[train], y_clean[train]).predict_proba(
            X_clean[test])
    clean = {
        "AUC (raw scores)": roc_auc_score(y_clean == "spam", raw[:, 1]),
        "accuracy, calibrated": accuracy_score(
            y_clean, clf.classes_[proba.argmax(1)]),
        "log loss, calibrated": log_loss(y_clean, proba, labels=clf.classes_),
    }
    # The attacked classifier: calibrated on the whole clean set.
    cal = TemperatureScaler(FrozenEstimator(clf), bias=True).fit(X_clean, y_clean)
    ham = list(cal.classes_).index("ham")
    base = [b["text"] for b in attacks["base"]][:n_attack]
    correct = cal.predict_proba(base)[:, ham] < 0.5
    flips = {}
    for kind in kinds:
        p_ham = cal.predict_proba(attacks["attacks"][kind]["texts"][:n_attack])[:, ham]
        flips[kind] = (int((correct & (p_ham > 0.5)).sum()),
                       int((correct & np.isnan(p_ham)).sum()))
    return clean, int(correct.sum()), flips, clf.usage_


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clean", type=int, default=200)
    parser.add_argument("--n-clean-spam", type=int, default=50)
    parser.add_argument("--n-attack", type=int, default=30,
                        help="attacked texts per kind (the first of the 30)")
    parser.add_argument("--kinds", nargs="*", help="attack kinds (default: all)")
    parser.add_argument("--renderings", nargs="*", default=list(RENDERINGS))
    parser.add_argument("--n-threads", type=int, default=1)
    args = parser.parse_args()

    attacks = json.loads(ATTACKS.read_text(encoding="utf-8"))
    kinds = args.kinds or list(attacks["attacks"])
    data = splits(attacks, args.n_clean, args.n_clean_spam)
    cache = ResponseCache(ROOT / "_cache" / "injection.sqlite")
    print(f"SMS spam, SmolLM2-135M-Instruct Q4_1, 16 stratified demonstrations. "
          f"Clean set: {args.n_clean} texts ({args.n_clean_spam} spam); "
          "TemperatureScaler(bias=True) fitted on it (5-fold for the clean "
          f"quality). Attacks: the first {args.n_attack} spam texts of "
          "tests/data/attacks.json per kind.\n")
    results = {}
    for name in args.renderings:
        start = time.perf_counter()
        results[name] = measure(RENDERINGS[name], data, attacks, kinds,
                                args.n_attack, cache, args.n_threads)
        usage = results[name][3]
        print(f"[{name}: {time.perf_counter() - start:.0f} s, {usage.calls} "
              f"model calls, {usage.cache_hits} cache hits]", flush=True)

    print(f"\n{'clean quality':24s}" + "".join(f"{r:>16s}" for r in results))
    for metric in results[args.renderings[0]][0]:
        print(f"{metric:24s}" + "".join(
            f"{res[0][metric]:16.3f}" for res in results.values()))
    print(f"{'attacked spam kept':24s}" + "".join(
        f"{res[1]:>13d}/{args.n_attack:<2d}" for res in results.values()))
    for column, title in ((0, "flipped to ham (of kept)"), (1, "rejected (of kept)")):
        print(f"\n{title:24s}" + "".join(f"{r:>16s}" for r in results))
        for kind in kinds:
            cells = []
            for res in results.values():
                n, kept = res[2][kind][column], res[1]
                cells.append(f"{n:>7d}/{kept:<3d}{n / max(kept, 1):5.0%} ")
            print(f"{kind:24s}" + "".join(cells))


if __name__ == "__main__":
    main()
