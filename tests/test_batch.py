"""Batch jobs against a local stand-in of the OpenAI Batch API."""

import json

import openai
import pytest

from sklearn_llmconf.backends._batch_jobs import BatchStateFile, run_batch, to_jsonl
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
