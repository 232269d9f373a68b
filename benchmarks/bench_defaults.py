"""Does the default ``LLMClassifier`` beat what a user would pick instead?

For each bundled data set (SMS spam, TREC coarse, BBC News, Rotten Tomatoes)
a stratified split gives ``--n-train`` labelled texts and a disjoint test set.
Fitted on the same labelled texts and evaluated on the same test texts:

- ``majority``: ``DummyClassifier(strategy="most_frequent")`` (accuracy) and
  ``DummyClassifier(strategy="prior")`` (log loss);
- ``default``: ``LLMClassifier()`` with its defaults (in-fit calibration);
- ``raw``: the same prompt and demonstrations with ``calibration=None``;
- ``T+bias``: ``TemperatureScaler(FrozenEstimator(raw), bias=True)`` fitted on
  the labelled texts that are not demonstrations (the labels ``default`` uses),
  and ``T+free bias`` the same with ``bias_shrinkage=0`` (no shrinkage);
- ``tfidf+lr``: ``TfidfVectorizer + LogisticRegression`` on all labelled texts.

The ``fit calls`` column counts the texts that ``fit`` itself scores (model
calls with an empty cache: ``usage_.calls + usage_.cache_hits`` after ``fit``);
the others' fit makes none, the calibrators reuse those scores.
Scores go through a persistent :class:`~sklearn_llmconf.ResponseCache` under
``benchmarks/_cache/`` (git-ignored), so a rerun only scores what is missing.

Candidate defaults (``--configs``) are given as ``n_shots:demo_selection``,
the first on the whole test split, the others on its first
``--candidates-test`` rows (a cheaper comparison on a loaded machine). The
default list, ``16:stratified 8:stratified 0:stratified``, is how the package
default ``n_shots=16`` was chosen; ``--datasets trec --configs 16:stratified
8:similar`` compares TF-IDF-nearest demonstrations (every prompt its own
prefix: about ten times the cost per text).

Usage::

    PYTHONPATH=. python benchmarks/bench_defaults.py [--datasets sms_spam trec]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from sklearn_llmconf import LLMClassifier, ResponseCache, TemperatureScaler, datasets
from sklearn_llmconf.backends import LlamaCppBackend

CACHE = Path(__file__).parent / "_cache" / "defaults.sqlite"
# BBC articles average ~500 tokens; the headline and lead (first 300
# characters) carry the topic at a fifth of the cost (as in _scores.py).
BBC_CHARS = 300
# (labelled texts, test texts) per set: 200 labels (what calibration="auto"
# uses at most), 300 test texts (the minimum). --sizes overrides.
SIZES = {
    "sms_spam": (200, 300),
    "trec": (200, 300),
    "rotten_tomatoes": (200, 300),
    "bbc_news": (200, 300),
}


def load(name):
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    if name == "bbc_news":
        X = np.array([x[:BBC_CHARS] for x in X], dtype=object)
    return np.asarray(X, dtype=object), np.asarray(y)


def split(name, n_train, n_test, seed=0):
    X, y = load(name)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=n_test, stratify=y, random_state=seed
    )
    X_train, _, y_train, _ = train_test_split(
        X_rest, y_rest, train_size=n_train, stratify=y_rest, random_state=seed
    )
    return X_train, y_train, X_test, y_test


def make_llm(cache, **params):
    return LLMClassifier(
        backend=LlamaCppBackend(n_threads=1), cache=cache, random_state=0, **params
    )


def _metrics(y, proba, classes):
    return (
        accuracy_score(y, classes[np.argmax(proba, axis=1)]),
        log_loss(y, proba, labels=classes),
    )


def _non_demo(clf, X):
    demo_texts = {d[0][0] for d in clf.demos_}
    return np.array([x not in demo_texts for x in X])


def run_dataset(name, cache, args):
    n_train, n_test = args.sizes.get(name, SIZES[name])
    X_tr, y_tr, X_te, y_te = split(name, n_train, n_test)
    classes = np.unique(y_tr)
    rows = []

    def row(label, proba, calls="", y=y_te):
        acc, ll = _metrics(y, proba, classes)
        rows.append((name, label, len(y), acc, ll, calls))

    for strategy in ("most_frequent", "prior"):
        dummy = DummyClassifier(strategy=strategy).fit(X_tr, y_tr)
        row(f"dummy {strategy}", dummy.predict_proba(X_te))
    tfidf = make_pipeline(TfidfVectorizer(sublinear_tf=True),
                          LogisticRegression(max_iter=1000))
    row("tfidf+lr", tfidf.fit(X_tr, y_tr).predict_proba(X_te))

    for config in args.configs:
        n_shots, selection = config.split(":")
        params = dict(n_shots=int(n_shots), demo_selection=selection)
        n_test = len(y_te) if config == args.configs[0] else args.candidates_test
        X_t, y_t = X_te[:n_test], y_te[:n_test]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = make_llm(cache, **params).fit(X_tr, y_tr)
            fit_calls = clf.usage_.calls + clf.usage_.cache_hits
            row(f"default {config}", clf.predict_proba(X_t), fit_calls, y_t)
            raw = make_llm(cache, calibration=None, **params).fit(X_tr, y_tr)
            row(f"raw {config}", raw.predict_proba(X_t), 0, y_t)
            keep = _non_demo(raw, X_tr)
            for label, shrink in (("T+bias", "auto"), ("T+free bias", 0.0)):
                ts = TemperatureScaler(FrozenEstimator(raw), bias=True,
                                       bias_shrinkage=shrink)
                ts.fit(X_tr[keep], y_tr[keep])
                row(f"{label} {config}", ts.predict_proba(X_t), "", y_t)
        print(f"  {name} {config}: {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)
    return rows


def format_rows(rows):
    head = f"{'data set':<16} {'estimator':<28} {'n_test':>6} {'accuracy':>8} " \
           f"{'log loss':>8} {'fit calls':>9}"
    lines = [head, "-" * len(head)]
    for name, label, n, acc, ll, calls in rows:
        lines.append(f"{name:<16} {label:<28} {n:>6} {acc:>8.3f} {ll:>8.3f} "
                     f"{calls!s:>9}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SIZES))
    parser.add_argument(
        "--sizes", nargs="*", default=[], metavar="NAME=N_TRAIN,N_TEST",
        help="override the (labelled, test) sizes of a set, e.g. trec=200,300",
    )
    parser.add_argument("--configs", nargs="+",
                        default=["16:stratified", "8:stratified", "0:stratified"])
    parser.add_argument("--candidates-test", type=int, default=150)
    args = parser.parse_args(argv)
    args.sizes = {
        k: tuple(int(v) for v in vs.split(","))
        for k, vs in (item.split("=") for item in args.sizes)
    }
    CACHE.parent.mkdir(exist_ok=True)
    cache = ResponseCache(CACHE)
    all_rows = []
    for name in args.datasets:
        all_rows += run_dataset(name, cache, args)
        print(format_rows(all_rows), flush=True)
    cache.close()


if __name__ == "__main__":
    main()
