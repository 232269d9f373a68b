"""Throughput of OpenAIBackend versus ``max_concurrency``, and rate-limited runs.

Runs against the fault-injecting test server in fixed-latency mode (every request
takes ``--latency`` seconds server-side) and prints, per concurrency level, the
wall time and its ratio to the ideal ``n * latency / concurrency``. Then, with
the server enforcing a request quota (``rate_limit=(n, 1 s)``, HTTP 429 beyond
it) and the client set to the same ``max_requests_per_minute``, the most
requests the server saw in any 1-second window of its own clock, and its 429s.

    python benchmarks/bench_concurrency.py [--n 1000] [--latency 0.05]

Concurrency 1 uses ``n // 10`` texts (sequential requests; 1,000 would take
50 s) and its wall time is reported both measured and scaled by 10. The
backend is pinned to ``endpoint="chat"`` and the server's vocabulary as
``tokenizer`` so that only scoring requests are timed. The server runs in a
process of its own, as a real server does: in the client's process its
request handling would compete with the client for one interpreter lock.
"""

import argparse
import asyncio
import multiprocessing
import os
import time

from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.testing import FaultServer
from sklearn_llmconf.testing._fault_server import _tokenize

LABELS = [" ham", " spam"]


def _backend(server, **params):
    return OpenAIBackend("bench", base_url=server.base_url, api_key_env=None,
                         endpoint="chat", logit_bias=False, tokenizer=_tokenize,
                         timeout=30.0, **params)


class ServerProcess:
    """A :class:`FaultServer` in a child process, driven through a pipe."""

    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        self.base_url = self._conn.recv()

    def _ask(self, *message):
        self._conn.send(message)
        return self._conn.recv()

    def set(self, **attributes):
        self._ask("set", attributes)

    def reset(self):
        self._ask("reset")

    def stats(self):
        """(arrival times on the server's clock, number of 429 answers)."""
        return self._ask("stats")

    def stop(self):
        self._ask("stop")
        self._process.join(10)


def _serve(conn):
    server = FaultServer().start()
    conn.send(server.base_url)
    while True:
        command, *args = conn.recv()
        if command == "set":
            for name, value in args[0].items():
                setattr(server, name, value)
        elif command == "reset":
            server.reset()
        elif command == "stats":
            conn.send((list(server.arrivals), server.n_429))
            continue
        elif command == "stop":
            server.stop()
            conn.send(None)
            return
        conn.send(None)


def _max_in_window(times, window=1.0):
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def concurrency_rows(server, n_texts, latency, levels):
    backend = _backend(server)
    backend.score_labels(["warm up"], LABELS)  # label spec, imports
    server.set(latency=latency)
    rows = []
    for conc in levels:
        n = n_texts // 10 if conc == 1 else n_texts
        texts = [f"benchmark text {conc}-{i}" for i in range(n)]
        backend.set_params(max_concurrency=conc)
        start = time.perf_counter()
        res = backend.score_labels(texts, LABELS)
        wall = time.perf_counter() - start
        assert res.usage.calls == n
        scale = n_texts / n
        ideal = n_texts * latency / conc
        rows.append((conc, n, wall, wall * scale, ideal, wall * scale / ideal))
    return rows


async def _bare_sdk(base_url, n, conc):
    """``n`` chat requests through a bare ``AsyncOpenAI``, ``conc`` at a time."""
    import openai

    client = openai.AsyncOpenAI(api_key="unused", base_url=base_url, max_retries=0)
    sem = asyncio.Semaphore(conc)

    async def one(i):
        async with sem:
            await client.chat.completions.create(
                model="bench", messages=[{"role": "user", "content": f"bare {i}"}],
                max_tokens=1, temperature=0, logprobs=True, top_logprobs=20)

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()


def sdk_floor_rows(server, n_texts, latency, conc, repeats=3):
    """Wall / ideal of a bare SDK loop and of the backend, alternated."""
    backend = _backend(server, max_concurrency=conc)
    server.set(latency=latency)
    ideal = n_texts * latency / conc
    rows = []
    for rep in range(repeats):
        start = time.perf_counter()
        asyncio.run(_bare_sdk(server.base_url, n_texts, conc))
        bare = time.perf_counter() - start
        start = time.perf_counter()
        backend.score_labels([f"floor {rep}-{i}" for i in range(n_texts)], LABELS)
        rows.append((bare / ideal, (time.perf_counter() - start) / ideal))
    return rows


def rate_rows(server, latency, rpms, seconds=6):
    rows = []
    for rpm in rpms:
        server.reset()
        per_s = rpm // 60
        server.set(latency=latency, rate_limit=(per_s, 1.0))
        n = per_s * seconds
        backend = _backend(server, max_concurrency=16, max_requests_per_minute=rpm)
        start = time.perf_counter()
        res = backend.score_labels([f"rated {rpm}-{i}" for i in range(n)], LABELS)
        wall = time.perf_counter() - start
        failed = sum(e is not None and "HTTP" in e for e in res.errors)
        arrivals, n_429 = server.stats()
        rows.append((rpm, n, wall, n / wall * 60, _max_in_window(arrivals),
                     per_s, n_429, failed))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--levels", default="1,4,16,64")
    parser.add_argument("--rpm", default="600,1200")
    parser.add_argument("--sdk-floor", action="store_true",
                        help="also time a bare AsyncOpenAI loop at concurrency 16, "
                             "alternating with the backend")
    args = parser.parse_args()

    server = ServerProcess()
    try:
        rows = concurrency_rows(server, args.n, args.latency,
                                [int(c) for c in args.levels.split(",")])
        rated = rate_rows(server, args.latency,
                          [int(r) for r in args.rpm.split(",")])
        server.reset()
        floor = (sdk_floor_rows(server, args.n, args.latency, 16)
                 if args.sdk_floor else [])
    finally:
        server.stop()

    print(f"n={args.n} texts, server latency {args.latency * 1000:.0f} ms/request; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; "
          "asyncio client; threaded server in another process")
    print("ratio: wall / ideal (n x latency / conc); vs c=1: wall / (the measured "
          "sequential time per request x n / conc), what concurrency loses beyond "
          "the cost of one round trip")
    print(f"{'conc':>5} {'texts':>6} {'wall s':>8} {'wall s@n':>9} {'ideal s':>8} "
          f"{'ratio':>6} {'vs c=1':>7}")
    sequential = next((scaled / args.n for conc, _, _, scaled, _, _ in rows
                       if conc == 1), None)
    for conc, n, wall, scaled, ideal, ratio in rows:
        versus = ("" if sequential is None
                  else f"{scaled / (sequential * args.n / conc):>7.2f}")
        print(f"{conc:>5} {n:>6} {wall:>8.2f} {scaled:>9.2f} {ideal:>8.2f} "
              f"{ratio:>6.2f} {versus}")
    print()
    print("rate-limited: server admits rpm/60 requests per 1 s window (429 beyond), "
          "client max_requests_per_minute=rpm, max_concurrency=16")
    print(f"{'rpm':>6} {'texts':>6} {'wall s':>7} {'sent/min':>9} {'max/1s':>7} "
          f"{'limit':>6} {'429s':>5} {'failed':>7}")
    for rpm, n, wall, rate, most, limit, n429, failed in rated:
        print(f"{rpm:>6} {n:>6} {wall:>7.2f} {rate:>9.0f} {most:>7} {limit:>6} "
              f"{n429:>5} {failed:>7}")
    if floor:
        print()
        print("concurrency 16, wall / ideal, alternated: a bare AsyncOpenAI loop "
              "(chat.completions.create) vs OpenAIBackend.score_labels")
        for bare, backend in floor:
            print(f"  bare SDK {bare:.2f}   backend {backend:.2f}")


if __name__ == "__main__":
    main()
