"""Which demonstrations make the embedded model a good SMS spam classifier?

Compares zero-shot prompts, letter codes, random / stratified demonstration sets
shared by every text, and per-text nearest-neighbour demonstrations (TF-IDF
cosine), at several numbers of shots. Each setting scores a calibration split
and a disjoint test split once (responses are cached in benchmarks/_cache, so a
rerun costs no model call); ``TemperatureScaler(bias=True)`` is fitted on the
calibration split and evaluated on the test split.

Run::

    python benchmarks/bench_demos.py [--n-test 300] [--n-calib 200]

Columns: AUC of the raw scores; accuracy and log loss raw and calibrated; texts
per second of ``predict_proba`` (uncached, on this machine, other processes
included); prompt tokens the model evaluated per text (prefix reuse included).
"""

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

from sklearn_llmconf import LLMClassifier, PromptTemplate, TemperatureScaler
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.prompts import DEFAULT_TEMPLATE

LETTERS = PromptTemplate(DEFAULT_TEMPLATE, verbalizer="letters")
SETTINGS = [
    ("zero-shot", dict(n_shots=0)),
    ("zero-shot, letters A/B", dict(n_shots=0, prompt=LETTERS)),
    ("4 random", dict(n_shots=4, demo_selection="random")),
    ("4 stratified", dict(n_shots=4)),
    ("4 stratified, letters", dict(n_shots=4, prompt=LETTERS)),
    ("8 stratified", dict(n_shots=8)),
    ("16 stratified", dict(n_shots=16)),
    ("4 similar", dict(n_shots=4, demo_selection="similar")),
    ("4 similar, stratified", dict(n_shots=4, demo_selection="similar_stratified")),
    ("8 similar", dict(n_shots=8, demo_selection="similar")),
    ("8 similar, stratified", dict(n_shots=8, demo_selection="similar_stratified")),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--n-calib", type=int, default=200)
    parser.add_argument("--only", nargs="*", help="setting names to run")
    parser.add_argument("--n-threads", type=int, default=None,
                        help="llama.cpp threads (default: all cores)")
    args = parser.parse_args()

    X, y = load_sms_spam(return_X_y=True)
    X_pool, X_eval, y_pool, y_eval = train_test_split(
        X, y, test_size=args.n_test + args.n_calib, stratify=y, random_state=0
    )
    X_cal, X_test, y_cal, y_test = train_test_split(
        X_eval, y_eval, test_size=args.n_test, stratify=y_eval, random_state=0
    )
    cache = Path(__file__).parent / "_cache" / "responses.sqlite"
    cache.parent.mkdir(exist_ok=True)
    print(f"SMS spam: {len(X_pool)} demonstration candidates, {len(X_cal)} "
          f"calibration, {len(X_test)} test texts ({(y_test == 'spam').mean():.1%} "
          "spam); SmolLM2-135M-Instruct Q4_1.\n")
    header = (f"{'setting':24s} {'AUC':>6s} {'acc':>6s} {'acc cal':>7s} "
              f"{'LL':>6s} {'LL cal':>6s} {'texts/s':>8s} {'tok/text':>8s}")
    print(header)
    print("-" * len(header))
    for name, params in SETTINGS:
        if args.only and name not in args.only:
            continue
        clf = LLMClassifier(backend=LlamaCppBackend(n_threads=args.n_threads),
                            cache=cache, calibration=None, random_state=0, **params)
        clf.fit(X_pool, y_pool)
        start = time.perf_counter()
        proba = clf.predict_proba(np.concatenate([X_cal, X_test]))
        seconds = time.perf_counter() - start
        calls = clf.usage_.calls
        speed = f"{calls / seconds:8.1f}" if calls else "  cached"
        tokens = f"{clf.usage_.prompt_tokens / calls:8.0f}" if calls else "       -"
        raw = proba[len(X_cal):]
        cal = TemperatureScaler(FrozenEstimator(clf), bias=True).fit(X_cal, y_cal)
        calibrated = cal.predict_proba(X_test)
        positive = y_test == clf.classes_[1]
        print(
            f"{name:24s} {roc_auc_score(positive, raw[:, 1]):6.3f} "
            f"{accuracy_score(y_test, clf.classes_[raw.argmax(1)]):6.3f} "
            f"{accuracy_score(y_test, clf.classes_[calibrated.argmax(1)]):7.3f} "
            f"{log_loss(y_test, raw, labels=clf.classes_):6.3f} "
            f"{log_loss(y_test, calibrated, labels=clf.classes_):6.3f} "
            f"{speed} {tokens}",
            flush=True,
        )


if __name__ == "__main__":
    main()
