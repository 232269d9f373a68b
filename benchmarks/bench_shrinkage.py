"""Bias shrinkage when labels per class are few (simulated LLM label scores).

An LLM classifier's per-label log-scores carry a label-word bias that does not
depend on the text. With k classes and n calibration labels, a free per-class
bias (``TemperatureScaler(bias=True, bias_shrinkage=0)``) has k - 1 parameters
fitted on about n / k labels each and overfits when that is small. Compared on
a held-out test set (log loss, accuracy), mean over ``--seeds`` draws:

- raw: softmax of the scores;
- batch prior: the label-free batch prior correction of the calibration scores
  (Zhou et al. 2024), no labels;
- T only: ``TemperatureScaler(bias=False)``;
- T + free bias: ``bias=True, bias_shrinkage=0``;
- T + shrunk bias: ``bias=True, bias_shrinkage="auto"`` (the default), and the
  fixed strengths 10 and 100.

Simulation (no model call, seconds to run): class frequencies follow a Zipf
law (exponent 1), scores are ``signal * onehot(y) + N(0, 1) noise + word bias``
with the word bias ``N(0, 1.5)`` per class, the whole scaled by 1 / 0.6
(overconfident), so that raw accuracy and log loss resemble the embedded
model's on a many-class set.

``--real N`` measures the same methods on real label scores instead: the
embedded model's raw scores (default prompt, 16 shots) of N texts of the 30-class
:func:`~sklearn_llmconf.datasets.load_question_types`, each seed a random split
into ``--n-cal`` calibration texts and the rest as test texts.

Usage::

    PYTHONPATH=. python benchmarks/bench_shrinkage.py [--k 21 50] [--n-cal 100 300]
    PYTHONPATH=. python benchmarks/bench_shrinkage.py --real 800 --n-cal 100 300
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import accuracy_score, log_loss

from sklearn_llmconf import TemperatureScaler
from sklearn_llmconf.calibration._priors import apply_prior, estimate_prior


class _Scores(ClassifierMixin, BaseEstimator):
    """Frozen "classifier" whose X are its log-scores."""

    def __init__(self, k=2):
        self.k = k

    def fit(self, X, y):
        self.classes_ = np.arange(self.k)
        return self

    def decision_function(self, X):
        return np.asarray(X)

    def predict_proba(self, X):
        from scipy.special import softmax

        return softmax(np.asarray(X), axis=1)


def simulate(rng, k, n, signal=2.0, word_bias_sd=1.5, scale=1 / 0.6):
    freq = 1.0 / np.arange(1, k + 1)
    freq = rng.permutation(freq / freq.sum())
    y = rng.choice(k, size=n, p=freq)
    word_bias = rng.normal(0, word_bias_sd, size=k)
    return y, word_bias, freq


def scores(rng, y, k, word_bias, signal=2.0, scale=1 / 0.6):
    z = rng.normal(0, 1, size=(len(y), k)) + word_bias
    z[np.arange(len(y)), y] += signal
    return scale * z


def evaluate(k, n_cal, n_test, seed):
    rng = np.random.default_rng(seed)
    y_all, word_bias, _ = simulate(rng, k, n_cal + n_test)
    z = scores(rng, y_all, k, word_bias)
    return compare(z[:n_cal], y_all[:n_cal], z[n_cal:], y_all[n_cal:], k)


def compare(z_cal, y_cal, z_te, y_te, k):
    """Test accuracy and log loss of every method, fitted on (z_cal, y_cal)."""
    est = FrozenEstimator(_Scores(k).fit(z_cal, y_cal))
    out = {}

    def record(name, proba):
        out[name] = (accuracy_score(y_te, proba.argmax(axis=1)),
                     log_loss(y_te, proba, labels=np.arange(k)))

    from scipy.special import softmax

    record("raw", softmax(z_te, axis=1))
    prior = estimate_prior(z_cal)
    record("batch prior (no labels)", np.exp(apply_prior(z_te, prior)))
    record("T only", TemperatureScaler(est).fit(z_cal, y_cal).predict_proba(z_te))
    for label, s in (("T + free bias", 0.0), ("T + shrunk bias, auto", "auto"),
                     ("T + shrunk bias, 10", 10.0), ("T + shrunk bias, 100", 100.0)):
        scaler = TemperatureScaler(est, bias=True, bias_shrinkage=s)
        record(label, scaler.fit(z_cal, y_cal).predict_proba(z_te))
    return out


def real_scores(n_score, n_threads=1):
    """Raw label scores of the embedded model on ``n_score`` question texts.

    :func:`~sklearn_llmconf.datasets.load_question_types` (30 classes): the
    default prompt and demonstrations (16 stratified), drawn from the texts
    not scored, ``calibration=None``.
    Responses are cached under ``benchmarks/_cache/``.
    """
    from pathlib import Path

    from sklearn.model_selection import train_test_split

    from sklearn_llmconf import LLMClassifier
    from sklearn_llmconf.backends import LlamaCppBackend
    from sklearn_llmconf.datasets import load_question_types

    X, y = load_question_types(return_X_y=True)
    X_pool, X_s, y_pool, y_s = train_test_split(
        X, y, test_size=n_score, stratify=y, random_state=0
    )
    cache = Path(__file__).parent / "_cache" / "shrinkage.sqlite"
    cache.parent.mkdir(exist_ok=True)
    clf = LLMClassifier(backend=LlamaCppBackend(n_threads=n_threads),
                        calibration=None, cache=str(cache), random_state=0)
    clf.fit(X_pool, y_pool)
    return clf.decision_function(X_s), np.searchsorted(clf.classes_, y_s)


def evaluate_real(z, y, n_cal, seed):
    """One random split of the real scores: n_cal calibration rows, the rest test."""
    idx = np.random.default_rng(seed).permutation(len(y))
    cal, test = idx[:n_cal], idx[n_cal:]
    return compare(z[cal], y[cal], z[test], y[test], z.shape[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[6, 21, 50])
    parser.add_argument("--n-cal", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--real", type=int, default=0, metavar="N_SCORE",
        help="instead of simulating, score N_SCORE question-type texts with the "
             "embedded model; each seed splits them into --n-cal calibration "
             "texts and the rest as test texts",
    )
    args = parser.parse_args(argv)
    if args.real:
        z, y = real_scores(args.real)
        args.k = [z.shape[1]]
        print(f"# real scores: {len(y)} texts of load_question_types, "
              f"{len(np.unique(y))} of {z.shape[1]} classes present; test = the "
              f"texts not used for calibration; mean over {args.seeds} splits")
    print(f"{'k':>3} {'n_cal':>5}  {'method':<26} {'accuracy':>8} {'log loss':>8}")
    for k in args.k:
        for n_cal in args.n_cal:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runs = [evaluate_real(z, y, n_cal, s) if args.real
                        else evaluate(k, n_cal, args.n_test, s)
                        for s in range(args.seeds)]
            for name in runs[0]:
                acc = np.mean([r[name][0] for r in runs])
                ll = np.mean([r[name][1] for r in runs])
                print(f"{k:>3} {n_cal:>5}  {name:<26} {acc:>8.3f} {ll:>8.3f}")
            print()


if __name__ == "__main__":
    main()
