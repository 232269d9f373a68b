"""Persistent response cache: one SQLite file, safe under threads and processes.

Cross-validation, grid search and calibration score the same texts many times;
the cache makes each (backend identity, rendered prompt, labels) pay once, and an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._file import (
    check_file,
    check_secret,
    decode_rows,
    keyed,
    read_secret,
    stamp,
)

__all__ = ["ResponseCache"]

# SQLite's historical limit on bound parameters per statement is 999.
_CHUNK = 900
# Reads of a file being set up by another writer (0.05 s apart).
_SETUP_RETRIES = 20
_SCHEMA_VERSION = 1


def _json_default(obj):
    # numpy scalars/arrays and sets appear in identities; everything else is a
    # programming error that should surface rather than hash unstably.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(
        f"cache key component of type {type(obj).__name__} is not JSON-serialisable"
    )


class ResponseCache:
    """A persistent map from request keys to per-label log-probability rows.

    One SQLite file in WAL mode with a busy timeout: concurrent readers never
    block, concurrent writers (threads or processes) wait for each other instead
    of failing. Each thread and each process opens its own connection lazily;
    connections are dropped on pickling, so a cache can be shipped to joblib
    workers.

    Parameters
    ----------
    path : str or path-like
        The SQLite file; created (with its parent folder) on first use. For a
        server URL ``postgresql://user@host/db`` use
        :class:`~sklearn_llmconf.PostgresResponseCache` (``cache=`` of the
        classifier accepts both, see :func:`~sklearn_llmconf.cache.open_cache`).
    timeout : float, default=60.0
        Seconds a writer waits for a lock held by another writer.
    on_corrupt : {"raise", "rescore"}, default="raise"
        What a damaged row (bytes that are no float64 row, or a row of another
        length than the request's labels) does: raise an error naming the file
        and the fix, or count as a miss, so that it is scored again and
        overwritten (with a warning).
    key_secret_env : str or None, default=None
        Name of an environment variable holding a secret: the file then stores
        HMAC-SHA-256 keys under it instead of plain SHA-256 keys, so that
        someone who can read the file but not the secret cannot test whether
        a given text was scored. Every process sharing the file needs the
        same secret; the secret itself is never stored or pickled.

    Notes
    -----
    Keys are built by :meth:`make_key` from a backend's ``cache_identity()``,
    which by contract holds nothing secret; values are float64 rows with NaN
    preserved. The file carries SQLite's application id ``"LLMC"`` and a
    schema version: a file that is not a response cache is refused unchanged.
    """

    def __init__(self, path, timeout=60.0, on_corrupt="raise", key_secret_env=None):
        if type(self) is ResponseCache and str(path).startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError(
                "ResponseCache stores an SQLite file; for a PostgreSQL server use "
                "PostgresResponseCache(url), or pass the URL as "
                "LLMClassifier(cache=url)."
            )
        if on_corrupt not in ("raise", "rescore"):
            raise ValueError(
                f"on_corrupt must be 'raise' or 'rescore', got {on_corrupt!r}."
            )
        self.path = Path(path)
        self.timeout = float(timeout)
        self.on_corrupt = on_corrupt
        self.key_secret_env = key_secret_env
        self._local = threading.local()

    def _stored(self, keys) -> list:
        """The keys as stored: HMAC under the secret with ``key_secret_env``."""
        secret = getattr(self._local, "secret", None)
        return [keyed(secret, k) for k in keys] if secret else list(keys)

    # -- keys ---------------------------------------------------------------
    @staticmethod
    def make_key(
        identity: dict,
        prompt_text: str,
        labels: Sequence[str],
        extra: dict | None = None,
    ) -> str:
        """Return the sha256 hex digest of a canonical JSON of the request.

        Parameters
        ----------
        identity : dict
            A backend's ``cache_identity()``.
        prompt_text : str
            The fully rendered prompt.
        labels : sequence of str
            The label strings, in order (order changes the row's meaning).
        extra : dict, default=None
            Anything else that changes the result (e.g. the scoring strategy).

        Returns
        -------
        key : str
        """
        payload = {
            "v": _SCHEMA_VERSION,
            "identity": identity,
            "prompt": prompt_text,
            "labels": list(labels),
            "extra": extra or {},
        }
        text = json.dumps(
            payload,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=True,
            default=_json_default,
        )
        # "surrogatepass": a text holding a lone surrogate (e.g. from a JSON
        # "\ud800" escape) still gets a key; valid text encodes as plain UTF-8,
        # so keys of existing caches do not change.
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    # -- connection -----------------------------------------------------------
    @contextmanager
    def _named_errors(self):
        """Turn SQLite's file-level errors into ones naming the file and the fix."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise sqlite3.DatabaseError(
                    f"The response cache file {str(self.path)!r} is corrupt or is "
                    f"not a response cache ({exc}). Move it aside or delete it "
                    "(together with its -wal and -shm files) to start an empty "
                    "cache: only cached scores are lost, and they are recomputed "
                    "on demand."
                ) from exc
            if code == sqlite3.SQLITE_CANTOPEN:
                raise sqlite3.OperationalError(
                    f"Cannot open the response cache file {str(self.path)!r} "
                    f"({exc}): check that the path names a file, not a folder, "
                    "and that its folder is writable."
                ) from exc
            if code == sqlite3.SQLITE_BUSY or "locked" in str(exc):
                raise sqlite3.OperationalError(
                    f"The response cache file {str(self.path)!r} stayed locked by "
                    f"another writer for more than timeout={self.timeout:g} s "
                    f"({exc}). Wait for the other process, pass a longer timeout "
                    "(ResponseCache(path, timeout=...)), or give each job its own "
                    "cache file."
                ) from exc
            if code == sqlite3.SQLITE_READONLY:
                raise sqlite3.OperationalError(
                    f"Cannot write the response cache file {str(self.path)!r} "
                    f"({exc}): it or its folder is read-only. Make both writable "
                    "(the -wal and -shm files live next to it), or copy the "
                    "file to a writable place."
                ) from exc
            raise
        except OSError as exc:
            raise type(exc)(
                f"Cannot create the response cache file {str(self.path)!r} "
                f"({exc}): choose a path whose folders can be created and "
                "written."
            ) from exc

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn = getattr(local, "conn", None)
        # A connection inherited through fork belongs to the parent: reopen.
        if conn is not None and getattr(local, "pid", None) == os.getpid():
            return conn
        local.secret = read_secret(self.key_secret_env)
        with self._named_errors():
            conn = self._connect()
        local.conn = conn
        local.pid = os.getpid()
        return conn

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path), timeout=self.timeout, isolation_level=None
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        # Switching to WAL needs a lock another process may hold at this moment.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                # Read-only checks first: a foreign file is left as it was.
                needs_stamp = self._check_file(conn)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS responses "
                    "(key TEXT PRIMARY KEY, value BLOB NOT NULL)"
                )
                if needs_stamp:
                    stamp(conn)
                check_secret(conn, self.path, self._local.secret)
                break
            except sqlite3.DatabaseError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.01)
            except BaseException:
                conn.close()
                raise
        return conn

    def _check_file(self, conn) -> bool:
        """:func:`check_file`, read again while another writer sets the file up.

        A new file is created, then stamped, by its first writer; a second
        writer reading it in between sees a table without the application id.
        """
        for attempt in range(_SETUP_RETRIES):
            try:
                return check_file(conn, self.path)
            except ValueError:
                if attempt == _SETUP_RETRIES - 1:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_local", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def __repr__(self):
        return f"ResponseCache({str(self.path)!r})"

    # -- data -----------------------------------------------------------------
    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the stored rows for the keys that are present.

        Parameters
        ----------
        keys : sequence of str

        Returns
        -------
        rows : dict of str to ndarray of float64
            Missing keys are absent from the dict.
        """
        keys = list(dict.fromkeys(keys))
        out: dict[str, np.ndarray] = {}
        if not keys:
            return out
        conn = self._conn()
        stored = dict(zip(self._stored(keys), keys))
        found = []
        for start in range(0, len(keys), _CHUNK):
            chunk = list(stored)[start : start + _CHUNK]
            found.extend((stored[k], blob) for k, blob in self._select(conn, chunk))
        out.update(decode_rows(self.path, found, self.on_corrupt))
        return out

    def _select(self, conn, keys) -> list:
        """(key, blob) rows stored for ``keys``; one query per chunk."""
        marks = ",".join("?" * len(keys))
        with self._named_errors():
            return conn.execute(
                f"SELECT key, value FROM responses WHERE key IN ({marks})", keys
            ).fetchall()

    def set_many(self, mapping: Mapping[str, np.ndarray]) -> None:
        """Store rows, replacing existing ones, in one transaction.

        Parameters
        ----------
        mapping : dict of str to array-like of float
        """
        if not mapping:
            return
        conn = self._conn()
        items = [
            (key, np.ascontiguousarray(row, dtype="<f8").ravel().tobytes())
            for key, row in zip(self._stored(mapping), mapping.values())
        ]
        with self._named_errors():
            # BEGIN IMMEDIATE takes the write lock up front, so concurrent writers
            # queue on the busy timeout instead of deadlocking on a lock upgrade.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)",
                    items,
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def __len__(self) -> int:
        conn = self._conn()
        with self._named_errors():
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def __contains__(self, key) -> bool:
        conn = self._conn()
        with self._named_errors():
            row = conn.execute(
                "SELECT 1 FROM responses WHERE key = ?", (self._stored([key])[0],)
            ).fetchone()
        return row is not None

    def clear(self) -> None:
        """Delete every stored row."""
        conn = self._conn()
        with self._named_errors():
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM responses")
            conn.execute("COMMIT")
