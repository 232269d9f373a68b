"""Batch jobs against a local stand-in of the OpenAI Batch API."""

import json
import pickle

import numpy as np
import openai
import pytest
from sklearn.base import clone

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import OpenAIBackend, OpenAIBatchBackend
from sklearn_llmconf.backends.openai._batch_jobs import (
    BatchStateFile,
    run_batch,
    to_jsonl,
)
from tests._batch_server import BatchServer

URL = "/v1/chat/completions"


@pytest.fixture
def batch_server(fault_server):
    server = BatchServer(fault_server.base_url).start()
    yield server
    server.stop()


@pytest.fixture
def client(batch_server):
    with openai.OpenAI(base_url=batch_server.base_url, api_key="EMPTY",
                       max_retries=0) as client:
        yield client


def _chat(text):
    return {"model": "m", "messages": [{"role": "user", "content": text}],
            "max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": 5}


def _no_sleep(seconds):
    pass


def test_to_jsonl_is_the_batch_input_format():
    lines = to_jsonl([("r0", {"a": 1}), ("r1", {"b": "é"})], URL).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"custom_id": "r0", "method": "POST", "url": URL, "body": {"a": 1}},
        {"custom_id": "r1", "method": "POST", "url": URL, "body": {"b": "é"}},
    ]


def test_completed_batch_maps_bodies_and_errors(client, batch_server, tmp_path):
    batch_server.in_progress_polls = 3
    requests = [("r0", _chat("hello")), ("r1", _chat("FAULT=500 oops")),
                ("r2", _chat("world"))]
    state = BatchStateFile(tmp_path / "jobs.json")
    outcome = run_batch(client, requests, url=URL, state=state, sleep=_no_sleep)
    assert outcome.status == "completed" and not outcome.resumed
    assert set(outcome.bodies) == {"r0", "r2"}
    assert outcome.bodies["r0"]["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert outcome.errors == {"r1": "batch request failed: HTTP 500: boom"}
    assert outcome.request_counts == {"total": 3, "completed": 2, "failed": 1}
    # Collected: the job left the state file.
    assert json.loads((tmp_path / "jobs.json").read_text()) == {}
    polls = [p for m, p in batch_server.calls if m == "GET" and "batches" in p]
    assert len(polls) == 1 + 3 + 1  # validating, in progress x3, finalizing


def test_expired_and_failed_batches_name_every_missing_row(client, batch_server):
    batch_server.expire_after = 1
    requests = [("a", _chat("one")), ("b", _chat("two")), ("c", _chat("three"))]
    outcome = run_batch(client, requests, url=URL, sleep=_no_sleep)
    assert outcome.status == "expired" and set(outcome.bodies) == {"a"}
    assert set(outcome.errors) == {"b", "c"}
    assert "batch_expired" in outcome.errors["b"]

    batch_server.expire_after, batch_server.fail_validation = None, True
    outcome = run_batch(client, requests, url=URL, sleep=_no_sleep)
    assert outcome.status == "failed" and outcome.bodies == {}
    assert outcome.errors["a"].endswith("stand-in validation failure")


def test_interrupted_wait_resumes_the_same_job(client, batch_server, tmp_path):
    batch_server.in_progress_polls = 1000
    requests = [("r0", _chat("hello")), ("r1", _chat("world"))]
    state = BatchStateFile(tmp_path / "jobs.json")
    with pytest.raises(TimeoutError, match="resumes it"):
        run_batch(client, requests, url=URL, state=state, max_wait=0.0,
                  sleep=_no_sleep)
    (batch_id,) = json.loads((tmp_path / "jobs.json").read_text()).values()
    batch_server.in_progress_polls = 0
    # A new process: a fresh state object on the same file.
    outcome = run_batch(client, requests, url=URL,
                        state=BatchStateFile(tmp_path / "jobs.json"), sleep=_no_sleep)
    assert outcome.resumed and outcome.batch_id == batch_id
    assert set(outcome.bodies) == {"r0", "r1"}
    creates = [p for m, p in batch_server.calls if m == "POST" and p == "/v1/batches"]
    assert len(creates) == 1  # paid once


# -- OpenAIBatchBackend: the same answers as OpenAIBackend, through batch jobs ------

TEXTS = [f"message {i}: call now" for i in range(6)]
LABELS = [" ham", " spam"]


def _backends(fault_server, batch_server, tmp_path, max_wait=None, **params):
    online = OpenAIBackend("m", base_url=fault_server.base_url, **params)
    batch = OpenAIBatchBackend("m", base_url=batch_server.base_url, poll_interval=0,
                               state_path=tmp_path / "jobs.json", max_wait=max_wait,
                               **params)
    return online, batch


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_batch_backend_equals_the_online_backend(fault_server, batch_server,
                                                 tmp_path, endpoint):
    online, batch = _backends(fault_server, batch_server, tmp_path,
                              endpoint=endpoint, scoring="first_token")
    want = online.score_labels(TEXTS, LABELS)
    got = batch.score_labels(TEXTS, LABELS)
    np.testing.assert_array_equal(got.log_probs, want.log_probs)
    np.testing.assert_array_equal(got.extra["uncovered_mass"],
                                  want.extra["uncovered_mass"])
    assert got.errors == want.errors == [None] * 6
    assert got.usage.as_dict() == want.usage.as_dict()  # calls and tokens
    assert got.extra["batch"]["status"] == "completed"
    assert got.extra["batch"]["request_counts"]["total"] == 6
    creates = [p for m, p in batch_server.calls if p == "/v1/batches"]
    assert len(creates) == 1


def test_batch_backend_full_sequence_equals_online(fault_server, batch_server,
                                                   tmp_path):
    fault_server.echo_capable = True
    online, batch = _backends(fault_server, batch_server, tmp_path,
                              endpoint="completions", scoring="full_sequence")
    want = online.score_labels(TEXTS[:3], LABELS)
    got = batch.score_labels(TEXTS[:3], LABELS)
    np.testing.assert_array_equal(got.log_probs, want.log_probs)
    assert got.usage.calls == want.usage.calls == 6  # one line per text and label


def test_partial_failure_rows_and_cached_rerun_pays_only_for_them(
        fault_server, batch_server, tmp_path):
    _, batch = _backends(fault_server, batch_server, tmp_path, scoring="first_token")
    texts = TEXTS[:3] + ["FAULT=500x1 flaky"]
    clf = LLMClassifier(backend=batch, prompt="{text}", n_shots=0, on_error="nan",
                        calibration=None,
                        cache=tmp_path / "c.sqlite").fit(texts, ["ham", "spam"] * 2)
    proba = clf.predict_proba(texts)
    assert np.isnan(proba[3]).all() and np.isfinite(proba[:3]).all()
    assert clf.usage_.calls == 4  # the failed request ran, and counts
    before = len(batch_server.calls)
    proba2 = clf.predict_proba(texts)  # the server now answers the flaky one
    np.testing.assert_array_equal(proba2[:3], proba[:3])
    assert np.isfinite(proba2[3]).all()
    upload = [p for m, p in batch_server.calls[before:] if p == "/v1/files"]
    assert len(upload) == 1
    (file_id,) = [f for f, v in batch_server.files.items()
                  if v["object"]["purpose"] == "batch"][-1:]
    assert len(batch_server.files[file_id]["content"].splitlines()) == 1


def test_expired_batch_gives_nan_rows_that_name_the_expiry(fault_server,
                                                           batch_server, tmp_path):
    batch_server.expire_after = 2
    _, batch = _backends(fault_server, batch_server, tmp_path, scoring="first_token")
    result = batch.score_labels(TEXTS[:4], LABELS)
    assert np.isfinite(result.log_probs[:2]).all()
    assert np.isnan(result.log_probs[2:]).all()
    assert all("batch_expired" in e for e in result.errors[2:])
    assert result.extra["batch"]["status"] == "expired"
    assert result.usage.calls == 2


def test_interrupted_job_resumes_without_resubmitting(fault_server, batch_server,
                                                      tmp_path):
    batch_server.in_progress_polls = 10**6
    _, batch = _backends(fault_server, batch_server, tmp_path, scoring="first_token",
                         max_wait=0)
    with pytest.raises(TimeoutError, match="resumes it"):
        batch.score_labels(TEXTS, LABELS)
    batch_server.in_progress_polls = 0
    # A new process: the backend is rebuilt from its parameters.
    fresh = pickle.loads(pickle.dumps(batch)).set_params(max_wait=None)
    assert getattr(fresh, "_state_file", None) is None
    result = fresh.score_labels(TEXTS, LABELS)
    assert result.extra["batch"]["resumed"] and np.isfinite(result.log_probs).all()
    creates = [p for m, p in batch_server.calls if p == "/v1/batches"]
    assert len(creates) == 1


def test_batch_params_are_not_part_of_the_cache_identity(tmp_path):
    a = OpenAIBatchBackend("m", base_url="http://127.0.0.1:9/v1")
    b = clone(a).set_params(poll_interval=1, max_wait=5, state_path=tmp_path / "s")
    assert a.cache_identity() == b.cache_identity()
    assert "state_path" in a.get_params() and "completion_window" in a.get_params()
