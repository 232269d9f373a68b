"""The PostgreSQL response cache against a real server on 127.0.0.1.

The same guarantees as the SQLite cache (tests/test_cache.py): NaN-exact round
trips, no lost rows under concurrent thread and process writers, all-or-nothing
writes when a writer is killed with SIGKILL, and interrupted runs that resume.
"""

import itertools
import os
import pickle
import signal
import sys
import threading

import numpy as np
import pytest
from sklearn.base import clone

from sklearn_llmconf import LLMClassifier, PostgresResponseCache, ResponseCache
from sklearn_llmconf.testing import KeywordBackend
from tests._postgres_server import PostgresServer, PostgresUnavailable
from tests._processes import writer_context

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")

_tables = itertools.count()


@pytest.fixture(scope="module")
def pg_url():
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"cannot start a PostgreSQL server here: {exc}")
    yield server.url
    server.stop()


@pytest.fixture
def cache(pg_url):
    """A cache on a fresh table of the module's server."""
    cache = PostgresResponseCache(pg_url, table=f"t{next(_tables)}_{os.getpid()}")
    yield cache
    cache.close()


def _write_rows(url, table, worker, n, batch=1):
    cache = PostgresResponseCache(url, table=table)
    for start in range(0, n, batch):
        cache.set_many({
            ResponseCache.make_key({"w": worker}, f"text {i}", [" a", " b"]):
                np.array([worker, i, np.nan])
            for i in range(start, min(n, start + batch))
        })
    cache.close()


def _hold_open_transaction(url, table, keys, ready):
    cache = PostgresResponseCache(url, table=table)
    conn = cache._conn()
    with conn.transaction():
        conn.execute(
            f"INSERT INTO {table} (key, value) SELECT k, '\\x00'::bytea "
            "FROM unnest(%s::text[]) AS k", (keys,))
        ready.set()
        threading.Event().wait(600)  # killed here, mid-transaction


def test_url_selects_postgres_with_the_same_keys(pg_url, tmp_path):
    from sklearn_llmconf.cache import open_cache

    with open_cache(pg_url) as cache:
        assert type(cache) is PostgresResponseCache
        assert isinstance(cache, ResponseCache)
        assert cache.url == pg_url and cache.table == "sklearn_llmconf_responses"
    with open_cache(tmp_path / "c.sqlite") as sqlite_cache:
        assert type(sqlite_cache) is ResponseCache
    # Same keys as SQLite, so rows can move between the two.
    assert cache.make_key({"m": 1}, "t", [" a"]) == ResponseCache.make_key(
        {"m": 1}, "t", [" a"])


def test_round_trip_nan_len_clear(cache):
    rows = {
        "k1": np.array([-0.1, np.nan, -np.inf]),
        "k2": np.array([np.nan, np.nan]),
        "k3": np.array([-1e-300, 0.0]),
    }
    cache.set_many(rows)
    assert len(cache) == 3
    assert "k1" in cache and "missing" not in cache
    got = cache.get_many(["k1", "k2", "k3", "missing", "k1"])
    assert set(got) == {"k1", "k2", "k3"}
    for key, row in rows.items():
        assert got[key].dtype == np.float64
        np.testing.assert_array_equal(got[key], row)  # NaN == NaN here
    cache.set_many({"k1": np.array([1.0, 2.0, 3.0])})
    assert len(cache) == 3
    np.testing.assert_array_equal(cache.get_many(["k1"])["k1"], [1.0, 2.0, 3.0])
    # A second object (another worker) sees the data.
    other = PostgresResponseCache(cache.url, table=cache.table)
    np.testing.assert_array_equal(other.get_many(["k2"])["k2"], [np.nan, np.nan])
    other.close()
    cache.clear()
    assert len(cache) == 0 and cache.get_many(["k1"]) == {}
    cache.set_many({})
    assert cache.get_many([]) == {}


def test_many_keys_in_one_call(cache):
    rows = {f"k{i}": np.array([float(i)]) for i in range(12_000)}
    cache.set_many(rows)
    got = cache.get_many(list(rows))
    assert len(got) == 12_000 and got["k11999"][0] == 11999.0


def test_pickle_drops_connection_and_repr_hides_password(cache):
    cache.set_many({"k": np.array([0.5])})
    assert cache._local.conn is not None
    clone_ = pickle.loads(pickle.dumps(cache))
    assert (clone_.url, clone_.table) == (cache.url, cache.table)
    assert getattr(clone_._local, "conn", None) is None
    np.testing.assert_array_equal(clone_.get_many(["k"])["k"], [0.5])
    clone_.close()
    secret = PostgresResponseCache("postgresql://bob:s3cret@db.invalid:5432/x")
    assert repr(secret) == "PostgresResponseCache('postgresql://bob:***@db.invalid:5432/x')"


def test_bad_table_name_and_missing_psycopg(pg_url, monkeypatch):
    with pytest.raises(ValueError, match="plain SQL identifier"):
        PostgresResponseCache(pg_url, table="x; DROP TABLE y").get_many(["k"])
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"sklearn-llmconf\[postgres\]"):
        PostgresResponseCache(pg_url).get_many(["k"])


def test_concurrent_thread_writers_lose_nothing(cache):
    errors = []

    def work(worker):
        try:
            for i in range(200):
                key = ResponseCache.make_key({"w": worker}, f"text {i}", [" a"])
                # Every writer also rewrites a shared key: overlapping upserts.
                cache.set_many({key: np.array([worker, i]), "shared": np.array([i])})
                assert key in cache.get_many([key])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cache) == 8 * 200 + 1


@pytest.mark.slow
def test_concurrent_process_writers_lose_nothing(cache):
    ctx = writer_context()
    procs = [ctx.Process(target=_write_rows, args=(cache.url, cache.table, w, 200))
             for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len(cache) == 800
    keys = [ResponseCache.make_key({"w": w}, f"text {i}", [" a", " b"])
            for w in range(4) for i in range(200)]
    got = cache.get_many(keys)
    assert len(got) == 800
    np.testing.assert_array_equal(got[keys[-1]], [3.0, 199.0, np.nan])


@pytest.mark.slow
def test_writer_killed_mid_transaction_leaves_nothing_and_blocks_no_one(cache):
    ctx = writer_context()
    keys = [f"k{i}" for i in range(50)]
    cache.set_many({"before": np.array([1.0])})
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_open_transaction,
                       args=(cache.url, cache.table, keys, ready))
    proc.start()
    assert ready.wait(120)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    # The killed transaction is rolled back and its row locks are released:
    # the same keys are written at once by another writer.
    assert cache.get_many(keys) == {}
    cache.set_many({k: np.array([2.0]) for k in keys})
    assert len(cache) == 51


@pytest.mark.slow
def test_writer_killed_in_a_loop_keeps_whole_batches_and_resumes(cache):
    ctx = writer_context()
    proc = ctx.Process(target=_write_rows,
                       args=(cache.url, cache.table, 0, 100_000, 10))
    proc.start()
    for _ in range(1200):  # until a few batches are in, at most 2 min
        if len(cache) >= 50:
            break
        threading.Event().wait(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    stored = len(cache)
    assert stored >= 50 and stored % 10 == 0  # whole transactions only
    # Resuming rewrites the stored rows identically and adds the rest.
    _write_rows(cache.url, cache.table, 0, stored + 30, 10)
    keys = [ResponseCache.make_key({"w": 0}, f"text {i}", [" a", " b"])
            for i in range(stored + 30)]
    got = cache.get_many(keys)
    assert len(got) == len(cache) == stored + 30
    np.testing.assert_array_equal(got[keys[-1]], [0.0, stored + 29.0, np.nan])


def test_classifier_cache_url_shared_by_clones_and_resumes(pg_url):
    class Interrupt(KeywordBackend):
        armed = True

        def score_labels(self, prompts, labels):
            if self.armed and any("boom" in p.text for p in prompts):
                raise KeyboardInterrupt
            return super().score_labels(prompts, labels)

    PostgresResponseCache(pg_url).clear()
    X = [f"text {i} spam" for i in range(6)] + ["boom"]
    y = ["spam", "ham"] * 3 + ["ham"]
    backend = Interrupt()
    clf = LLMClassifier(n_shots=0, backend=backend, cache=pg_url, batch_size=3,
                        calibration=None)
    clf.fit(X, y)
    with pytest.raises(KeyboardInterrupt):
        clf.predict_proba(X)
    backend.armed = False
    first = clf.predict_proba(X)
    assert clf.usage_.cache_hits == 6 and clf.usage_.calls == 6 + 1
    # A clone (as in cross-validation) shares the server, not the object.
    other = clone(clf).fit(X, y)
    np.testing.assert_array_equal(other.predict_proba(X), first)
    assert other.usage_.cache_hits == 7 and other.usage_.calls == 0
