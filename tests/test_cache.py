"""Tests for the persistent response cache."""

import multiprocessing as mp
import pickle
import threading

import numpy as np
import pytest

from sklearn_llmconf._cache import ResponseCache


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
    ctx = mp.get_context("spawn")
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
