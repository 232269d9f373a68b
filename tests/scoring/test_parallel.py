"""Parallel scoring through joblib, and the thread rule that keeps it from
oversubscribing the CPU (workers x threads <= cores)."""

import os

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.model_selection import GridSearchCV

from sklearn_llmconf.scoring._parallel import (
    _chunks,
    available_cpus,
    default_n_threads,
    score_in_parallel,
)


def _square_all(values):
    return [v * v for v in values]


@pytest.mark.parametrize(
    "env, expected",
    [(None, "all"), ("1", 1), ("64", "all"), ("0", "all"), ("two", "all"), (" 1 ", 1)],
)
def test_default_n_threads_honours_the_inner_limit(monkeypatch, env, expected):
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    n = default_n_threads()
    assert n == (available_cpus() if expected == "all" else expected)
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_chunks_give_every_worker_work_and_respect_batch_size():
    idx = np.arange(10)
    assert [c.tolist() for c in _chunks(idx, 2, 64)] == [
        [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert [len(c) for c in _chunks(idx, 2, 3)] == [3, 3, 3, 1]
    assert [len(c) for c in _chunks(idx, 16, 64)] == [1] * 10
    assert np.concatenate(_chunks(idx, 3, 4)).tolist() == idx.tolist()


@pytest.mark.parametrize("n_jobs", [None, 1, 2, -1])
def test_score_in_parallel_covers_each_index_once(n_jobs):
    items = list(range(100, 120))
    indices = np.array([0, 3, 4, 7, 8, 9, 15, 19])
    with parallel_config(backend="threading"):
        got = list(score_in_parallel(_square_all, items, indices, n_jobs=n_jobs,
                                     batch_size=3))
    assert all(len(chunk) <= 3 for chunk, _ in got)
    pairs = {int(i): r for chunk, result in got for i, r in zip(chunk, result)}
    assert pairs == {int(i): items[i] ** 2 for i in indices}


def test_score_in_parallel_sequential_path_keeps_order_and_process():
    calls = []

    def score(values):  # a closure: not picklable, fine without workers
        calls.append(os.getpid())
        return values

    got = list(score_in_parallel(score, "abcde", np.arange(5), n_jobs=1,
                                 batch_size=2))
    assert [r for _, r in got] == [["a", "b"], ["c", "d"], ["e"]]
    assert calls == [os.getpid()] * 3


def _threads_in_effect(estimator, X, y):
    """Scorer: threads of the embedded model as loaded in this worker."""
    estimator.predict_proba(X[:1])
    llama = estimator._get_backend()._get_model().llama
    return llama.n_threads


def _threads_batch_in_effect(estimator, X, y):
    llama = estimator._get_backend()._get_model().llama
    return llama.context_params.n_threads_batch


def _pid(estimator, X, y):
    return os.getpid()


@pytest.mark.slow
def test_grid_search_workers_share_the_cores(tmp_path):
    """GridSearchCV(n_jobs=2) over the embedded model: two workers, each model
    with cores // 2 threads (joblib's inner limit), never 2 x all cores."""
    pytest.importorskip("llama_cpp")
    from joblib import cpu_count

    from sklearn_llmconf import LLMClassifier
    from sklearn_llmconf.backends import LlamaCppBackend

    X = ["win a free prize now", "see you at lunch", "claim your cash reward",
         "call me when you land"]
    y = ["spam", "ham", "spam", "ham"]
    clf = LLMClassifier(n_shots=0, backend=LlamaCppBackend(),
                        cache=str(tmp_path / "c.sqlite"))
    prompts = ["Text: {text}\nAnswer:", "SMS: {text}\nIt is"]
    scoring = {"threads": _threads_in_effect, "pid": _pid}
    backend = clf.backend
    if "n_threads_batch" in backend.get_params():
        scoring["threads_batch"] = _threads_batch_in_effect
    search = GridSearchCV(clf, {"prompt": prompts}, cv=2, n_jobs=2,
                          scoring=scoring, refit=False).fit(X, y)
    res = search.cv_results_
    per_worker = max(cpu_count() // 2, 1)
    for key in [k for k in scoring if k != "pid"]:
        threads = np.concatenate([res[f"split{i}_test_{key}"] for i in range(2)])
        assert (threads == per_worker).all(), (key, threads)
    pids = {int(p) for i in range(2) for p in res[f"split{i}_test_pid"]}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def _worker_facts(values):
    return [(v * v, os.getpid(), default_n_threads()) for v in values]


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed", reason="the dask extra is "
                                      "not installed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                  processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.mark.slow
def test_score_in_parallel_on_a_dask_cluster_of_processes(dask_client):
    items = list(range(20))
    with parallel_config(backend="dask"):
        got = list(score_in_parallel(_worker_facts, items, np.arange(20),
                                     n_jobs=-1, batch_size=4))
    facts = [f for _, result in got for f in result]
    assert sorted(f[0] for f in facts) == [i * i for i in items]
    pids = {f[1] for f in facts}
    assert os.getpid() not in pids and len(pids) <= 2
    # Dask's nanny sets OMP_NUM_THREADS=1 in its worker processes.
    assert {f[2] for f in facts} == {1}


# -- LLMClassifier(n_jobs=...) ------------------------------------------------------

def _keyword_data(n=40):
    X = [f"message {i} " + ("spam offer" if i % 3 == 0 else "ham lunch")
         for i in range(n)]
    y = ["spam" if i % 3 == 0 else "ham" for i in range(n)]
    return X + X[:5], y + y[:5]  # duplicates are scored once


def _fitted(**params):
    from sklearn_llmconf import LLMClassifier
    from sklearn_llmconf.testing import KeywordBackend

    X, y = _keyword_data()
    params.setdefault("n_shots", 0)
    params.setdefault("calibration", None)  # fit makes no model call
    return LLMClassifier(backend=KeywordBackend(), **params).fit(X, y), X


def test_n_jobs_scores_in_worker_processes_identically(tmp_path, monkeypatch):
    from sklearn_llmconf.scoring import _engine as _scoring

    ticks = []

    class Bar:
        def update(self, n):
            ticks.append((os.getpid(), n))

        def close(self):
            pass

    monkeypatch.setattr(_scoring, "_progress", lambda total, enabled: Bar())
    reference, X = _fitted(batch_size=8)
    want = reference.predict_proba(X)
    ticks.clear()
    clf, _ = _fitted(batch_size=8, n_jobs=2, cache=tmp_path / "c.sqlite")
    got = clf.predict_proba(X)
    np.testing.assert_array_equal(got, want)
    assert clf.usage_.as_dict() == reference.usage_.as_dict()
    assert clf.usage_.calls == 40 and clf.usage_.cache_hits == 0
    # Scored in workers (the parent's backend saw nothing), progress and cache
    # written by the parent: 40 distinct prompts in chunks of at most 8.
    assert getattr(clf.backend, "calls_", []) == []
    assert {pid for pid, _ in ticks} == {os.getpid()}
    assert sum(n for _, n in ticks) == 40 and max(n for _, n in ticks) <= 8
    again = clf.predict_proba(X)
    np.testing.assert_array_equal(again, want)
    assert clf.usage_.cache_hits == 40 and clf.usage_.calls == 40


def test_n_jobs_with_failed_rows_and_errors(tmp_path):
    ref, X = _fitted(on_error="nan", batch_size=4)
    ref.set_params(backend=ref.backend.set_params(fail_on="message 3 "))
    clf, _ = _fitted(on_error="nan", batch_size=4, n_jobs=2)
    clf.set_params(backend=clf.backend.set_params(fail_on="message 3 "))
    np.testing.assert_array_equal(clf.predict_proba(X), ref.predict_proba(X))
    assert clf.usage_.failed_rows == ref.usage_.failed_rows == 2  # and its copy


def test_n_jobs_is_validated():
    from sklearn_llmconf import LLMClassifier

    X, y = _keyword_data(6)
    with pytest.raises(ValueError, match="n_jobs"):
        LLMClassifier(n_jobs=1.5, n_shots=0).fit(X, y)


@pytest.mark.slow
def test_n_jobs_on_a_dask_cluster_gives_the_same_answers(dask_client, tmp_path):
    reference, X = _fitted(batch_size=8)
    want = reference.predict_proba(X)
    cache = tmp_path / "c.sqlite"
    clf, _ = _fitted(batch_size=8, n_jobs=-1, cache=cache)
    with parallel_config(backend="dask"):
        got = clf.predict_proba(X)
    np.testing.assert_array_equal(got, want)
    assert clf.usage_.as_dict() == reference.usage_.as_dict()
    assert getattr(clf.backend, "calls_", []) == []  # all scored on the cluster
    from sklearn_llmconf import ResponseCache

    assert len(ResponseCache(cache)) == 40


@pytest.mark.slow
def test_n_jobs_with_the_embedded_model_is_bit_identical(dask_client):
    pytest.importorskip("llama_cpp")
    from sklearn_llmconf import LLMClassifier
    from sklearn_llmconf.backends import LlamaCppBackend

    X = ["win a free prize now", "see you at lunch", "claim your cash reward",
         "call me when you land", "URGENT! reply to win", "ok, on my way"]
    y = ["spam", "ham", "spam", "ham", "spam", "ham"]

    def run(n_jobs):
        clf = LLMClassifier(backend=LlamaCppBackend(), n_shots=0, batch_size=2,
                            n_jobs=n_jobs).fit(X, y)
        return clf.predict_proba(X), clf.usage_.as_dict()

    want, usage = run(1)
    for n_jobs, backend in [(2, "loky"), (-1, "dask")]:
        with parallel_config(backend=backend):
            got, got_usage = run(n_jobs)
        np.testing.assert_array_equal(got, want)
        assert got_usage["calls"] == usage["calls"] == 6
