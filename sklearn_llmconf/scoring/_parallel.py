"""Scoring in parallel workers through joblib, without oversubscribing the CPU.

Two rules keep ``workers x threads <= cores``:

* chunks of distinct prompts go to ``joblib.Parallel`` workers (``loky`` on one
  machine, ``dask`` or ``ray`` on a cluster, whatever ``parallel_config`` selects);
  the parent reads the cache before, and writes it after each chunk, so workers
  never need to reach the cache;
* an embedded model uses at most :func:`default_n_threads` threads
  (``sklearn_llmconf.utils._threads``), which honours the inner thread limit
  that joblib's ``loky`` workers (and Dask's worker processes) set through
  ``OMP_NUM_THREADS``, like BLAS does.
"""

from __future__ import annotations

import math

# Re-exported: they moved to the bottom layer, where the backends import them.
from ..utils._threads import available_cpus, default_n_threads

__all__ = ["available_cpus", "default_n_threads", "score_in_parallel", "score_with"]


def _chunks(indices, n_workers, batch_size):
    """Chunks of at most ``batch_size`` indices, at least one per worker."""
    size = min(batch_size, max(1, math.ceil(len(indices) / n_workers)))
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def score_in_parallel(score, items, indices, *, n_jobs, batch_size):
    """Yield ``(chunk, result)`` as workers finish ``score([items[i] for i in chunk])``.

    Parameters
    ----------
    score : callable
        ``score(list_of_items) -> result``; picklable, as it runs in workers,
        which receive only their chunk's items.
    items : sequence
        Everything that may be scored (e.g. the distinct prompts).
    indices : ndarray of int
        The positions in ``items`` to score, split into chunks in order.
    n_jobs : int or None
        As in scikit-learn: None is 1 unless inside ``parallel_config``, -1 all
        workers of the active joblib backend.
    batch_size : int
        Largest chunk: the parent writes the cache after each one.

    Yields
    ------
    chunk, result
        In completion order; with one effective worker, in order and in this
        process (nothing is pickled).
    """
    from joblib import Parallel, delayed, effective_n_jobs

    n_workers = effective_n_jobs(n_jobs) if len(indices) > 1 else 1
    if n_workers == 1:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            yield chunk, score([items[i] for i in chunk])
        return
    chunks = _chunks(indices, n_workers, batch_size)
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(_tagged)(score, i, [items[j] for j in chunk])
        for i, chunk in enumerate(chunks)
    )
    for i, result in results:
        yield chunks[i], result


def score_with(strategy, backend, labels, prompts):
    """``strategy.score(backend, prompts, labels)``, as a picklable partial."""
    return strategy.score(backend, prompts, labels)


def _tagged(score, i, chunk_items):
    return i, score(chunk_items)
