"""How many backend calls do cross-validated calibration and grid search cost?

Counts the prompts actually sent to the backend, with and without the response
cache, for ``CalibratedClassifierCV(cv=5).fit(X, y)`` + ``predict_proba(X_test)``
and for ``GridSearchCV`` over 3 prompts x 5 folds. The counting backend is the
deterministic ``KeywordBackend`` (call counts do not depend on the model), fed
with real SMS texts.

Run::

    python benchmarks/bench_cache_calls.py [--n 300] [--n-test 100]
"""

import argparse
import tempfile
from pathlib import Path

from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV, train_test_split

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.testing import KeywordBackend


class CountingBackend(KeywordBackend):
    """KeywordBackend that counts prompts across the clones CV makes."""

    sent = 0

    def score_labels(self, prompts, labels):
        CountingBackend.sent += len(prompts)
        return super().score_labels(prompts, labels)


PROMPTS = [
    "Classify each text as one of: {labels}.\n\nText: {text}\nAnswer:",
    "Is this SMS message spam or ham?\n\nSMS: {text}\nIt is",
    "SMS: {text}\nLabel ({labels}):",
]


def count(run):
    CountingBackend.sent = 0
    run()
    return CountingBackend.sent


def measure(X, y, X_test, n_shots, cache_folder):
    """Prompts sent for calibration, a grid search, and the same search again."""

    def make(name):
        cache = None if cache_folder is None else str(cache_folder / f"{name}.sqlite")
        # calibration=None: fit makes no call, only the meta-estimators do
        return LLMClassifier(backend=CountingBackend(), n_shots=n_shots, cache=cache,
                             calibration=None, random_state=0)

    cal = CalibratedClassifierCV(make("cal"), method="sigmoid", cv=5)
    calls_cal = count(lambda: cal.fit(X, y).predict_proba(X_test))
    search = GridSearchCV(make("grid"), {"prompt": PROMPTS}, cv=5,
                          scoring="neg_log_loss")
    calls_grid = count(lambda: search.fit(X, y))
    calls_again = count(lambda: search.fit(X, y))  # e.g. rescored by ECE
    return calls_cal, calls_grid, calls_again


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=100)
    args = parser.parse_args()
    X, y = load_sms_spam(return_X_y=True)
    X, X_test, y, _ = train_test_split(
        X, y, train_size=args.n, test_size=args.n_test, stratify=y, random_state=0
    )

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_shots in (0, 8):
            for cached in (False, True):
                folder = Path(tmp) / f"{n_shots}" if cached else None
                rows.append((n_shots, "yes" if cached else "no",
                             *measure(X, y, X_test, n_shots, folder)))

    n, m = len(X), len(X_test)
    print(f"{n} training texts, {m} test texts (SMS spam); prompts sent to the "
          "backend.\n")
    print(f"{'n_shots':>7s} {'cache':>5s} {'CalibratedCV(cv=5)+predict':>27s} "
          f"{'GridSearchCV 3x5':>17s} {'same grid again':>16s}")
    print("-" * 77)
    for n_shots, cached, a, b, c in rows:
        print(f"{n_shots:7d} {cached:>5s} {a:27d} {b:17d} {c:16d}")
    print(f"\nCalibration without cache scores each fold's calibration part and all "
          f"{m} test texts once per fold (5 x ({n // 5} + {m})). With the cache, "
          f"zero-shot prompts are the same in every fold: {n} + {m} calls, the "
          "minimum. With demonstrations drawn from each training fold the prompts "
          "differ per fold, so every fold pays for its own. The grid scores each "
          "(prompt, text) pair once either way; the cache makes a second search "
          "free.")

if __name__ == "__main__":
    main()
