"""The decision service's candidates on the bundled data: llm, hybrid, the kept one.

For each bundled set (``--datasets``) at ``--labels`` labelled texts (default
300) and a separate stratified test set (``--n-test``, default 100; the split
of ``bench_hybrid.py``: the test texts do not depend on the labels, seed 0):

- ``llm``: ``LLMClassifier()`` (in-fit calibration, the service's ``llm``);
- ``hybrid``: ``make_hybrid_classifier(LLMClassifier())`` (LLM scores +
  TF-IDF + all-MiniLM-L6-v2 embeddings, stacked; each text embedded once per
  run);
- ``kept``: ``BestCandidateClassifier(service_candidates(LLMClassifier()),
  cv=3)``, what ``sklearn-llmconf fit --classifier auto`` certifies: both
  cross-validated on the labelled texts only, the lower log loss kept; the
  note names the kept one;
- ``tfidf+lr``: ``TfidfVectorizer(sublinear_tf=True)`` +
  ``LogisticRegressionCV`` (C by 5-fold log loss), the peer a user picks;
- ``emb+lr``: frozen all-MiniLM-L6-v2 embeddings + the same logistic regression.

Columns: held-out accuracy, log loss, debiased ECE (top-label, 15 bins) with a
95 % bootstrap interval (200 resamples), and ``share@90``: the mean share of
test texts decided at a certified 90 % precision by a ``ConfidenceRouter``
(``tiers=(("review", 0.9),)``, delta 0.05) certified on a random stratified
half of the test texts (unstratified when a class has one test text) and
applied to the other half, over ``--n-splits``
splits (default 10; 0 when a split certifies nothing), with the number of
splits certified; ``share@99`` the same at 99 %; ``fit s`` and ``pred s``:
seconds of ``fit`` and of ``predict_proba`` on the test texts (shared cores:
compare within a run); ``calls``: distinct prompts the model asked for in fit
and predict (the model calls it costs with an empty cache: the cache is
shared by the run's models, so the seconds of a later model may be lower).

Every LLM uses the embedded SmolLM2-135M through
``LlamaCppBackend(n_threads=1)`` and one persistent ``ResponseCache``
(``--cache``): a rerun makes no model call. Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH=. \\
        python benchmarks/bench_service.py --labels 300 --n-test 100 \\
        --cache /tmp/bench37/scores.sqlite --out benchmarks/results/bench_service.txt
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from sklearn_llmconf import LLMClassifier, ResponseCache, datasets
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.hybrid import (
    BestCandidateClassifier,
    SentenceEmbedder,
    make_hybrid_classifier,
    service_candidates,
)
from sklearn_llmconf.metrics import expected_calibration_error
from sklearn_llmconf.routing import ConfidenceRouter

BBC_CHARS = 300
SETS = ["sms_spam", "trec", "rotten_tomatoes", "bbc_news"]


def load(name):
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    if name == "bbc_news":
        X = np.array([x[:BBC_CHARS] for x in X], dtype=object)
    return np.asarray(X, dtype=object), np.asarray(y)


def split(name, n_train, n_test, seed=0):
    X, y = load(name)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=n_test, stratify=y, random_state=seed)
    X_train, _, y_train, _ = train_test_split(
        X_rest, y_rest, train_size=n_train, stratify=y_rest, random_state=seed)
    return X_train, y_train, X_test, y_test


def estimators(cache, n_shots):
    def llm():
        return LLMClassifier(backend=LlamaCppBackend(n_threads=1), cache=cache,
                             n_shots=n_shots, random_state=0)

    lr = LogisticRegressionCV(Cs=10, cv=5, scoring="neg_log_loss", max_iter=3000)
    return {
        "llm": llm(),
        "hybrid": make_hybrid_classifier(llm(), embeddings=SentenceEmbedder()),
        "kept": BestCandidateClassifier(
            service_candidates(llm(), embeddings=SentenceEmbedder()), cv=3),
        "tfidf+lr": make_pipeline(TfidfVectorizer(sublinear_tf=True), lr),
        "emb+lr": make_pipeline(SentenceEmbedder(), clone(lr)),
    }


class CountingCache(ResponseCache):
    """ResponseCache that remembers every key asked for in this process.

    One key is one distinct prompt (with its backend and labels): the model
    calls a model costs with an empty cache, whatever the other models of the
    run have already stored. Estimators clone their parameters, so the keys
    live on the class.
    """

    asked: set = set()

    def get_many(self, keys):
        CountingCache.asked.update(keys)
        return super().get_many(keys)


class _Scored(ClassifierMixin, BaseEstimator):
    """A fitted 'classifier' whose input is row indices into stored probabilities."""

    def __init__(self, proba, classes):
        self.proba, self.classes = proba, classes
        self.classes_ = classes

    def __sklearn_is_fitted__(self):
        return True

    def fit(self, X, y):  # pragma: no cover - never called: it is fitted
        return self

    def predict_proba(self, X):
        return self.proba[np.asarray(X).ravel()]


def share_at(proba, y, classes, target, n_splits):
    """Mean test share decided at a certified ``target``, and splits certified."""
    scored = FrozenEstimator(_Scored(proba, classes))  # certify on all of i_cal
    idx = np.arange(len(y))[:, None]
    shares, certified = [], 0
    # stratified halves, unless a class has one test text (TREC's ABBR)
    stratify = y if np.unique(y, return_counts=True)[1].min() >= 2 else None
    for s in range(n_splits):
        i_cal, i_test = train_test_split(idx, test_size=0.5, stratify=stratify,
                                         random_state=s)
        router = ConfidenceRouter(scored, tiers=(("review", target),), delta=0.05)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # uncertified tiers
            router.fit(i_cal, y[i_cal.ravel()])
        report = router.routing_report(i_test, y[i_test.ravel()])
        shares.append(report["review"]["cumulative_share"])
        certified += bool(np.ravel(router.certified_)[0])
    return float(np.mean(shares)), certified


def run_split(name, n_labels, cache, args):
    X_tr, y_tr, X_te, y_te = split(name, n_labels, args.n_test)
    classes = np.unique(y_tr)
    rows = []
    for label, est in estimators(cache, args.n_shots).items():
        CountingCache.asked.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            est.fit(X_tr, y_tr)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            proba = est.predict_proba(X_te)
            predict_s = time.perf_counter() - start
        ece = expected_calibration_error(
            y_te, proba, labels=classes, debias=True, n_bootstrap=200,
            random_state=0)
        shares = {t: share_at(proba, y_te, classes, t, args.n_splits)
                  for t in (0.9, 0.99)}
        note = ""
        if isinstance(est, BestCandidateClassifier):
            note = "kept " + est.best_name_ + " (CV log loss " + ", ".join(
                f"{n} {r['log_loss']:.3f}" for n, r in est.cv_results_.items()) + ")"
        rows.append((name, n_labels, label, dict(
            acc=accuracy_score(y_te, classes[np.argmax(proba, axis=1)]),
            ll=log_loss(y_te, proba, labels=classes), ece=ece, shares=shares,
            fit_s=fit_s, predict_s=predict_s, calls=len(CountingCache.asked),
            note=note)))
        print(f"    {name} {label}: fit {fit_s:.0f} s, predict {predict_s:.0f} s",
              file=sys.stderr, flush=True)
    return rows


def format_rows(rows, n_splits):
    head = (f"{'data set':<16} {'labels':>6} {'model':<9} {'accuracy':>8} "
            f"{'log loss':>8} {'debiased ECE [95% CI]':>23} {'share@90':>8} "
            f"{'cert':>5} {'share@99':>8} {'cert':>5} {'fit s':>6} "
            f"{'pred s':>6} {'calls':>6}  note")
    lines = [head, "-" * len(head)]
    for name, n, label, m in rows:
        ece = m["ece"]
        ci = f"{100 * ece.ece:5.1f} [{100 * ece.ci_low:4.1f}, {100 * ece.ci_high:4.1f}]"
        (s90, c90), (s99, c99) = m["shares"][0.9], m["shares"][0.99]
        lines.append(
            f"{name:<16} {n:>6} {label:<9} {m['acc']:>8.3f} {m['ll']:>8.3f} "
            f"{ci:>23} {s90:>8.3f} {c90:>2}/{n_splits:<2} {s99:>8.3f} "
            f"{c99:>2}/{n_splits:<2} {m['fit_s']:>6.0f} {m['predict_s']:>6.1f} "
            f"{m['calls']:>6}  {m['note']}")
    return "\n".join(lines)


def summary(rows):
    """The issue's checks: kept vs the better of llm and hybrid; share vs llm."""
    by = {}
    for name, n, label, m in rows:
        by.setdefault((name, n), {})[label] = m
    lines = ["", "kept vs the better of llm and hybrid (log loss, within 2 %?) and "
             "share@90 vs llm's:"]
    for (name, n), ms in by.items():
        if not {"llm", "hybrid", "kept"} <= set(ms):
            continue
        best = min(ms["llm"]["ll"], ms["hybrid"]["ll"])
        ratio = ms["kept"]["ll"] / best
        kept90, llm90 = ms["kept"]["shares"][0.9][0], ms["llm"]["shares"][0.9][0]
        lines.append(
            f"  {name:<16} {n:>4}: kept {ms['kept']['ll']:.3f} vs best "
            f"{best:.3f} ({100 * (ratio - 1):+.1f} %, "
            f"{'ok' if ratio <= 1.02 else 'NOT within 2 %'}); share@90 kept "
            f"{kept90:.3f} vs llm {llm90:.3f} "
            f"({'ok' if kept90 >= llm90 else 'lower'})")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=SETS)
    parser.add_argument("--labels", nargs="+", type=int, default=[300])
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-shots", type=int, default=16)
    parser.add_argument("--n-splits", type=int, default=10)
    parser.add_argument("--cache", default="/tmp/bench37/scores.sqlite")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - the embeddings extra is required
        pass
    import os

    os.makedirs(os.path.dirname(os.path.abspath(args.cache)), exist_ok=True)
    cache = CountingCache(args.cache)
    rows = []
    for n in args.labels:
        for name in args.datasets:
            start = time.perf_counter()
            rows += run_split(name, n, cache, args)
            print(f"  {name} {n}: {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
    text = format_rows(rows, args.n_splits) + "\n" + summary(rows)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("# " + " ".join(["python", *sys.argv]) + "\n")
            f.write(f"# embedded SmolLM2-135M, LlamaCppBackend(n_threads=1) "
                    "(n_threads_batch follows: 1 prompt thread), OMP_NUM_THREADS="
                    f"{os.environ.get('OMP_NUM_THREADS')}, torch.set_num_threads(1); "
                    f"{args.n_test} test texts per set, "
                    f"n_shots={args.n_shots}; BBC texts cut to {BBC_CHARS} "
                    "characters.\n")
            f.write(text + "\n")


if __name__ == "__main__":
    main()
