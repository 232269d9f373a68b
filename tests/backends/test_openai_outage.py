"""Circuit breaker: a total outage stops early with one clear message (issue #11)."""

import socket

import numpy as np
import pytest

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.backends.openai._breaker import CIRCUIT_BREAKER_THRESHOLD

LABELS = [" ham", " spam"]


def _backend(base_url, **params):
    params = {"api_key_env": None, "max_retries": 0, "timeout": 5.0,
              "max_concurrency": 2, "endpoint": "chat", **params}
    return OpenAIBackend("fake-model", base_url=base_url, **params)


def _row_requests(server):
    return [r for r in server.requests if r["path"].startswith("/v1/")]


@pytest.mark.parametrize("status, kind", [(401, "AuthenticationError"),
                                          (404, "NotFoundError")])
def test_total_outage_raises_after_a_few_requests(fault_server, status, kind):
    fault_server.outage = status
    backend = _backend(fault_server.base_url)
    with pytest.raises(RuntimeError, match=(
        f"No request succeeded: {CIRCUIT_BREAKER_THRESHOLD} consecutive requests "
        rf"failed with HTTP {status} \({kind}\).*api_key_env"
    )):
        backend.score_labels([f"text {i}" for i in range(40)], LABELS)
    # At most threshold + max_concurrency - 1 requests, not one per row.
    assert len(_row_requests(fault_server)) <= CIRCUIT_BREAKER_THRESHOLD + 1
    fault_server.requests.clear()
    with pytest.raises(RuntimeError, match="No request succeeded"):
        backend.generate([f"text {i}" for i in range(40)], n_samples=2,
                         temperature=1.0, seed=0)
    assert len(_row_requests(fault_server)) <= CIRCUIT_BREAKER_THRESHOLD + 1


def test_outage_is_not_a_coin_flip_with_on_error_warn(fault_server):
    """Before: classes_[0] for every row, with a warning per batch."""
    fault_server.outage = 401
    clf = LLMClassifier(backend=_backend(fault_server.base_url), n_shots=0,
                        on_error="warn").fit(["a b", "c d"], ["ham", "spam"])
    with pytest.raises(RuntimeError, match="HTTP 401"):
        clf.predict_proba([f"text {i}" for i in range(30)])


def test_connection_refused_stops_early():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed on exit: nothing listens there
    backend = _backend(f"http://127.0.0.1:{port}/v1", logit_bias=False)
    with pytest.raises(RuntimeError, match="failed with connection refused"):
        backend.score_labels([f"text {i}" for i in range(30)], LABELS)


def test_outage_after_some_rows_marks_the_rest(fault_server):
    good = [f"good {i}" for i in range(3)]
    bad = [f"FAULT=401 row {i}" for i in range(8)]
    later = [f"later {i}" for i in range(4)]
    backend = _backend(fault_server.base_url, max_concurrency=1, logit_bias=False)
    res = backend.score_labels(good + bad + later, LABELS)
    assert all(e is None or "none of the labels" in e for e in res.errors[:3])
    n = CIRCUIT_BREAKER_THRESHOLD
    assert res.errors[3:3 + n] == ["HTTP 401 (AuthenticationError)"] * n
    stopped = res.errors[3 + n:]
    assert len(stopped) == 8 - n + 4
    assert all(e.startswith(f"not sent: {n} consecutive requests failed with "
                            "HTTP 401") for e in stopped)
    assert np.isnan(res.log_probs[3:]).all()
    assert res.usage.calls == 3 + n


def test_other_failures_reset_the_count(fault_server):
    # 401s interleaved with answered requests never open the breaker.
    prompts = [p for i in range(6) for p in (f"FAULT=401 a{i}", f"fine {i}")]
    backend = _backend(fault_server.base_url, max_concurrency=1, logit_bias=False)
    res = backend.score_labels(prompts, LABELS)
    assert res.usage.calls == 12
    assert res.errors[0::2] == ["HTTP 401 (AuthenticationError)"] * 6


def test_on_error_raise_stops_sending_after_a_failed_row(fault_server):
    """Before: a failing row's call still sent every batch, then raised."""
    clf = LLMClassifier(backend=_backend(fault_server.base_url, logit_bias=False),
                        n_shots=0, calibration=None, batch_size=8)
    clf.fit(["a b", "c d"], ["ham", "spam"])
    X = [f"message {i}" + (" FAULT=404" if i == 3 else "") for i in range(64)]
    fault_server.requests.clear()
    with pytest.raises(RuntimeError, match=(
        # (a second row of the first batch may have no label in the top-k)
        r"[12] of 64 rows could not be scored \(first reason: HTTP 404 "
        r"\(NotFoundError\)\); 56 more were not sent after it"
    )):
        clf.predict_proba(X)
    assert len(_row_requests(fault_server)) == 8
