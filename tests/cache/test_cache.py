"""Tests for the persistent response cache."""

import hashlib
import json
import pickle
import sqlite3
import threading

import numpy as np
import pytest

from sklearn_llmconf.cache._sqlite import ResponseCache
from tests._processes import writer_context


def _write_rows(path, worker, n):
    cache = ResponseCache(path)
    for i in range(n):
        key = ResponseCache.make_key({"w": worker}, f"text {i}", [" a", " b"])
        # One transaction per row maximises lock contention between writers.
        cache.set_many({key: np.array([worker, i, np.nan])})
    cache.close()


def test_make_key_is_canonical_and_sensitive():
    k1 = ResponseCache.make_key({"model": "m", "b": 1}, "hi", [" a", " b"])
    k2 = ResponseCache.make_key({"b": 1, "model": "m"}, "hi", (" a", " b"))
    assert k1 == k2
    assert len(k1) == 64 and int(k1, 16) >= 0
    assert k1 != ResponseCache.make_key({"model": "m", "b": 1}, "hi", [" b", " a"])
    assert k1 != ResponseCache.make_key({"model": "m", "b": 2}, "hi", [" a", " b"])
    assert k1 != ResponseCache.make_key({"model": "m", "b": 1}, "hi!", [" a", " b"])
    assert k1 != ResponseCache.make_key(
        {"model": "m", "b": 1}, "hi", [" a", " b"], extra={"scoring": "full"}
    )
    # numpy scalars hash like the Python numbers they hold.
    assert ResponseCache.make_key({"t": np.float64(0.5)}, "x", []) == (
        ResponseCache.make_key({"t": 0.5}, "x", [])
    )
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        ResponseCache.make_key({"f": object()}, "x", [])


def test_round_trip_nan_len_clear(tmp_path):
    cache = ResponseCache(tmp_path / "sub" / "c.sqlite")
    rows = {
        "k1": np.array([-0.1, np.nan, -np.inf]),
        "k2": np.array([np.nan, np.nan]),
        "k3": np.array([-1e-300, 0.0]),
    }
    cache.set_many(rows)
    assert len(cache) == 3
    got = cache.get_many(["k1", "k2", "k3", "missing"])
    assert set(got) == {"k1", "k2", "k3"}
    for key, row in rows.items():
        assert got[key].dtype == np.float64
        np.testing.assert_array_equal(got[key], row)  # NaN == NaN here
    # Replacement, not duplication.
    cache.set_many({"k1": np.array([1.0, 2.0, 3.0])})
    assert len(cache) == 3
    np.testing.assert_array_equal(cache.get_many(["k1"])["k1"], [1.0, 2.0, 3.0])
    # A second object on the same file sees the data (persistence).
    np.testing.assert_array_equal(
        ResponseCache(cache.path).get_many(["k2"])["k2"], [np.nan, np.nan]
    )
    cache.clear()
    assert len(cache) == 0
    assert cache.get_many(["k1"]) == {}


def test_many_keys_exceed_sqlite_parameter_limit(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    rows = {f"k{i}": np.array([float(i)]) for i in range(2500)}
    cache.set_many(rows)
    got = cache.get_many(list(rows))
    assert len(got) == 2500 and got["k2499"][0] == 2499.0


def test_pickle_drops_connection(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.set_many({"k": np.array([0.5])})
    assert cache._local.conn is not None
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.path == cache.path
    assert getattr(clone._local, "conn", None) is None
    np.testing.assert_array_equal(clone.get_many(["k"])["k"], [0.5])


def test_concurrent_thread_writers_lose_nothing(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)  # one object shared by all threads
    errors = []

    def work(worker):
        try:
            for i in range(200):
                key = ResponseCache.make_key({"w": worker}, f"text {i}", [" a"])
                cache.set_many({key: np.array([worker, i])})
                assert key in cache.get_many([key])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cache) == 8 * 200


@pytest.mark.slow
def test_concurrent_process_writers_lose_nothing(tmp_path):
    path = tmp_path / "c.sqlite"
    ctx = writer_context()
    procs = [ctx.Process(target=_write_rows, args=(path, w, 200)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    cache = ResponseCache(path)
    assert len(cache) == 800
    keys = [
        ResponseCache.make_key({"w": w}, f"text {i}", [" a", " b"])
        for w in range(4)
        for i in range(200)
    ]
    got = cache.get_many(keys)
    assert len(got) == 800
    np.testing.assert_array_equal(got[keys[-1]], [3.0, 199.0, np.nan])


def test_make_key_accepts_lone_surrogates():
    # Regression (#11): a lone surrogate, e.g. from a JSON "\ud800" escape,
    # raised UnicodeEncodeError and lost the whole call.
    k1 = ResponseCache.make_key({"m": 1}, "bad \ud800 text", [" a"])
    k2 = ResponseCache.make_key({"m": 1}, "bad \udfff text", [" a"])
    assert len(k1) == 64 and k1 != k2
    # Valid text keeps its key (plain UTF-8): existing cache files stay valid.
    payload = {"v": 1, "identity": {"m": 1}, "prompt": "caf\u00e9 \U0001f600",
               "labels": [" a"], "extra": {}}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    assert ResponseCache.make_key({"m": 1}, "caf\u00e9 \U0001f600", [" a"]) == (
        hashlib.sha256(text.encode("utf-8")).hexdigest()
    )


def test_corrupt_file_error_names_the_file(tmp_path):
    # Regression (#11): a raw "DatabaseError: file is not a database".
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not an SQLite database\n" * 100)
    cache = ResponseCache(path)
    with pytest.raises(sqlite3.DatabaseError, match=r"cache\.sqlite.*corrupt.*"
                       r"Move it aside or delete it"):
        cache.get_many(["k"])
    with pytest.raises(sqlite3.DatabaseError, match="cache.sqlite"):
        cache.set_many({"k": np.zeros(2)})


def test_damaged_pages_error_names_the_file(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    keys = [f"k{i}" for i in range(500)]
    cache.set_many({k: np.arange(100.0) for k in keys})
    cache.close()
    with open(path, "r+b") as f:  # overwrite data pages in the middle
        f.seek(4096 * 3)
        f.write(b"\xff" * 4096 * 4)
    with pytest.raises(sqlite3.DatabaseError,
                       match=r"cache\.sqlite.*malformed.*Move it aside"):
        ResponseCache(path).get_many(keys)


def test_folder_as_cache_path_error_names_it(tmp_path):
    with pytest.raises(sqlite3.OperationalError,
                       match="Cannot open the response cache file.*not a folder"):
        len(ResponseCache(tmp_path))


def test_lone_surrogate_text_with_cache_names_the_row(tmp_path):
    # Regression (#11): with a cache the whole call died in make_key with a
    # UnicodeEncodeError naming no row. The text is rejected up front, with
    # its row, before anything is scored.
    from sklearn_llmconf import LLMClassifier
    from sklearn_llmconf.testing import KeywordBackend

    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0,
                        cache=tmp_path / "c.sqlite").fit(["a", "b"], ["ham", "spam"])
    with pytest.raises(ValueError, match=r"lone surrogate .* at row 1, position 4"):
        clf.predict_proba(["fine", "bad \ud800 text"])
