"""The hybrid's LogisticRegressionCV scorer: scikit-learn's "neg_log_loss" vs
``hybrid._logistic.neg_log_loss``, side by side in one process.

The stack fits LogisticRegressionCV on a few dozen rows per block, fold and
candidate; its scorer runs once per fold and ``C``. This prints the cost of one
scorer call and of one LogisticRegressionCV fit with each scoring (alternated,
best of the repeats), and checks that both give the same scores and ``C``.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_fast_scorer.py \
        --out benchmarks/results/bench_fast_scorer.txt
"""

import argparse
import os
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer

from sklearn_llmconf.hybrid._logistic import logistic_cv, neg_log_loss


def data(n, k, d, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    X = rng.normal(size=(k, d))[y] * 0.8 + rng.normal(size=(n, d))
    return X, np.array(["alpha", "beta", "gamma", "delta"][:k], dtype=object)[y]


def scores(model):
    """``scores_``: one array (scikit-learn 1.9) or a dict per class (1.8)."""
    s = model.scores_
    return np.asarray(list(s.values()) if isinstance(s, dict) else s)


def seconds(fn, *args, times=1):
    """Wall seconds of ``times`` calls of ``fn(*args)``."""
    start = time.perf_counter()
    for _ in range(times):
        fn(*args)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS")
    lines = [f"# bench_fast_scorer.py (OMP_NUM_THREADS={threads}, one process; "
             "scorer calls and fits alternated, best of 5)",
             f"{'rows':>5} {'classes':>7} {'scorer ms (sklearn)':>20} {'fast':>7} "
             f"{'ratio':>6} {'LRCV fit s (sklearn)':>21} {'fast':>7} {'ratio':>6}"
             "  same C_ and scores"]
    reference = get_scorer("neg_log_loss")
    for n, k in ((30, 2), (60, 3), (240, 4)):
        X, y = data(n, k, 20)
        model = LogisticRegression(max_iter=2000).fit(X, y)
        calls = 200
        t_ref = t_fast = f_ref = f_fast = np.inf
        by_name = logistic_cv(Cs=10, cv=5, scoring="neg_log_loss", max_iter=2000)
        fast = logistic_cv(Cs=10, cv=5, scoring=neg_log_loss, max_iter=2000)
        for _ in range(5):  # alternated, best of 5
            t_ref = min(t_ref, seconds(reference, model, X, y, times=calls))
            t_fast = min(t_fast, seconds(neg_log_loss, model, X, y, times=calls))
            f_ref = min(f_ref, seconds(by_name.fit, X, y))
            f_fast = min(f_fast, seconds(fast.fit, X, y))
        same = (np.array_equal(by_name.C_, fast.C_)
                and np.array_equal(scores(by_name), scores(fast)))
        lines.append(f"{n:>5} {k:>7} {t_ref / calls * 1e3:>20.2f} "
                     f"{t_fast / calls * 1e3:>7.2f} {t_ref / t_fast:>5.1f}x "
                     f"{f_ref:>21.3f} {f_fast:>7.3f} {f_ref / f_fast:>5.1f}x  {same}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
