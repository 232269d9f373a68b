"""Does the response cache survive kill -9 and concurrent writer processes?

Two probes on the SQLite :class:`~sklearn_llmconf.ResponseCache`, with the
deterministic ``KeywordBackend`` (no model: the cache is what is tested):

- **kill -9 resume**: a child process scores ``--n-texts`` texts in batches of
  ``--batch-size`` through ``LLMClassifier(cache=...)``, with a backend slowed
  down so that the parent can ``SIGKILL`` it mid-run. The parent then checks
  the file (``PRAGMA integrity_check``), counts the rows kept (a whole number
  of batches), resumes, and compares the resumed probabilities with an
  uncached reference run.
- **concurrent writers**: ``--n-procs`` processes score disjoint texts into one
  cache file at the same time; then every row must be there, the file intact,
  and a rerun must be answered from the cache alone.

Run::

    python benchmarks/bench_cache_reliability.py [--n-texts 2000] [--n-procs 8]
"""

import argparse
import multiprocessing as mp
import os
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from sklearn_llmconf import LLMClassifier, ResponseCache
from sklearn_llmconf.testing import KeywordBackend


class SlowKeywordBackend(KeywordBackend):
    """KeywordBackend taking ``delay`` seconds per batch, so a run can be killed."""

    def __init__(self, strength=2.0, fail_on=None, missing_on=None, delay=0.02):
        super().__init__(strength, fail_on, missing_on)
        self.delay = delay

    def _cache_irrelevant_params(self):
        return {"delay"}

    def _score_labels(self, prompts, labels):
        time.sleep(self.delay)
        return super()._score_labels(prompts, labels)


def texts(n, offset=0):
    words = ["free", "spam", "ham", "call", "now", "lunch", "prize", "home"]
    # Text i is the same whichever slice asks for it.
    picks = np.random.RandomState(0).choice(words, (offset + n, 5))
    return [f"msg {i}: " + " ".join(picks[i]) for i in range(offset, offset + n)]


def classifier(cache, batch_size, delay=0.0):
    backend = SlowKeywordBackend(delay=delay)
    return LLMClassifier(backend=backend, n_shots=0, cache=cache, calibration=None,
                         batch_size=batch_size).fit(["a", "b"], ["ham", "spam"])


def integrity(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def _score_forever(path, n_texts, batch_size, delay):
    classifier(path, batch_size, delay).predict_proba(texts(n_texts))


def kill_resume(folder, n_texts, batch_size, delay, kill_after):
    path = str(Path(folder) / "kill.sqlite")
    child = mp.get_context("spawn").Process(
        target=_score_forever, args=(path, n_texts, batch_size, delay))
    child.start()
    deadline = time.monotonic() + 120
    # Kill once some batches are stored, well before the run can finish.
    while time.monotonic() < deadline:
        if os.path.exists(path):
            try:
                if len(ResponseCache(path)) >= kill_after:
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    kept = len(ResponseCache(path))
    check = integrity(path)
    resumed = classifier(path, batch_size)
    proba = resumed.predict_proba(texts(n_texts))
    reference = classifier(None, batch_size).predict_proba(texts(n_texts))
    return {
        "exit code": child.exitcode,
        "rows kept": kept,
        "whole batches": kept % batch_size == 0,
        "integrity": check,
        "resume calls": resumed.usage_.calls,
        "resume cache hits": resumed.usage_.cache_hits,
        "max |resumed - reference|": float(np.abs(proba - reference).max()),
    }


def _writer(path, worker, n_texts, batch_size):
    classifier(path, batch_size).predict_proba(texts(n_texts, worker * n_texts))


def concurrent(folder, n_procs, n_texts, batch_size):
    path = str(Path(folder) / "concurrent.sqlite")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, n_texts, batch_size))
             for w in range(n_procs)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - start
    rerun = classifier(path, batch_size)
    rerun.predict_proba(texts(n_procs * n_texts))
    return {
        "exit codes": sorted({p.exitcode for p in procs}),
        "rows": f"{len(ResponseCache(path))}/{n_procs * n_texts}",
        "integrity": integrity(path),
        "rerun calls": rerun.usage_.calls,
        "seconds": round(seconds, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-texts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--n-procs", type=int, default=8)
    parser.add_argument("--texts-per-proc", type=int, default=1125)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print(f"kill -9 resume ({args.n_texts} texts, batches of "
              f"{args.batch_size}, SIGKILL after >= {args.n_texts // 4} rows):")
        result = kill_resume(folder, args.n_texts, args.batch_size, args.delay,
                             args.n_texts // 4)
        for key, value in result.items():
            print(f"  {key:28s} {value}")
        print(f"\n{args.n_procs} concurrent writer processes x "
              f"{args.texts_per_proc} texts, batches of {args.batch_size}:")
        result = concurrent(folder, args.n_procs, args.texts_per_proc,
                            args.batch_size)
        for key, value in result.items():
            print(f"  {key:28s} {value}")


if __name__ == "__main__":
    main()
