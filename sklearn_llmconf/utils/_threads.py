"""How many threads an embedded model may use in this process.

Below every stage: the backends size their thread pools with it and the
scoring engine sizes its workers with it.
"""

from __future__ import annotations

import os

__all__ = ["available_cpus", "default_n_threads"]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_n_threads() -> int:
    """Threads for one embedded model in this process.

    All available CPUs, capped by ``OMP_NUM_THREADS`` when it is set. joblib sets
    it in each ``loky`` worker to ``cpu_count() // n_jobs`` (or to
    ``parallel_config(inner_max_num_threads=...)``), and Dask's nanny sets it to
    1 in worker processes: so ``GridSearchCV(n_jobs=2)`` or
    ``LLMClassifier(n_jobs=2)`` on 2 cores runs two 1-thread models, not two
    2-thread models that would spin against each other.

    Returns
    -------
    n_threads : int
    """
    n = available_cpus()
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        n = min(n, int(limit))
    return n
