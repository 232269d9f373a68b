"""The embedded model's speed on a machine that is doing other work, in one run.

The same scoring job (``LLMClassifier`` with its default 16-shot prompts on the
embedded SmolLM2-135M, ``predict_proba`` on SMS texts, no response cache) runs
in a fresh process for each setting: the default (``n_threads=None``: chosen
by measurement), fixed 1 and 2 threads (``n_threads=k, n_threads_batch=k``),
and fixed 2 threads and the default with ``OMP_WAIT_POLICY=passive`` (llama.cpp's
OpenMP threads sleep at barriers instead of spinning 300,000 times first,
libgomp's default). Each runs on the idle
machine, then beside 1 and then 2 busy processes (``python -c 'while True:
pass'``) that this script starts and stops itself. It prints wall and CPU
time per setting and the ratio of each to the best fixed setting (1, 2, 2
passive) in the same condition. Run it alone on the machine (it prints the
load average at its start)::

    PYTHONPATH=. python benchmarks/bench_shared_cpu.py [--n 120] \\
        [--out benchmarks/results/bench_shared_cpu.txt]
    PYTHONPATH=. python benchmarks/bench_shared_cpu.py \\
        --backend transformers --n 48 \\
        --out benchmarks/results/bench_shared_cpu_transformers.txt

``--backend transformers`` times ``TransformersBackend`` (torch; model loading
not timed) with fixed 1 and 2 threads and the default.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

SETTINGS = ["1", "2", "2-passive", "default", "default-passive"]
# "-passive": OMP_WAIT_POLICY=passive in the job's environment, so llama.cpp's
# OpenMP threads sleep at once at barriers instead of spinning (libgomp's
# default: 300,000 spins first). Not the package's default (it costs idle
# time); shown for users who run on a persistently shared machine.
FIXED = ["1", "2", "2-passive"]
NAMES = {"1": "fixed 1", "2": "fixed 2", "2-passive": "fixed 2, passive",
         "default": "default", "default-passive": "default, passive"}
BACKENDS = {"llamacpp": "LlamaCppBackend", "transformers": "TransformersBackend"}
CONDITIONS = [0, 1, 2]


def _cpu_seconds(pids=()):
    """CPU seconds used so far by the whole machine (all but idle and iowait),
    and by the processes ``pids`` (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    machine = (sum(fields[:8]) - fields[3] - fields[4]) / tick
    own = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            own += (int(stat[11]) + int(stat[12])) / tick
        except OSError:
            pass
    return machine, own


def child(setting, n, backend_name):
    """Fit, then time predict_proba on ``n`` texts; print one JSON line."""
    import numpy as np

    from sklearn_llmconf import LLMClassifier
    from sklearn_llmconf.backends import LlamaCppBackend, TransformersBackend
    from sklearn_llmconf.datasets import load_sms_spam

    X, y = load_sms_spam(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))
    train, test = order[:200], order[202 : 202 + n]
    k = None if setting.startswith("default") else int(setting.split("-")[0])
    if backend_name == "transformers":
        backend = TransformersBackend(n_threads=k)
    else:
        backend = LlamaCppBackend(n_threads=k, n_threads_batch=k)
    clf = LLMClassifier(backend=backend, calibration=None, random_state=0)
    clf.fit(X[train], y[train])  # demonstrations only: no model call
    if backend_name == "transformers":  # a 15-30 s load: not timed
        clf.backend._get_loaded()
    busy = [int(p) for p in os.environ.get("BENCH_BUSY_PIDS", "").split()]
    machine, busy_cpu = _cpu_seconds(busy)
    wall, cpu = time.perf_counter(), time.process_time()
    proba = clf.predict_proba(X[test])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    machine_after, busy_after = _cpu_seconds(busy)
    # CPU time of everything else on the machine meanwhile: neither this
    # job nor the busy processes this script started (should be ~0).
    other = (machine_after - machine) - cpu - (busy_after - busy_cpu)
    assert proba.shape == (n, 2) and clf.usage_.calls == n
    # Informative only: the count the backend ended with (private attributes).
    if backend_name == "transformers":
        chooser = clf.backend._get_loaded()._choosers
        threads = next(iter(chooser.values())).n_threads if chooser else k
    else:
        threads = clf.backend._get_model().llama.n_threads_batch
    print(json.dumps({"wall": wall, "cpu": cpu, "end_threads": threads,
                      "other": other, "p0": float(proba[0, 1])}))


def run_child(setting, n, backend_name, busy_pids):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "HF_HUB_OFFLINE": "1",
           "BENCH_BUSY_PIDS": " ".join(map(str, busy_pids))}
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS"):
        env.pop(name, None)
    if setting.endswith("-passive"):
        env["OMP_WAIT_POLICY"] = "passive"
    out = subprocess.run(
        [sys.executable, __file__, "--child", setting, "--n", str(n),
         "--backend", backend_name],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help="comma-separated subset of " + ",".join(SETTINGS))
    parser.add_argument("--out", default="benchmarks/results/bench_shared_cpu.txt")
    parser.add_argument("--backend", default="llamacpp",
                        choices=["llamacpp", "transformers"])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.n, args.backend)

    settings = args.settings.split(",")
    if args.backend == "transformers":  # torch: no wait-policy setting here
        settings = [s for s in settings if not s.endswith("-passive")]
    assert {"1", "2"} <= set(settings) <= set(SETTINGS), settings
    load = os.getloadavg()
    header = [
        "bench_shared_cpu: the main job's scoring (16-shot SMS prompts, "
        f"{args.n} texts, SmolLM2-135M via {BACKENDS[args.backend]}) per "
        "thread setting",
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "busy = `python -c 'while True: pass'` processes started beside the job; "
        "ratio = wall / the best fixed setting's wall in the same condition; "
        "others' CPU s = CPU time of other processes on the machine meanwhile "
        "(neither the job nor its busy processes; ~0 on a quiet machine)",
        "",
    ]
    print("\n".join(header), flush=True)
    rows = []
    for n_busy in CONDITIONS:
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(n_busy)]
        try:
            time.sleep(1.0 if n_busy else 0.0)
            pids = [p.pid for p in busy]
            results = {s: run_child(s, args.n, args.backend, pids) for s in settings}
        finally:
            for p in busy:
                p.terminate()
            for p in busy:
                p.wait()
        best = min(results[s]["wall"] for s in FIXED if s in results)
        same = {round(r["p0"], 12) for r in results.values()}
        for s in settings:
            r = results[s]
            rows.append([
                "idle" if not n_busy else f"{n_busy} busy",
                NAMES[s],
                f"{r['wall']:.1f}", f"{r['cpu']:.1f}",
                f"{r['wall'] / best:.2f}x", str(r["end_threads"]),
                f"{r['other']:.1f}",
            ])
            print("  ".join(rows[-1]), f"(same probabilities: {len(same) == 1})",
                  flush=True)
        time.sleep(2.0)
    columns = ["machine", "threads", "wall s", "CPU s", "vs best fixed",
               "threads at end", "others' CPU s"]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    table = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    table.append("-" * len(table[0]))
    table += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    text = "\n".join(header + table) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
