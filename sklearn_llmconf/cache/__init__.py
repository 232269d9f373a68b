"""Response caches: one score per (backend identity, rendered prompt, labels).

- ``_sqlite``: :class:`ResponseCache`, the protocol's reference (``make_key``,
  ``get_many``, ``set_many``) over an SQLite file.
- ``_postgres``: :class:`PostgresResponseCache`, shared by several machines.
"""

from ._postgres import PostgresResponseCache
from ._sqlite import ResponseCache

__all__ = ["PostgresResponseCache", "ResponseCache"]
