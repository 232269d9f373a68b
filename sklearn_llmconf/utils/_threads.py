"""Thread counts for the embedded models: the cores this process may use, and
a count chosen by measurement while the machine does other work.

llama.cpp and torch's intra-op pool make their worker threads wait for each
other at every barrier of a forward pass, spinning first (GNU OpenMP: 300,000
spins). On an idle machine several threads are fastest; on a machine where
another process holds a core, a thread spins while it waits for one that the
scheduler took off its core: on 2 cores beside one busy process, 2 llama.cpp
threads were 1.6-3x slower than 1 (``benchmarks/bench_shared_cpu.py``). No
setting of llama-cpp-python 0.3.36 stops the spinning (its binding of
``llama_attach_threadpool`` is a TODO, and the OpenMP build's barrier is
``#pragma omp barrier``, whose spinning libgomp fixes when it is loaded), so
:class:`ThreadChooser` measures instead: it times the work with each candidate
count, keeps the fastest, and measures again when the machine changes. One
thread has no barrier to wait at.
"""

from __future__ import annotations

import os
import time

__all__ = ["ThreadChooser", "available_cpus", "default_n_threads"]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_n_threads() -> int:
    """Threads for one embedded model in this process: the most it may use.

    All available CPUs, capped by ``OMP_NUM_THREADS`` when it is set. joblib sets
    it in each ``loky`` worker to ``cpu_count() // n_jobs`` (or to
    ``parallel_config(inner_max_num_threads=...)``), and Dask's nanny sets it to
    1 in worker processes: so ``GridSearchCV(n_jobs=2)`` or
    ``LLMClassifier(n_jobs=2)`` on 2 cores runs two 1-thread models, not two
    2-thread models that would spin against each other. The embedded backends
    use this as the upper bound of :class:`ThreadChooser`.

    Returns
    -------
    n_threads : int
    """
    n = available_cpus()
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        n = min(n, int(limit))
    return n


def _machine_cpu_times():
    """``(idle, total, n_cpus)`` jiffies of the whole machine, or None.

    Read from ``/proc/stat`` (Linux); idle counts ``idle`` and ``iowait``.
    """
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    fields = [int(v) for v in lines[0].split()[1:]]
    n_cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return fields[3] + fields[4], sum(fields[:8]), max(1, n_cpus)


class ThreadChooser:
    """Choose, by timing the work itself, the thread count that is fastest now.

    The candidates are ``max_threads``, half of it and 1. Each is timed on the
    next units of work (a unit is whatever the caller times, e.g. one prompt's
    evaluation, with its token count), the fastest per token is kept, and the
    candidates are timed again:

    * after the kept count has run for ``interval`` seconds, an interval that
      starts at ``min_interval`` and doubles each time the same count wins
      again (up to ``max_interval``), so that re-measuring costs a few percent;
    * at once when the kept count has become ``slowdown`` times slower per
      token than its usual speed (another process started);
    * when the machine had at least one idle core during the last window while
      fewer than ``max_threads`` threads are kept (another process stopped).

    A candidate's timing stops as soon as it is clearly slower than the best
    one so far, so trying a bad count under load costs about one unit.

    Parameters
    ----------
    max_threads : int
        The most threads to use (:func:`default_n_threads`).
    apply : callable
        ``apply(n_threads)`` sets the count on the live model; called only when
        the count changes.
    min_seconds : float, default=0.2
        Work timed per candidate (at least one unit).
    min_interval, max_interval : float, default=2.0, 60.0
        Seconds of work between re-measurements (see above).
    slowdown : float, default=1.5
        Per-token slow-down of the kept count that triggers a re-measurement.
    clock : callable, default=time.perf_counter
    cpu_times : callable or None, default=_machine_cpu_times
        ``() -> (idle, total, n_cpus)`` cumulative CPU times of the machine, or
        None when unknown; None disables the idle-core signal.

    Attributes
    ----------
    n_threads : int
        The count in use now.
    history : list of tuple
        ``(n_threads, seconds_per_token)`` for every finished timing, in order.
    """

    def __init__(self, max_threads, apply, *, min_seconds=0.2, min_interval=2.0,
                 max_interval=60.0, slowdown=1.5, clock=time.perf_counter,
                 cpu_times=_machine_cpu_times):
        self.max_threads = max(1, int(max_threads))
        self.candidates = sorted({self.max_threads, max(1, self.max_threads // 2), 1},
                                 reverse=True)
        self._apply = apply
        self.min_seconds = min_seconds
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.slowdown = slowdown
        self._clock = clock
        self._cpu_times = cpu_times if self.max_threads > 1 else None
        self.n_threads = self.max_threads  # the model starts with it
        self.history = []
        self._interval = min_interval
        self._best = None  # (n_threads, seconds per token) when last chosen
        # The first unit (the pool starting, buffers allocated, usually a long
        # shared prefix evaluated) says little about the next ones: not timed.
        self._skip = 1
        self._start_probe()

    # -- the caller's side -----------------------------------------------------
    def begin(self) -> int:
        """The thread count for the next unit of work (applied to the model)."""
        return self.n_threads

    def record(self, n_tokens, seconds) -> None:
        """Account one unit of work: ``n_tokens`` evaluated in ``seconds``."""
        if len(self.candidates) == 1 or n_tokens <= 0:
            return
        if self._skip:
            self._skip -= 1
            return
        self._tokens += n_tokens
        self._seconds += seconds
        if self._probing is not None:
            self._probe_step()
        else:
            self._exploit_step()

    # -- measuring ---------------------------------------------------------------
    def _set(self, n):
        if n != self.n_threads:
            self.n_threads = n
            self._apply(n)
        self._tokens = 0
        self._seconds = 0.0
        self._window_cpu = self._cpu_times() if self._cpu_times else None

    def _start_probe(self, order=None, known=None):
        """Time each count of ``order`` in turn; ``known`` maps counts already
        timed (the kept count's last window) to their seconds per token."""
        self._rates = dict(known or {})
        if order is None:
            order = [n for n in self.candidates if n not in self._rates]
        self._probing = list(order)
        self._set(self._probing[0])

    def _probe_step(self):
        rate = self._seconds / self._tokens
        best = min(self._rates.values(), default=None)
        clearly_worse = best is not None and rate > 1.5 * best
        if self._seconds < self.min_seconds and not clearly_worse:
            return
        self._rates[self.n_threads] = rate
        self.history.append((self.n_threads, rate))
        self._probing.pop(0)
        if self._probing:
            self._set(self._probing[0])
            return
        self._probing = None
        chosen = min(self._rates, key=self._rates.get)
        if self._best is not None and self._best[0] == chosen:
            self._interval = min(2 * self._interval, self.max_interval)
        else:
            self._interval = self.min_interval
        self._best = (chosen, self._rates[chosen])
        self._reference = self._rates[chosen]
        self._since_probe = 0.0
        self._set(chosen)

    def _exploit_step(self):
        if self._seconds < max(self.min_seconds, 0.5):
            return
        rate = self._seconds / self._tokens
        self._since_probe += self._seconds
        idle = self._idle_cores()
        # Against the kept count's usual speed: a short timing that happened
        # to be fast must not make every later window look slow.
        slower = rate > self.slowdown * self._reference
        self._reference = 0.8 * self._reference + 0.2 * rate
        freed = (idle is not None and idle >= 0.9 and self.n_threads < self.max_threads
                 and self._since_probe >= max(self.min_interval, self._interval / 4))
        # The interval is reset only when the measurement changes the choice
        # (_probe_step): a false alarm does not make measuring more frequent.
        if slower or freed or self._since_probe >= self._interval:
            # The window just timed is the kept count's measurement.
            self.history.append((self.n_threads, rate))
            self._start_probe(known={self.n_threads: rate})
        else:
            self._set(self.n_threads)  # a new window

    def _idle_cores(self):
        if self._window_cpu is None:
            return None
        now = self._cpu_times()
        if now is None:
            return None
        idle = now[0] - self._window_cpu[0]
        total = now[1] - self._window_cpu[1]
        return None if total <= 0 else now[2] * idle / total
