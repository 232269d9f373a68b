"""How often does a prompt-injection payload flip spam to ham?

The attacker controls the text to classify. For each attack kind of the fixed
set ``tests/data/attacks.json`` (30 spam texts of the bundled SMS data, each
with the kind's payload appended), the default few-shot classifier on the
embedded model (8 stratified demonstrations, ``TemperatureScaler(bias=True)``
fitted on a clean set) predicts the attacked texts. The *flip rate* is the
share of the texts it classified correctly (spam) without the payload that it
classifies as ham with it.

Three renderings are measured side by side: ``verbatim`` (``DEFAULT_TEMPLATE``,
fields inserted as they are: the rendering before ``escape_fields``),
``default`` (``PromptTemplate(DEFAULT_TEMPLATE)``: every field on one line)
and ``restated`` (escaped, and the labels restated after the text:
``"...Text: {text}\nChoose one of: {labels}.\nAnswer:"``). The clean set's
AUC, and its accuracy and log loss after 5-fold cross-validated calibration,
show what a rendering costs when nobody attacks. Responses are cached
(benchmarks/_cache/injection.sqlite), so a rerun costs no model call.

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
# Fields verbatim: the rendering before escape_fields existed.
RESTATED_TEMPLATE = (
    "Classify each text as one of: {labels}.\n\n"
    "Text: {text}\nChoose one of: {labels}.\nAnswer:"
)
RENDERINGS = {
    "verbatim": PromptTemplate(DEFAULT_TEMPLATE, escape_fields=False),
    "default": PromptTemplate(DEFAULT_TEMPLATE),
    "restated": PromptTemplate(RESTATED_TEMPLATE),
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
                        cache=cache, random_state=0).fit(X_pool, y_pool)
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
    base = [b["text"] for b in attacks["base"]][:n_attack]
    correct = cal.predict(base) == "spam"
    flips = {}
    for kind in kinds:
        attacked = cal.predict(attacks["attacks"][kind]["texts"][:n_attack])
        flips[kind] = int(((attacked == "ham") & correct).sum())
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
    print(f"SMS spam, SmolLM2-135M-Instruct Q4_1, 8 stratified demonstrations. "
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
    print(f"\n{'flip rate (of kept)':24s}" + "".join(
        f"{r:>16s}" for r in results))
    for kind in kinds:
        print(f"{kind:24s}" + "".join(
            f"{res[2][kind]:>7d}/{res[1]:<3d}{res[2][kind] / max(res[1], 1):5.0%} "
            for res in results.values()))


if __name__ == "__main__":
    main()
