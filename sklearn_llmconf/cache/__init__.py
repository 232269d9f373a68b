"""Response caches: one score per (backend identity, rendered prompt, labels).

The protocol is two methods, ``get_many(keys) -> {key: row}`` and
``set_many({key: row})``, plus an optional ``make_key`` (the default is
:meth:`ResponseCache.make_key`).

- ``_sqlite``: :class:`ResponseCache`, the reference implementation over an
  SQLite file, and the key of a request.
- ``_postgres``: :class:`PostgresResponseCache`, shared by several machines.
- ``_memory``: :class:`MemoryCache`, the scores of ``fit`` when no cache is set.
- ``_open``: :func:`open_cache`, the one factory for every ``cache=`` value.
"""

from ._memory import MemoryCache
from ._open import key_function, open_cache
from ._postgres import PostgresResponseCache
from ._sqlite import ResponseCache

__all__ = [
    "MemoryCache",
    "PostgresResponseCache",
    "ResponseCache",
    "key_function",
    "open_cache",
]
