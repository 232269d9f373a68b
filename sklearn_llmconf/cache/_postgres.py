"""The response cache on a PostgreSQL server, shared by workers on several machines.

Same interface and keys as the SQLite :class:`~sklearn_llmconf.ResponseCache`;
``LLMClassifier(cache="postgresql://...")`` builds one of these.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..utils._optional import import_optional
from ._credentials import wrap_secret_url
from ._sqlite import ResponseCache

__all__ = ["PostgresResponseCache"]

URL_SCHEMES = ("postgresql://", "postgres://")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def is_postgres_url(path) -> bool:
    """Whether ``path`` names a PostgreSQL server rather than an SQLite file."""
    return isinstance(path, str) and path.startswith(URL_SCHEMES)


def _import_psycopg():
    return import_optional("psycopg", extra="postgres",
                           needed_by="A PostgreSQL response cache")


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresResponseCache(ResponseCache):
    """The response cache in one table of a PostgreSQL database.

    Every worker of a cluster (joblib, Dask, Ray, several machines) reads and
    writes the same rows, so a text scored anywhere is never paid for again.
    Each thread and each process opens its own connection lazily; connections
    are dropped on pickling. Each :meth:`set_many` is one transaction: a worker
    killed mid-write leaves either all of its rows or none.

    ``LLMClassifier(cache="postgresql://...")`` builds this class (see
    :func:`~sklearn_llmconf.cache.open_cache`).

    Parameters
    ----------
    url : str
        A libpq connection URL, ``postgresql://user@host:5432/dbname``. Keep the
        password out of it (use ``PGPASSWORD`` or ``~/.pgpass``, which libpq
        reads in every worker): a URL travels in pickles sent to workers.
    timeout : float, default=60.0
        Seconds to wait for a connection, and for a row lock held by another
        writer.
    table : str, default="sklearn_llmconf_responses"
        The table, created on first use. Different tables keep unrelated
        projects apart in one database.

    Notes
    -----
    Keys are those of :meth:`ResponseCache.make_key`, so rows can be copied
    between the SQLite and the PostgreSQL cache. Requires ``psycopg`` 3
    (``pip install 'sklearn-llmconf[postgres]'``).
    """

    # Damaged rows raise (the SQLite cache's default); keys are plain SHA-256.
    on_corrupt = "raise"
    key_secret_env = None

    @property
    def path(self) -> str:
        """The server URL, password masked: what error messages name."""
        return _mask_password(str(self.url))

    def __init__(self, url, timeout=60.0, table="sklearn_llmconf_responses"):
        self.url = wrap_secret_url(url)  # the password is not pickled
        self.timeout = float(timeout)
        self.table = table
        self._local = threading.local()

    # -- connection -----------------------------------------------------------
    def _conn(self):
        local = self._local
        conn = getattr(local, "conn", None)
        # A connection inherited through fork belongs to the parent: reopen.
        if conn is not None and local.pid == os.getpid() and not conn.closed:
            return conn
        if not _TABLE_NAME.match(str(self.table)):
            raise ValueError(
                f"table must be a plain SQL identifier, got {self.table!r}."
            )
        psycopg = _import_psycopg()
        conn = psycopg.connect(
            self.url, autocommit=True, connect_timeout=max(1, int(self.timeout))
        )
        conn.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")
        with conn.transaction():
            # Concurrent CREATE TABLE IF NOT EXISTS can still collide in the
            # catalogue; a transaction-scoped advisory lock serialises it.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(key TEXT PRIMARY KEY, value BYTEA NOT NULL)"
            )
        local.conn = conn
        local.pid = os.getpid()
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local = threading.local()

    def __repr__(self):
        return f"PostgresResponseCache({_mask_password(self.url)!r})"

    # -- data -----------------------------------------------------------------
    def _select(self, conn, keys) -> list:
        """(key, blob) rows stored for ``keys``; get_many is the base class's."""
        return conn.execute(
            f"SELECT key, value FROM {self.table} WHERE key = ANY(%s)", (list(keys),)
        ).fetchall()

    def set_many(self, mapping: Mapping[str, np.ndarray]) -> None:
        """Store rows, replacing existing ones, in one transaction.

        Parameters
        ----------
        mapping : dict of str to array-like of float
        """
        # Sorted keys make every writer lock rows in one order: two writers
        # upserting overlapping keys then wait for each other, never deadlock.
        keys = sorted(mapping)
        if not keys:
            return
        values = [
            np.ascontiguousarray(mapping[key], dtype="<f8").ravel().tobytes()
            for key in keys
        ]
        conn = self._conn()
        with conn.transaction():
            conn.execute(
                f"INSERT INTO {self.table} (key, value) "
                "SELECT * FROM unnest(%s::text[], %s::bytea[]) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (keys, values),
            )

    def __len__(self) -> int:
        return self._conn().execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]

    def __contains__(self, key) -> bool:
        row = (
            self._conn()
            .execute(f"SELECT 1 FROM {self.table} WHERE key = %s", (key,))
            .fetchone()
        )
        return row is not None

    def clear(self) -> None:
        """Delete every stored row."""
        self._conn().execute(f"DELETE FROM {self.table}")
