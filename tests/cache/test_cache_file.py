"""The cache defends its file (#22): foreign files, damaged rows, locks, paths, keys."""

import hashlib
import sqlite3

import numpy as np
import pytest

from sklearn_llmconf import LLMClassifier, ResponseCache
from sklearn_llmconf.testing import KeywordBackend

APPLICATION_ID = 0x4C4C4D43  # "LLMC": the file format, spelled out

X = ["win cash now", "see you at 6", "free prize", "lunch?"]
Y = ["spam", "ham", "spam", "ham"]


def _fit(cache):
    return LLMClassifier(backend=KeywordBackend(), n_shots=0, calibration=None,
                         cache=cache).fit(X, Y)


def _pragma(path, name):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def test_new_file_carries_application_id_and_schema_version(tmp_path):
    path = tmp_path / "c.sqlite"
    _fit(str(path)).predict_proba(X)
    assert _pragma(path, "application_id") == APPLICATION_ID
    assert _pragma(path, "user_version") == 1
    assert _pragma(path, "journal_mode") == "wal"


@pytest.mark.parametrize("schema", [
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
    "CREATE TABLE responses (id INTEGER PRIMARY KEY, body TEXT)",  # name clash
])
def test_foreign_file_is_refused_unchanged(tmp_path, schema):
    # Regression (#22): the file got a responses table and WAL mode, and a
    # foreign "responses" table gave "no such column: key" after the switch.
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute(schema)
    conn.execute("PRAGMA application_id = 42") if "users" in schema else None
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"app\.db' is not a response cache of "
                                         r"sklearn_llmconf.*left unchanged"):
        _fit(str(path)).predict_proba(X)
    assert path.read_bytes() == before
    assert _pragma(path, "journal_mode") == "delete"
    assert not (tmp_path / "app.db-wal").exists()


def test_cache_written_before_the_application_id_is_stamped(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
    conn.execute("INSERT INTO responses VALUES ('k', ?)",
                 (np.array([-0.1, -2.0]).tobytes(),))
    conn.commit()
    conn.close()
    cache = ResponseCache(path)
    np.testing.assert_array_equal(cache.get_many(["k"])["k"], [-0.1, -2.0])
    assert _pragma(path, "application_id") == APPLICATION_ID


def _damage(path, value):
    conn = sqlite3.connect(path)
    conn.execute("UPDATE responses SET value = ?", (value,))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("value, why", [
    (b"\x01\x02\x03\x04\x05", "not a whole number of float64"),
    (np.array([-1.0, -2.0, -3.0]).tobytes(), r"\[3\] values where the request has 2"),
])
def test_damaged_rows_name_the_file_and_can_be_rescored(tmp_path, value, why):
    # Regression (#22): raw numpy errors without a file name.
    path = tmp_path / "c.sqlite"
    clf = _fit(str(path))
    expected = clf.predict_proba(X)
    _damage(path, value)
    with pytest.raises(ValueError, match=rf"4 of 4 rows read from the response "
                                         rf"cache '.*c\.sqlite' are damaged \({why}"
                                         rf".*on_corrupt='rescore'"):
        clf.predict_proba(X)
    clf.set_params(cache=ResponseCache(path, on_corrupt="rescore"))
    with pytest.warns(UserWarning, match="scored again and overwritten"):
        np.testing.assert_allclose(clf.predict_proba(X), expected)
    calls = clf.usage_.calls
    np.testing.assert_allclose(clf.predict_proba(X), expected)  # repaired
    assert clf.usage_.calls == calls


def test_lock_timeout_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, timeout=0.2)
    cache.set_many({"a": [0.0]})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError,
                           match=r"c\.sqlite' stayed locked by another writer for "
                                 r"more than timeout=0\.2 s.*timeout="):
            cache.set_many({"b": [0.0]})
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_unwritable_path_names_the_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match=r"Cannot create the response cache file "
                                      r"'.*file/sub/c\.sqlite'.*writable"):
        ResponseCache(blocker / "sub" / "c.sqlite").get_many(["k"])


def test_keyed_hashing_hides_which_texts_were_scored(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCONF_CACHE_SECRET", "s3cret-value")
    path = tmp_path / "k.sqlite"
    cache = ResponseCache(path, key_secret_env="LLMCONF_CACHE_SECRET")
    key = ResponseCache.make_key({"m": 1}, "prompt text", ["a", "b"])
    cache.set_many({key: [-0.5, -1.0]})
    assert key in cache
    np.testing.assert_array_equal(cache.get_many([key])[key], [-0.5, -1.0])
    conn = sqlite3.connect(path)
    stored = [r[0] for r in conn.execute("SELECT key FROM responses")]
    conn.close()
    assert stored and key not in stored
    assert hashlib.sha256(b"s3cret-value").hexdigest() not in path.read_bytes().hex()
    assert b"s3cret-value" not in path.read_bytes()
    # Another secret, or none, is refused rather than silently missing.
    monkeypatch.setenv("LLMCONF_CACHE_SECRET", "other")
    with pytest.raises(ValueError, match="written with another key secret"):
        ResponseCache(path, key_secret_env="LLMCONF_CACHE_SECRET").get_many([key])
    with pytest.raises(ValueError, match="written with a key secret"):
        ResponseCache(path).get_many([key])
    monkeypatch.delenv("LLMCONF_CACHE_SECRET")
    with pytest.raises(RuntimeError, match="'LLMCONF_CACHE_SECRET': the environment "
                                           "variable is unset"):
        ResponseCache(path, key_secret_env="LLMCONF_CACHE_SECRET").get_many([key])


def test_on_corrupt_is_validated(tmp_path):
    with pytest.raises(ValueError, match="on_corrupt must be"):
        ResponseCache(tmp_path / "c.sqlite", on_corrupt="ignore")
