"""The embedded models' thread counts: the cap from the environment and the
count chosen by timing (simulated machines here; the real model in
tests/backends/test_llamacpp_threads.py)."""

import pytest

from sklearn_llmconf.scoring import _parallel
from sklearn_llmconf.utils import _threads
from sklearn_llmconf.utils._threads import ThreadChooser


def test_scoring_re_exports_the_thread_defaults():
    assert _parallel.default_n_threads is _threads.default_n_threads
    assert _parallel.available_cpus is _threads.available_cpus


class Machine:
    """A simulated 2-core machine: seconds per token for each thread count,
    under the current load, and /proc/stat-like idle counters."""

    # Per-token seconds measured with the embedded model on 2 cores (bench).
    RATES = {"idle": {1: 0.0075, 2: 0.0043}, "busy": {1: 0.0075, 2: 0.066}}

    def __init__(self, load="idle"):
        self.load = load
        self.applied = []
        self.idle = 0.0
        self.total = 0.0
        self.n = 2

    def apply(self, n):
        self.applied.append(n)
        self.n = n

    def cpu_times(self):
        return self.idle, self.total, 2

    def run(self, chooser, n_tokens=30):
        """One unit of work with the chooser's count; returns its seconds."""
        n = chooser.begin()
        assert n == self.n  # the chooser applied what it returns
        seconds = n_tokens * self.RATES[self.load][n]
        others = 1 if self.load == "busy" else 0
        self.idle += seconds * max(0, 2 - n - others)
        self.total += seconds * 2
        chooser.record(n_tokens, seconds)
        return seconds


def make(machine, **kwargs):
    return ThreadChooser(2, machine.apply, cpu_times=machine.cpu_times, **kwargs)


def best_fixed(machine, n_units, n_tokens=30):
    return n_units * n_tokens * min(machine.RATES[machine.load].values())


@pytest.mark.parametrize("load, expected", [("idle", 2), ("busy", 1)])
def test_chooser_settles_on_the_fastest_count(load, expected):
    machine = Machine(load)
    chooser = make(machine)
    assert machine.applied == []  # starts with the count the model was loaded with
    seconds = sum(machine.run(chooser) for _ in range(3000))
    assert chooser.n_threads == expected
    assert {n for n, _ in chooser.history} == {1, 2}
    # Re-measuring costs little: within 10% (idle) / 25% (busy) of the best.
    limit = 1.1 if load == "idle" else 1.25
    assert seconds / best_fixed(machine, 3000) < limit


def test_chooser_follows_the_machine_when_load_starts_and_stops():
    machine = Machine("idle")
    chooser = make(machine)
    for _ in range(200):
        machine.run(chooser)
    assert chooser.n_threads == 2
    machine.load = "busy"
    counts = []
    for _ in range(300):
        counts.append(chooser.begin())
        machine.run(chooser)
    assert chooser.n_threads == 1
    # Noticed at once (slow-down trigger): one unit of 2 threads, then 1.
    assert counts[:3] == [2, 1, 1]
    machine.load = "idle"
    for _ in range(100):
        machine.run(chooser)
    assert chooser.n_threads == 2  # the idle core was noticed


def test_one_allowed_thread_is_never_changed():
    calls = []
    chooser = ThreadChooser(1, calls.append)
    for _ in range(50):
        assert chooser.begin() == 1
        chooser.record(30, 0.1)
    assert calls == [] and chooser.history == []
    assert chooser.candidates == [1]


def test_candidates_are_all_half_and_one():
    assert ThreadChooser(8, lambda n: None).candidates == [8, 4, 1]
    assert ThreadChooser(3, lambda n: None).candidates == [3, 1]
    assert ThreadChooser(2, lambda n: None).candidates == [2, 1]


def test_counts_never_exceed_max_threads():
    seen = []
    chooser = ThreadChooser(4, seen.append, cpu_times=lambda: None)
    for i in range(2000):
        n = chooser.begin()
        chooser.record(30, 0.01 * (1 + (i % 7)) / n)
    assert seen and set(seen) <= {1, 2, 4}
