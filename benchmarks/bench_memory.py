"""Peak memory growth of scoring many texts, in the library and in ``predict``.

Each measurement runs in a fresh process: it builds its texts first, then
records its resident set size (RSS) and samples it every 5 ms while

- ``lib N``: ``LLMClassifier().predict_proba`` of N distinct texts, at default
  settings (16 stratified shots, in-fit calibration, no cache) with the
  model-free :class:`~sklearn_llmconf.testing.KeywordBackend` (so the
  figures are the package's own memory, not a model's);
- ``cli N``: ``sklearn-llmconf predict MODEL DATA -o decisions.csv`` on an
  N-row CSV (default chunk of 1,000 rows, default cache file), for a model
  file fitted the same way.

The growth is the peak RSS during the call minus the RSS just before it. The
keyword backend's record of every prompt it scored (``calls_``, a test aid)
is dropped after each call, so that it is not what is measured.
Single-threaded: the keyword backend uses no thread pool; n_jobs=None.

    python benchmarks/bench_memory.py            # 10k and 100k, both modes
    python benchmarks/bench_memory.py --sizes 10000

Writes benchmarks/results/bench_memory.txt.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time

RESULTS = os.path.join(os.path.dirname(__file__), "results", "bench_memory.txt")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def forget_calls():
    """Stop the keyword backend keeping every prompt it scored (``calls_``).

    That record is test instrumentation (about 2.2 kB per 16-shot prompt, so
    220 MB at 100k texts); without this the figures would measure it, not the
    package.
    """
    from sklearn_llmconf.testing import KeywordBackend

    score = KeywordBackend._score_labels

    def _score_labels(self, prompts, labels):
        try:
            return score(self, prompts, labels)
        finally:
            self.__dict__.pop("calls_", None)

    KeywordBackend._score_labels = _score_labels


def texts(n):
    """n distinct texts: the bundled SMS messages, each with a serial number."""
    from sklearn_llmconf.datasets import load_sms_spam

    X, _ = load_sms_spam(return_X_y=True)
    return [f"{X[i % len(X)]} #{i}" for i in range(n)]


def fitted(**kw):
    from sklearn_llmconf import LLMClassifier
    from sklearn_llmconf.datasets import load_sms_spam
    from sklearn_llmconf.testing import KeywordBackend

    X, y = load_sms_spam(return_X_y=True)
    return LLMClassifier(backend=KeywordBackend(), random_state=0, **kw).fit(
        X[:300], y[:300])


def measure(call):
    """(seconds, RSS before in MB, peak growth in MB) of ``call()``."""
    peak, done = [rss_mb()], threading.Event()

    def sample():
        while not done.is_set():
            peak.append(rss_mb())
            time.sleep(0.005)

    before = rss_mb()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    return seconds, before, max(peak) - before


def child(mode, n):
    forget_calls()
    if mode == "lib":
        clf = fitted()
        X = texts(n)
        seconds, before, growth = measure(lambda: clf.predict_proba(X))
    else:
        from sklearn.frozen import FrozenEstimator

        from sklearn_llmconf import cli
        from sklearn_llmconf.persistence import save_model
        from sklearn_llmconf.routing import ConfidenceRouter

        tmp = tempfile.mkdtemp()
        clf = fitted()
        from sklearn_llmconf.datasets import load_sms_spam

        X, y = load_sms_spam(return_X_y=True)
        router = ConfidenceRouter(FrozenEstimator(clf)).fit(X[300:600], y[300:600])
        model = os.path.join(tmp, "m.skops")
        save_model(model, router, metadata={"data": {
            "text_columns": ["text"], "field_columns": None, "label_column": "y"}})
        data = os.path.join(tmp, "in.csv")
        with open(data, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text"])
            w.writerows([t] for t in texts(n))
        out = os.path.join(tmp, "decisions.csv")
        del X, y, router, clf
        seconds, before, growth = measure(lambda: cli.main(
            ["predict", model, data, "-o", out, "--quiet"]))
        with open(out) as f:
            rows = sum(1 for _ in f) - 1
        assert rows == n, rows
    print(f"{mode}\t{n}\t{seconds:.1f}\t{before:.0f}\t{growth:.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--modes", nargs="+", default=["lib", "cli"])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    lines = ["what             texts  seconds  RSS before MB  peak growth MB  "
             "MB per 1,000"]
    for mode in args.modes:
        for n in args.sizes:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(n)],
                capture_output=True, text=True, check=True).stdout.strip()
            _, _, seconds, before, growth = out.splitlines()[-1].split("\t")
            what = ("predict_proba" if mode == "lib" else "cli predict")
            lines.append(f"{what:<15} {n:>7}  {float(seconds):>7.1f}  "
                         f"{float(before):>13.0f}  {float(growth):>14.1f}  "
                         f"{1000 * float(growth) / n:>12.2f}")
            print(lines[-1], flush=True)
    header = ("bench_memory.py: peak RSS growth (MB) during the call, fresh "
              "process each; KeywordBackend, default LLMClassifier settings "
              "(16 shots), single thread.\n")
    print()
    print(header + "\n".join(lines))
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    if args.sizes == [10_000, 100_000] and args.modes == ["lib", "cli"]:
        with open(RESULTS, "w") as f:
            f.write(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
