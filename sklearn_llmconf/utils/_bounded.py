"""A small thread-safe mapping that keeps its most recently used entries.

The process-wide registries (loaded models, file fingerprints) are shared by
every estimator and thread of a process; unbounded, a long-running service
that cycles through model files would keep every one of them in memory.
"""

from __future__ import annotations

import threading

__all__ = ["BoundedDict", "memoized_rows"]


class BoundedDict:
    """A mapping holding at most ``maxsize`` entries, least recently used out.

    Every operation takes the mapping's lock, so threads may share it. Reading
    an entry (``d[key]``, ``d.get(key)``) makes it the most recently used;
    ``key in d`` does not. A value evicted here stays alive for whoever still
    holds it.

    Parameters
    ----------
    maxsize : int
        Entries kept; at least 1.
    """

    def __init__(self, maxsize: int):
        if int(maxsize) < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize!r}.")
        self.maxsize = int(maxsize)
        self._data: dict = {}
        self._lock = threading.RLock()

    def __getitem__(self, key):
        with self._lock:
            value = self._data.pop(key)
            self._data[key] = value  # now the most recent
            return value

    def get(self, key, default=None):
        with self._lock:
            return self[key] if key in self._data else default

    def __setitem__(self, key, value):
        with self._lock:
            self._data.pop(key, None)
            self._data[key] = value
            while len(self._data) > self.maxsize:
                del self._data[next(iter(self._data))]

    def __contains__(self, key):
        with self._lock:
            return key in self._data

    def __len__(self):
        with self._lock:
            return len(self._data)

    def items(self):
        """A list of the (key, value) pairs, least recently used first."""
        with self._lock:
            return list(self._data.items())

    def keys(self):
        """A list of the keys, least recently used first."""
        with self._lock:
            return list(self._data)

    def clear(self):
        with self._lock:
            self._data.clear()


def memoized_rows(keys, memo: BoundedDict, compute) -> list:
    """One value per key: remembered ones from ``memo``, the others computed.

    Each missing key is computed once, however often it repeats in ``keys``:
    ``compute(first)`` receives the index in ``keys`` of each missing key's
    first occurrence and returns their values in that order; they are
    remembered in ``memo``.

    Parameters
    ----------
    keys : list of hashable
    memo : BoundedDict
    compute : callable
        ``compute(list of int) -> sequence of values``.

    Returns
    -------
    values : list
        ``values[i]`` for ``keys[i]``.
    """
    values = [None] * len(keys)
    missing: dict = {}
    for i, key in enumerate(keys):
        hit = memo.get(key)
        if hit is None:
            missing.setdefault(key, []).append(i)
        else:
            values[i] = hit
    if missing:
        first = [rows[0] for rows in missing.values()]
        for (key, rows), value in zip(missing.items(), compute(first)):
            memo[key] = value
            for i in rows:
                values[i] = value
    return values
