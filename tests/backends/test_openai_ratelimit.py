"""Rate limits, server-directed pauses and sustained 429/5xx (issue 21)."""

import numpy as np
import pytest

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.backends.openai._breaker import TRANSIENT_THRESHOLD
from sklearn_llmconf.backends.openai._ratelimit import (
    RateLimiter,
    estimate_tokens,
    parse_duration,
)
from sklearn_llmconf.testing._fault_server import _tokenize

LABELS = [" ham", " spam"]


def _backend(server, **params):
    # The server's vocabulary as a callable tokenizer: no tokenize requests.
    params = {"api_key_env": None, "timeout": 5.0, "endpoint": "chat",
              "logit_bias": False, "tokenizer": _tokenize, **params}
    return OpenAIBackend("fake-model", base_url=server.base_url, **params)


@pytest.fixture
def short_sdk_backoff(monkeypatch):
    """The SDK's backoff before a retry the server gave no Retry-After for
    (the outages here): 0.05 s instead of 0.5 s, doubling. The tests count
    requests, not seconds."""
    import openai._base_client

    monkeypatch.setattr(openai._base_client, "INITIAL_RETRY_DELAY", 0.05,
                        raising=False)


def _answered(res):
    return [e for e in res.errors if e is not None and "HTTP" in e] == []


def _max_in_window(times, window):
    times = sorted(times)
    return max(
        sum(1 for u in times if t <= u < t + window) for t in times
    )


@pytest.mark.parametrize("value, seconds", [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1m30.5s", 90.5), ("0.25", 0.25),
    ("bogus", None), (None, None),
])
def test_parse_reset_durations(value, seconds):
    assert parse_duration(value) == seconds


def test_token_estimate_counts_prompt_and_output():
    body = b'{"messages": [{"role": "user", "content": "abcdefgh"}], "max_tokens": 3}'
    assert estimate_tokens(body) == 2 + 3
    assert estimate_tokens(b'{"prompt": "abcd", "max_tokens": 1, "n": 4}') == 1 + 4


def test_limiter_spaces_requests_and_tokens():
    lim = RateLimiter(requests_per_minute=600)  # one per 0.1 s
    waits = [lim.reserve(1)[0] for _ in range(5)]
    assert waits[0] == pytest.approx(0.0, abs=1e-3)
    assert np.diff(waits) == pytest.approx([0.101] * 4, abs=2e-3)
    lim = RateLimiter(tokens_per_minute=6000)  # 100 tokens per second
    assert lim.reserve(50)[0] == pytest.approx(0.0, abs=1e-3)
    assert lim.reserve(50)[0] == pytest.approx(0.505, abs=2e-3)


def test_limiter_waits_for_answers_a_window_back():
    lim = RateLimiter(requests_per_minute=120)  # n = 2 per 1 s window
    (_, t1), _ = lim.reserve(1), lim.reserve(1)
    assert lim.reserve(1) == (None, None)  # request 1 not answered yet
    lim.answered(t1)
    delay, _ = lim.reserve(1)
    assert delay == pytest.approx(1.0, abs=0.02)  # one window after answer 1


def _quota(remaining, reset="1s"):
    return {"x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": reset}


def test_quota_counts_the_requests_sent_after_the_answered_one():
    lim = RateLimiter()
    tickets = [lim.reserve(1)[1] for _ in range(3)]
    # Answer to the first: 3 left on its arrival, but two more were sent since.
    lim.answered(tickets[0], 200, _quota(3))
    delay, t3 = lim.reserve(1)
    assert delay == pytest.approx(0.0, abs=1e-3)  # the one request left
    delay, probe = lim.reserve(1)
    assert delay == pytest.approx(1.0, abs=0.02)  # none left: after the reset
    assert lim.reserve(1) == (None, None)  # the others wait for the probe's count
    # An answer older than the one that set the count changes nothing.
    lim.answered(tickets[1], 200, _quota(5))
    assert lim.reserve(1) == (None, None)
    lim.answered(probe, 200, _quota(2, "0.5s"))
    assert [lim.reserve(1)[0] for _ in range(2)] == pytest.approx([0, 0], abs=1e-3)
    assert lim.reserve(1)[0] == pytest.approx(0.5, abs=0.02)


def test_a_quota_period_that_ends_with_requests_to_spare_lifts_the_count():
    lim = RateLimiter()
    first = lim.reserve(1)[1]
    lim.answered(first, 200, _quota(5, "0s"))
    assert [lim.reserve(1)[0] for _ in range(8)] == pytest.approx([0] * 8, abs=1e-3)


def test_requests_per_minute_is_never_exceeded_and_sees_no_429(fault_server):
    # The server admits 10 requests per second; the client is set to the
    # same 600/min: in no 1-second window of the server's clock are there
    # more, and no request is refused.
    fault_server.rate_limit = (10, 1.0)
    backend = _backend(fault_server, max_requests_per_minute=600,
                       max_concurrency=8)
    res = backend.score_labels([f"text {i}" for i in range(14)], LABELS)
    assert _answered(res)
    assert fault_server.n_429 == 0
    assert len(fault_server.arrivals) == 14
    assert _max_in_window(fault_server.arrivals, 1.0) <= 10


def test_429_retry_after_and_remaining_headers_pause_all_requests(fault_server):
    # No client-side limit: the server's 429s (retry-after) and its
    # x-ratelimit-remaining-requests: 0 headers pause the senders; every row
    # is answered within the SDK's two retries.
    fault_server.rate_limit = (4, 0.2)
    backend = _backend(fault_server, max_concurrency=8)
    res = backend.score_labels([f"row {i}" for i in range(14)], LABELS)
    assert _answered(res)
    assert backend._learned.limiter.pauses > 0
    # Without the pauses, 8 senders against 4 per 0.4 s get a 429 on most
    # attempts (and rows fail after two retries); with them, fewer than one
    # refusal per row.
    assert fault_server.n_429 < 24


@pytest.mark.parametrize("endpoint", ["chat", "auto"])
def test_503_outage_stops_after_a_few_requests(fault_server, endpoint,
                                               short_sdk_backoff):
    fault_server.outage = 503
    backend = OpenAIBackend("fake-model", base_url=fault_server.base_url,
                            api_key_env=None, endpoint=endpoint, timeout=5.0)
    with pytest.raises(RuntimeError, match="No request succeeded.*503"):
        backend.score_labels([f"text {i}" for i in range(100)], LABELS)
    # Default concurrency (8) and retries (2): the breaker counts attempts.
    assert len(fault_server.requests) <= TRANSIENT_THRESHOLD + 2


def test_classifier_in_a_429_storm_raises_clearly(fault_server, short_sdk_backoff):
    clf = LLMClassifier(backend=_backend(fault_server), n_shots=0,
                        on_error="warn").fit(["a b", "c d"], ["ham", "spam"])
    fault_server.outage = 429
    fault_server.requests.clear()
    with pytest.raises(RuntimeError, match="rate limit"):
        clf.predict_proba([f"text {i}" for i in range(100)])
    assert len(fault_server.requests) <= TRANSIENT_THRESHOLD + 2


def test_blips_do_not_open_the_breaker(fault_server):
    # Each row's first attempt fails (503, then answered on retry): the
    # successes in between keep the count of consecutive failures low.
    backend = _backend(fault_server, max_concurrency=1)
    texts = [f"FAULT=503x1 row {i}" for i in range(12)]
    res = backend.score_labels(texts, LABELS)
    assert _answered(res)
    assert len(fault_server.requests) == 24
