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
the texts; with ``--rounds R`` the modes run interleaved R times and the median
is shown, so that a change of load during the run hits every mode alike. The
probabilities of modes 2-4 must be identical, bit for bit; the run fails
otherwise. Timings on a shared machine are noisy: compare the ratios within one
run, and read the load averages printed with them. Run::

    PYTHONPATH=. python benchmarks/bench_scaling.py [--n 48] [--workers 2] \\
        [--rounds 3] [--no-dask]
"""

import argparse
import contextlib
import os
import time

import numpy as np
from joblib import parallel_config

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.scoring._parallel import available_cpus

PROMPT = "Is this SMS message spam or ham?\n\nSMS: {text}\nIt is"


def _texts(n):
    X, y = load_sms_spam(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = [i for i in rng.permutation(len(X)) if len(X[i]) < 100]
    return list(X[idx[: n + 4]]), y[idx[: n + 4]]


def _raw_llama(backend, cores):
    from llama_cpp import Llama

    from sklearn_llmconf.backends.llamacpp._backend import without_extra_buffer_types

    with without_extra_buffer_types():
        llama = Llama(model_path=backend._resolved_path(), n_ctx=2048,
                      n_threads=cores, n_threads_batch=cores, logits_all=False,
                      verbose=False)

    def run(tokens):
        for toks in tokens:
            llama.n_tokens = 0
            llama.eval(toks)
            np.ctypeslib.as_array(llama._ctx.get_logits(),
                                  shape=(llama.n_vocab(),)).copy()
    return run


def _seconds(run):
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat all modes, interleaved; the median is shown")
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()

    texts, labels = _texts(args.n)
    X_warm, X = texts[: args.workers * 2], texts[args.workers * 2:][: args.n]
    cores = available_cpus()
    W = args.workers

    def make(n_jobs):
        # n_threads=None: all cores in one process, cores // W in a worker.
        return LLMClassifier(backend=LlamaCppBackend(), prompt=PROMPT, n_shots=0,
                             calibration=None, n_jobs=n_jobs).fit(texts, labels)

    stack = contextlib.ExitStack()
    one, many = make(1), make(W)
    tokens = [one.backend.tokenize(p.text) for p in one._render([(t,) for t in X])]
    raw = _raw_llama(one.backend, cores)
    modes = {
        "raw llama-cpp-python, 1 process": (f"1 x {cores}", lambda: raw(tokens)),
        "LLMClassifier n_jobs=1": (f"1 x {cores}", lambda: one.predict_proba(X)),
        f"LLMClassifier n_jobs={W} (loky)": (f"{W} x {max(cores // W, 1)}",
                                             lambda: many.predict_proba(X)),
    }
    one.predict_proba(X_warm)
    many.predict_proba(X_warm)  # workers started, one model loaded per worker
    if not args.no_dask:
        from distributed import Client, LocalCluster

        cluster = stack.enter_context(LocalCluster(
            n_workers=W, threads_per_worker=1, processes=True,
            dashboard_address=None))
        stack.enter_context(Client(cluster))
        on_dask = make(-1)

        def dask_run():
            with parallel_config(backend="dask"):
                return on_dask.predict_proba(X)

        with parallel_config(backend="dask"):
            on_dask.predict_proba(X_warm)
        modes[f"Dask LocalCluster, {W} processes"] = (f"{W} x 1", dask_run)

    seconds = {name: [] for name in modes}
    outputs, loads = {}, [os.getloadavg()[0]]
    with stack:
        for _ in range(args.rounds):
            for name, (_, run) in modes.items():
                s, outputs[name] = _seconds(run)
                seconds[name].append(s)
            loads.append(os.getloadavg()[0])
    reference = outputs["LLMClassifier n_jobs=1"]

    print(f"{len(X)} SMS texts, zero-shot, {np.mean([len(t) for t in tokens]):.0f} "
          f"tokens per prompt on average; {cores} cores; {args.rounds} round(s), "
          "modes interleaved; load average at the start and after each round: "
          + ", ".join(f"{v:.1f}" for v in loads) + ".")
    print(f"\n{'mode':36s} {'procs x threads':>15s} {'seconds':>8s} {'texts/s':>8s} "
          f"{'vs raw':>7s} {'max |dp|':>9s}")
    print("-" * 88)
    raw_s = float(np.median(seconds["raw llama-cpp-python, 1 process"]))
    failed = False
    for name, (layout, _) in modes.items():
        s = float(np.median(seconds[name]))
        if name.startswith("raw"):
            d = "-"
        else:
            diff = float(np.abs(outputs[name] - reference).max())
            failed |= diff != 0.0
            d = f"{diff:.1e}"
        print(f"{name:36s} {layout:>15s} {s:8.2f} {len(X) / s:8.2f} "
              f"{raw_s / s:7.2f} {d:>9s}")
    if args.rounds > 1:
        print("\nseconds per round: " + "; ".join(
            f"{name.split(',')[0]}: " + ", ".join(f"{v:.0f}" for v in values)
            for name, values in seconds.items()))
    if failed:
        raise SystemExit("probabilities differ between modes")


if __name__ == "__main__":
    main()
