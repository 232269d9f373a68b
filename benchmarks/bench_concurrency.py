"""Throughput of OpenAIBackend versus ``max_concurrency``.

Runs against the fault-injecting test server in fixed-latency mode (every request
takes ``--latency`` seconds server-side) and prints, per concurrency level, the
wall time and its ratio to the ideal ``n * latency / concurrency``.

    python benchmarks/bench_concurrency.py [--n 1000] [--latency 0.05]

Concurrency 1 uses ``n // 10`` texts (sequential requests; 1,000 would take
50 s) and its wall time is reported both measured and scaled by 10.
"""

import argparse
import time

from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.utils import FaultServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--levels", default="1,4,16,64")
    args = parser.parse_args()

    server = FaultServer().start()
    try:
        backend = OpenAIBackend(
            "bench", base_url=server.base_url, logit_bias=False, timeout=30.0
        )
        backend.score_labels(["warm up"], [" ham", " spam"])  # label spec, imports
        server.latency = args.latency
        rows = []
        for conc in (int(c) for c in args.levels.split(",")):
            n = args.n // 10 if conc == 1 else args.n
            texts = [f"benchmark text {conc}-{i}" for i in range(n)]
            backend.set_params(max_concurrency=conc)
            start = time.perf_counter()
            res = backend.score_labels(texts, [" ham", " spam"])
            wall = time.perf_counter() - start
            assert res.usage.calls == n
            scale = args.n / n
            ideal = args.n * args.latency / conc
            rows.append((conc, n, wall, wall * scale, ideal, wall * scale / ideal))
    finally:
        server.stop()

    print(f"n={args.n} texts, server latency {args.latency * 1000:.0f} ms/request")
    print(
        f"{'conc':>5} {'texts':>6} {'wall s':>8} {'wall s@n':>9} {'ideal s':>8} "
        f"{'ratio':>6}"
    )
    for conc, n, wall, scaled, ideal, ratio in rows:
        print(
            f"{conc:>5} {n:>6} {wall:>8.2f} {scaled:>9.2f} {ideal:>8.2f} {ratio:>6.2f}"
        )


if __name__ == "__main__":
    main()
