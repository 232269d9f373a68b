"""A certified two-stage cascade on the embedded model: 0-shot, then 16-shot.

SMS spam (de-duplicated, texts under 160 characters). Two stages on the
embedded SmolLM2-135M, each an ``LLMClassifier`` with its in-fit calibration
(``calibration=InFitCalibration(max_samples=...)`` training texts):

- stage 1: zero-shot (short prompt, no demonstrations),
- stage 2: 16 stratified demonstrations (a prompt of several hundred tokens).

On one calibration split, ``ConfidenceRouter(tiers=[("accept", target)])``
certifies each stage alone and ``ConfidenceCascade`` certifies the chain
(delta 0.05 each; the cascade certifies per-stage thresholds, see its
docstring). On the test split the table reports, for stage 1 alone,
stage 2 alone and the cascade: coverage (share of rows answered without a
person), precision of the answers, model evaluations per decision (rows sent
to a model / rows), prompt tokens evaluated per decision (``usage_``; the
local backend re-uses the demonstrations' shared prefix, so it counts them
once), and wall seconds per decision. Every test-time figure is measured on
fresh scoring (no response cache); the calibration scores go through a
temporary response cache so that the routers and the cascade share them.

Usage::

    PYTHONPATH=. python benchmarks/bench_cascade.py [--n-cal 240] [--n-test 240]
        [--target 0.95] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split

from sklearn_llmconf import (
    InFitCalibration,
    LLMClassifier,
    PromptTemplate,
    ResponseCache,
)
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.routing import ConfidenceCascade, ConfidenceRouter
from sklearn_llmconf.routing._certificate import language_models

PROMPT = "Classify each text as one of: {labels}.\n\nText: {text}\nAnswer:"


def _data(n_pool, n_cal, n_test, seed=0):
    X, y = load_sms_spam(return_X_y=True)
    short = np.array([len(t) < 160 for t in X])
    X, y = X[short], y[short]
    X_pool, X_rest, y_pool, y_rest = train_test_split(
        X, y, train_size=n_pool, stratify=y, random_state=seed)
    X_cal, X_rest, y_cal, y_rest = train_test_split(
        X_rest, y_rest, train_size=n_cal, stratify=y_rest, random_state=seed)
    X_test, _, y_test, _ = train_test_split(
        X_rest, y_rest, train_size=n_test, stratify=y_rest, random_state=seed)
    return (list(X_pool), y_pool), (list(X_cal), y_cal), (list(X_test), y_test)


def _stage(n_shots, threads, n_calib):
    backend = LlamaCppBackend(n_threads=threads, n_threads_batch=threads)
    return LLMClassifier(PromptTemplate(PROMPT, demo_max_chars=120),
                         backend=backend, n_shots=n_shots,
                         calibration=InFitCalibration(max_samples=n_calib),
                         random_state=0)


def _usage(est):
    u = language_models(est)[0].usage_
    return u.calls, u.prompt_tokens


def _row(name, answered, correct, evaluations, tokens, seconds, n):
    cov = answered.mean()
    prec = correct[answered].mean() if answered.any() else float("nan")
    return (f"{name:<16} {cov:>8.3f} {prec:>9.3f} {answered.sum():>6d} "
            f"{evaluations / n:>8.2f} {tokens / n:>8.1f} {seconds / n:>8.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-pool", type=int, default=200)
    parser.add_argument("--n-cal", type=int, default=240)
    parser.add_argument("--n-test", type=int, default=240)
    parser.add_argument("--n-calib", type=int, default=60,
                        help="in-fit calibration texts per stage")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    (X_pool, y_pool), (X_cal, y_cal), (X_test, y_test) = _data(
        args.n_pool, args.n_cal, args.n_test)
    print(f"# SMS spam, texts < 160 chars: pool {len(X_pool)}, calibration "
          f"{len(X_cal)}, test {len(X_test)} (spam share "
          f"{np.mean(y_test == 'spam'):.2f}); target {args.target}, delta 0.05; "
          f"llama.cpp n_threads = n_threads_batch = {args.threads}")
    stages = [("0-shot", _stage(0, args.threads, args.n_calib)),
              ("16-shot", _stage(16, args.threads, args.n_calib))]
    tmp = tempfile.mkdtemp()
    cache = ResponseCache(os.path.join(tmp, "cal.sqlite"))
    t0 = time.perf_counter()
    for _, clf in stages:
        clf.set_params(cache=cache).fit(X_pool, y_pool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # uncertified tiers warn
        routers = [ConfidenceRouter(FrozenEstimator(clf),
                                    tiers=[("accept", args.target)])
                   .fit(X_cal, y_cal) for _, clf in stages]
        cascade = ConfidenceCascade(
            [(name, FrozenEstimator(clf)) for name, clf in stages],
            target=args.target).fit(X_cal, y_cal)
    print(f"# fit and calibration scoring: {time.perf_counter() - t0:.0f} s")
    for _, clf in stages:  # test-time figures on fresh scoring; the cache is
        clf.set_params(cache=None)  # no part of the certificate
    n = len(X_test)
    header = (f"{'':<16} {'coverage':>8} {'precision':>9} {'n':>6} "
              f"{'evals/d':>8} {'tokens/d':>8} {'s/d':>8}")
    print(header)
    rows, probas = [], []
    for (name, clf), router in zip(stages, routers):
        calls0, tok0 = _usage(clf)
        t = time.perf_counter()
        d = router.decide(X_test)
        secs = time.perf_counter() - t
        calls, tok = _usage(clf)
        answered = d.tier == "accept"
        rows.append(_row(f"{name} alone", answered, d.label == y_test,
                         calls - calls0, tok - tok0, secs, n))
        probas.append(d)
        print(rows[-1] + f"   threshold {router.thresholds_[0]:.4g}")
    t = time.perf_counter()
    d = cascade.decide(X_test)
    secs = time.perf_counter() - t
    answered = d.stage < 2
    evals = int(d.n_scored.sum())
    tokens = sum(u["prompt_tokens"] for u in d.usage)
    print(_row("cascade", answered, d.label == y_test, evals, tokens, secs, n)
          + f"   thresholds {np.round(cascade.thresholds_, 4).tolist()}")
    for k, (name, _) in enumerate(stages):
        ok = d.stage == k
        prec = (d.label[ok] == y_test[ok]).mean() if ok.any() else float("nan")
        print(f"#   cascade stage {name}: scored {d.n_scored[k]} rows "
              f"({d.usage[k]['calls']} calls, {d.usage[k]['prompt_tokens']} prompt "
              f"tokens), answered {ok.sum()} (precision {prec:.3f})")
    # the cascade's stage 1 saw every test row, stage 2 only those left by it
    conf1 = probas[0].confidence
    left = ~(conf1 >= cascade.thresholds_[0])
    print(f"#   rows left by stage 1 at the cascade threshold (from stage 1 alone): "
          f"{int(left.sum())}; sent to stage 2 by the cascade: {d.n_scored[1]}")


if __name__ == "__main__":
    main()
