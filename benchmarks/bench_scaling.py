"""Texts per second as scoring scales out, against raw llama.cpp, in one run.

Modes, on the same short SMS texts and zero-shot prompt, no response cache:

1. raw llama-cpp-python in this process: every prompt evaluated from an empty
   context with all cores, next-token logits read (the speed reference);
2. ``LLMClassifier(n_jobs=1)``: one process, one model with all cores;
3. ``LLMClassifier(n_jobs=W)``: W joblib (loky) workers, each with one model
   of ``cores // W`` threads (joblib's inner thread limit);
4. the same code under ``joblib.parallel_config(backend="dask")`` on a
   ``distributed.LocalCluster`` of W worker processes, 1 thread each.

Every mode is warmed up first (workers started, models loaded), then timed on
the texts. The probabilities of modes 2-4 must be identical, bit for bit; the
run fails otherwise. Timings on a shared machine are noisy: compare the ratios
within one run, and read the load average printed with them. Run::

    PYTHONPATH=. python benchmarks/bench_scaling.py [--n 48] [--workers 2] [--no-dask]
"""

import argparse
import os
import time

import numpy as np
from joblib import parallel_config

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf._parallel import available_cpus
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.datasets import load_sms_spam

PROMPT = "Is this SMS message spam or ham?\n\nSMS: {text}\nIt is"


def _texts(n):
    X, y = load_sms_spam(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = [i for i in rng.permutation(len(X)) if len(X[i]) < 100]
    return list(X[idx[: n + 4]]), y[idx[: n + 4]]


def _raw_llama(prompts, backend, cores):
    from llama_cpp import Llama

    from sklearn_llmconf.backends._llamacpp import without_extra_buffer_types

    with without_extra_buffer_types():
        llama = Llama(model_path=backend._resolved_path(), n_ctx=2048,
                      n_threads=cores, n_threads_batch=cores, logits_all=False,
                      verbose=False)
    tokens = [backend.tokenize(p.text) for p in prompts]
    start = time.perf_counter()
    for toks in tokens:
        llama.n_tokens = 0
        llama.eval(toks)
        np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).copy()
    return time.perf_counter() - start, float(np.mean([len(t) for t in tokens]))


def _timed(clf, X_warm, X):
    clf.predict_proba(X_warm)  # workers started, one model loaded per worker
    start = time.perf_counter()
    proba = clf.predict_proba(X)
    return time.perf_counter() - start, proba


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()

    texts, labels = _texts(args.n)
    X_warm, X = texts[: args.workers * 2], texts[args.workers * 2:][: args.n]
    cores = available_cpus()
    W = args.workers

    def make(n_jobs):
        # n_threads=None: all cores in one process, cores // W in a worker.
        return LLMClassifier(backend=LlamaCppBackend(), prompt=PROMPT, n_shots=0,
                             n_jobs=n_jobs).fit(texts, labels)

    load_before = os.getloadavg()[0]
    base = make(1)
    rows = []
    raw_s, n_tokens = _raw_llama(base._render([(t,) for t in X]), base.backend, cores)
    rows.append(("raw llama-cpp-python, 1 process", f"1 x {cores}", raw_s, None))
    seconds, reference = _timed(base, X_warm, X)
    rows.append(("LLMClassifier n_jobs=1", f"1 x {cores}", seconds, 0.0))
    seconds, proba = _timed(make(W), X_warm, X)
    rows.append((f"LLMClassifier n_jobs={W} (loky)", f"{W} x {max(cores // W, 1)}",
                 seconds, float(np.abs(proba - reference).max())))
    if not args.no_dask:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=W, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster):
            with parallel_config(backend="dask"):
                seconds, proba = _timed(make(-1), X_warm, X)
        rows.append((f"Dask LocalCluster, {W} processes", f"{W} x 1", seconds,
                     float(np.abs(proba - reference).max())))
    load_after = os.getloadavg()[0]

    print(f"{len(X)} SMS texts, zero-shot, {n_tokens:.0f} tokens per prompt on "
          f"average; {cores} cores; load average {load_before:.1f} before, "
          f"{load_after:.1f} after.")
    print(f"\n{'mode':36s} {'procs x threads':>15s} {'seconds':>8s} {'texts/s':>8s} "
          f"{'vs raw':>7s} {'max |dp|':>9s}")
    print("-" * 88)
    for name, layout, s, diff in rows:
        d = "-" if diff is None else f"{diff:.1e}"
        print(f"{name:36s} {layout:>15s} {s:8.2f} {len(X) / s:8.2f} "
              f"{raw_s / s:7.2f} {d:>9s}")
    if any(diff not in (None, 0.0) for *_, diff in rows):
        raise SystemExit("probabilities differ between modes")


if __name__ == "__main__":
    main()
