"""What a response cache file must be before it is used, and what its rows must hold.

A :class:`~sklearn_llmconf.ResponseCache` file carries SQLite's application id
(``"LLMC"``) and a schema version (``PRAGMA user_version``). A file that is
not a response cache (another application's database) is refused before
anything is written to it: no switch to WAL mode, no table added. A file
written before the application id existed (only the ``responses`` table, with
its two columns) is recognised and stamped.

Rows are checked when they are read: a value that is not a whole number of
float64 (damaged bytes) or has another length than the request's labels is
either an error naming the file and the fix (``on_corrupt="raise"``) or a
cache miss that is scored again and overwritten (``on_corrupt="rescore"``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import warnings

import numpy as np

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "check_file", "check_rows",
           "decode_rows", "keyed"]

APPLICATION_ID = 0x4C4C4D43  # "LLMC"
SCHEMA_VERSION = 1
_META = "sklearn_llmconf_meta"
_LEGACY = {"responses": ["key", "value"]}


def _tables(conn) -> dict:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
        "'sqlite_%'")]
    return {n: [r[1] for r in conn.execute(f'PRAGMA table_info("{n}")')]
            for n in names}


def check_file(conn, path) -> bool:
    """Raise unless ``conn``'s file is a response cache or empty; reads only.

    Returns
    -------
    stamp : bool
        True when the file still needs the application id and schema version
        (a new file, or one written before they existed).
    """
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = _tables(conn)
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"The response cache file {str(path)!r} has schema version "
                f"{version}, written by a newer sklearn_llmconf (this one reads "
                f"version {SCHEMA_VERSION}); it was left unchanged. Upgrade "
                "sklearn_llmconf, or use another cache file."
            )
        return False
    if app_id == 0 and version == 0 and (
            not tables or {n: c for n, c in tables.items() if n != _META} == _LEGACY):
        return True
    raise ValueError(
        f"The file {str(path)!r} is not a response cache of sklearn_llmconf "
        f"(SQLite application id {app_id:#x}, schema version {version}, tables "
        f"{sorted(tables)}); it was left unchanged. Point cache= at a new file, "
        "e.g. one next to it named responses.sqlite."
    )


def stamp(conn) -> None:
    """Write the application id and schema version (inside the caller's setup)."""
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def check_secret(conn, path, secret: bytes | None) -> None:
    """Refuse a file keyed with another secret (or keyed when unkeyed, and back)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {_META} "
                 "(name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute(f"SELECT value FROM {_META} WHERE name = 'keys'").fetchone()
    mine = ("hmac-sha256:" + keyed(secret, "fingerprint")[:16] if secret
            else "sha256")
    if row is None:
        n_rows = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        if secret and n_rows:
            raise ValueError(
                f"The response cache file {str(path)!r} holds {n_rows} rows with "
                "plain keys; keyed hashing (key_secret_env) needs a new file, "
                "or clear() this one first."
            )
        conn.execute(f"INSERT OR IGNORE INTO {_META} VALUES ('keys', ?)", (mine,))
    elif row[0] != mine:
        raise ValueError(
            f"The response cache file {str(path)!r} was written with "
            + ("another key secret" if secret and row[0] != "sha256"
               else "a key secret" if not secret else "plain keys")
            + f" ({row[0].split(':')[0]}), so none of its rows would be found. "
            "Set key_secret_env to the variable holding the secret it was "
            "written with, or use another file."
        )


def read_secret(env_name) -> bytes | None:
    """The key secret from the environment variable ``env_name`` (None: none)."""
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise RuntimeError(
            f"key_secret_env={env_name!r}: the environment variable is unset or "
            "empty, so cache keys cannot be hashed with it. Set it (the same "
            "value for every process sharing the cache), or pass "
            "key_secret_env=None."
        )
    return value.encode("utf-8")


def keyed(secret: bytes, key: str) -> str:
    """HMAC-SHA-256 of a request key under ``secret``."""
    return hmac.new(secret, key.encode("utf-8"), hashlib.sha256).hexdigest()


def _damaged(path, n_bad, n_rows, why, on_corrupt) -> None:
    message = (
        f"{n_bad} of {n_rows} rows read from the response cache "
        f"{str(path)!r} are damaged ({why})."
    )
    if on_corrupt == "raise":
        raise ValueError(
            message + " Pass on_corrupt='rescore' to the cache "
            "(ResponseCache(path, on_corrupt='rescore')) to score them again and "
            "overwrite them, or delete the file (with its -wal and -shm files): "
            "only cached scores are lost."
        )
    warnings.warn(message + " They are scored again and overwritten.",
                  UserWarning, stacklevel=4)


def decode_rows(path, rows, on_corrupt: str) -> dict:
    """``{key: float64 row}`` from ``(key, blob)``; damaged blobs per ``on_corrupt``."""
    out, bad = {}, 0
    for key, blob in rows:
        if not isinstance(blob, bytes | memoryview) or len(blob) % 8:
            bad += 1
            continue
        out[key] = np.frombuffer(blob, dtype="<f8").astype(np.float64)
    if bad:
        _damaged(path, bad, len(rows), "not a whole number of float64 values",
                 on_corrupt)
    return out


def check_rows(cache, hits: dict, n_labels: int) -> dict:
    """``hits`` less the rows whose length is not ``n_labels`` (``on_corrupt``)."""
    bad = [k for k, row in hits.items() if np.shape(row) != (n_labels,)]
    if not bad:
        return hits
    sizes = sorted({int(np.size(hits[k])) for k in bad})
    _damaged(getattr(cache, "path", None) or repr(cache), len(bad), len(hits),
             f"{sizes} values where the request has {n_labels} labels",
             getattr(cache, "on_corrupt", "raise"))
    return {k: v for k, v in hits.items() if k not in set(bad)}
