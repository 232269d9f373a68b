"""OpenAIBackend against the fault-injecting test server."""

import asyncio
import logging
import math
import pickle
import time
import warnings

import numpy as np
import pytest
from sklearn.base import clone

from sklearn_llmconf.backends import OpenAIBackend, Prompt
from sklearn_llmconf.backends.openai import _transport
from sklearn_llmconf.cache._sqlite import ResponseCache
from sklearn_llmconf.testing._fault_server import (
    VOCAB,
    echo_tokens,
    next_token_logprobs,
)

SECRET = "sk-test-SECRET-0123456789abcdef"
LABELS = [" ham", " spam"]
VARIANTS = {" ham": [" ham", "ham", "Ham"], " spam": [" spam", "spam", "Spam"]}


def _expected(prompt, k=20, labels=LABELS, bias=None):
    """Merged label log-probs over the top-k alternatives the server shows."""
    dist = next_token_logprobs(prompt, bias)
    top = dict(sorted(dist.items(), key=lambda kv: -kv[1])[:k])
    out = []
    for lab in labels:
        vals = [top[t] for t in VARIANTS[lab] if t in top]
        out.append(np.logaddexp.reduce(vals) if vals else np.nan)
    return np.array(out)


def _both_shown(texts):
    """Keep texts whose top-20 shows both labels (deterministic server)."""
    return [t for t in texts if not np.isnan(_expected(t)).any()]


def _exact_merged(prompt):
    dist = next_token_logprobs(prompt)
    return np.array(
        [np.logaddexp.reduce([dist[t] for t in VARIANTS[lab]]) for lab in LABELS]
    )


@pytest.fixture
def backend(fault_server, monkeypatch):
    monkeypatch.setenv("LLMCONF_TEST_KEY", SECRET)
    return OpenAIBackend(
        "fake-model",
        base_url=fault_server.base_url,
        api_key_env="LLMCONF_TEST_KEY",
        endpoint="chat",
        logit_bias=False,
        max_retries=2,
        timeout=5.0,
    )


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_first_token_scores_match_server_distribution(backend, fault_server, endpoint):
    backend.set_params(endpoint=endpoint, scoring="first_token")
    prompts = [Prompt(("Classify: ", f"message {i}", "\nAnswer:")) for i in range(30)]
    prompts = [p for p in prompts if p.text in _both_shown([p.text])][:6]
    result = backend.score_labels(prompts, LABELS)
    expected = np.array([_expected(p.text) for p in prompts])
    assert result.errors == [None] * 6
    np.testing.assert_allclose(result.log_probs, expected, rtol=0, atol=1e-9)
    unc = result.extra["uncovered_mass"]
    np.testing.assert_allclose(unc, 1 - np.exp(expected).sum(axis=1), atol=1e-9)
    assert result.usage.calls == 6 and result.usage.completion_tokens == 6
    chat_paths = [
        r["path"] for r in fault_server.requests if "completions" in r["path"]
    ]
    assert set(chat_paths) == {
        f"/v1/{'chat/' if endpoint == 'chat' else ''}completions"
    }
    body = fault_server.requests[-1]["body"]
    assert body["max_tokens"] == 1 and body["temperature"] == 0
    if endpoint == "chat":
        assert body["logprobs"] is True and body["top_logprobs"] == 20
    else:
        assert body["logprobs"] == 20


def test_system_prompt_and_auth_header(backend, fault_server):
    backend.set_params(system_prompt="You label SMS.")
    backend.score_labels(["hello"], LABELS)
    req = [r for r in fault_server.requests if r["path"].endswith("completions")][-1]
    assert req["body"]["messages"][0] == {"role": "system", "content": "You label SMS."}
    assert req["headers"]["authorization"] == f"Bearer {SECRET}"


def test_empty_key_falls_back_to_placeholder_for_local_server(
    fault_server, monkeypatch
):
    monkeypatch.delenv("LLMCONF_NO_SUCH_KEY", raising=False)
    b = OpenAIBackend(
        "m", base_url=fault_server.base_url, api_key_env="LLMCONF_NO_SUCH_KEY"
    )
    assert b.score_labels(["x"], LABELS).errors == [None]
    assert fault_server.requests[-1]["headers"]["authorization"] == "Bearer EMPTY"
    # Callable key source.
    b.set_params(api_key_env=lambda: "sk-from-callable")
    b.score_labels(["x"], LABELS)
    assert (
        fault_server.requests[-1]["headers"]["authorization"]
        == "Bearer sk-from-callable"
    )


def test_missing_key_without_base_url_raises_clearly(monkeypatch):
    monkeypatch.delenv("LLMCONF_NO_SUCH_KEY", raising=False)
    b = OpenAIBackend("m", api_key_env="LLMCONF_NO_SUCH_KEY")
    with pytest.raises(RuntimeError, match="LLMCONF_NO_SUCH_KEY"):
        b.score_labels(["x"], LABELS)


def test_shared_first_token_raises(backend):
    backend.set_params(endpoint="completions")
    with pytest.raises(ValueError, match="share their first token.*letters"):
        backend.score_labels(["x"], [" Yes", "yes"])
    # With the server's tokenizer, " spam" vs " sp" differ as first tokens: fine...
    backend.score_labels(["x"], [" spam", " sp"])
    # ...but a label that *starts* with another label's token collides.
    with pytest.raises(ValueError, match="' sp' and ' spx'|share their first token"):
        backend.score_labels(["x"], [" sp", " spx"])


def test_missing_label_bound_or_nan(backend):
    prompt = "FAULT=few"  # the server shows two alternatives only
    dist = sorted(next_token_logprobs(prompt).items(), key=lambda kv: -kv[1])[:2]
    shown = [v for _, v in dist]
    assert [t for t, _ in dist] == ["no", "Spam"]  # " spam" shown, " ham" not
    res = backend.score_labels([prompt], LABELS)
    # " ham" has 3 single-token spellings (tokenizer): its merged probability
    # is at most min(3 x smallest shown, 1 - shown mass) = e^-0.456, above the
    # observed " spam" (e^-1.72): the most likely label is unknown, so the row
    # fails with a reason (before: a bound taken as a score, argmax " spam").
    bound = min(math.log(3) + min(shown),
                math.log(1 - sum(math.exp(v) for v in shown)))
    assert bound > dist[1][1]
    assert np.isnan(res.log_probs[0]).all()
    assert "upper bound is not below the best observed label" in res.errors[0]
    assert not res.extra["bounded"][0]
    backend.set_params(missing_label="nan")
    res = backend.score_labels([prompt], LABELS)
    assert np.isnan(res.log_probs[0, 0]) and res.log_probs[0, 1] == dist[1][1]
    assert res.errors == [None]


def test_no_label_in_top_k_gives_nan_row_with_error(backend):
    backend.set_params(top_logprobs=1)
    prompts = [f"p{i}" for i in range(20)]
    tops = [
        max(next_token_logprobs(p).items(), key=lambda kv: kv[1])[0] for p in prompts
    ]
    res = backend.score_labels(prompts, LABELS)
    for i, top in enumerate(tops):
        p_top = math.exp(max(next_token_logprobs(prompts[i]).values()))
        if top.strip().lower() in {"ham", "spam"}:
            # The other label is bounded by 1 - p_top: known loser iff p > 1/2.
            if p_top > 0.5:
                assert res.errors[i] is None and res.extra["bounded"][i]
            else:
                assert "upper bound is not below" in res.errors[i]
        else:
            assert np.isnan(res.log_probs[i]).all()
            assert np.isnan(res.extra["uncovered_mass"][i])
            assert "none of the labels among the top-1" in res.errors[i]
    assert any(e is not None for e in res.errors)


def test_logit_bias_pulls_labels_in_and_keeps_ratios(backend, fault_server):
    prompt = "Is it spam? x"
    no_bias = backend.score_labels([prompt], LABELS).log_probs[0]
    # Without bias some spellings fall outside the top-20: the ratio is off.
    exact = _exact_merged(prompt)
    backend.set_params(logit_bias=True)
    biased = backend.score_labels([prompt], LABELS).log_probs[0]
    sent = fault_server.requests[-1]["body"]["logit_bias"]
    assert {VOCAB[int(i)] for i in sent} == {t for v in VARIANTS.values() for t in v}
    assert set(sent.values()) == {10.0}
    # Ratio between labels equals the exact unbiased one; absolute values moved.
    assert biased[0] - biased[1] == pytest.approx(exact[0] - exact[1], abs=1e-9)
    assert abs((no_bias[0] - no_bias[1]) - (exact[0] - exact[1])) > 1e-3
    assert biased[0] > exact[0]


def test_logit_bias_true_without_tokenizer_raises(monkeypatch):
    import sklearn_llmconf.backends.openai._tokenizer as mod

    async def none(*args, **kwargs):
        return None, True  # no tokenizer, definitively

    monkeypatch.setattr(mod.ServerTokenizer, "resolve", none)
    b = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", logit_bias=True,
                      endpoint="chat")
    with pytest.raises(ValueError, match="logit_bias=True needs token ids"):
        b.score_labels(["x"], LABELS)


@pytest.fixture
def short_sdk_backoff(monkeypatch):
    """The SDK's backoff before retrying a dropped connection (no Retry-After):
    0.05 s instead of 0.5 s, doubling. The tests count attempts, not seconds."""
    import openai._base_client

    monkeypatch.setattr(openai._base_client, "INITIAL_RETRY_DELAY", 0.05,
                        raising=False)


def _fault_batch():
    good = _both_shown([f"good {i}" for i in range(30)])[:4]
    faults = {
        "FAULT=500x2": None,  # fails twice, third attempt succeeds
        "FAULT=503x9": "HTTP 503 (InternalServerError)",
        "FAULT=dropx1": None,
        "FAULT=drop": "connection error (2 retries exhausted)",
        "FAULT=malformed": "malformed response (JSONDecodeError)",
        "FAULT=nologprobs": "response has no logprobs",
    }
    # A suffix for which both labels are shown, so recovered rows are exact.
    faulty = {
        _both_shown([f"{f} {i}" for i in range(40)])[0]: err
        for f, err in faults.items()
    }
    return good, faulty


def test_faults_give_documented_rows_and_keep_the_rest(backend, fault_server,
                                                       short_sdk_backoff):
    good, faulty = _fault_batch()
    prompts = good[:2] + list(faulty) + good[2:]
    res = backend.score_labels(prompts, LABELS)
    by_prompt = dict(
        zip(prompts, zip(res.log_probs, res.errors, strict=True), strict=True)
    )
    for p in good:
        row, err = by_prompt[p]
        assert err is None
        np.testing.assert_allclose(row, _expected(p), atol=1e-9)
    for p, expected_error in faulty.items():
        row, err = by_prompt[p]
        assert err == expected_error, p
        if expected_error is None:
            np.testing.assert_allclose(row, _expected(p), atol=1e-9)
        else:
            assert np.isnan(row).all()
    # The SDK retried: 3 attempts for the 500x2 row, 1 + max_retries for 503.
    attempts = {k[1].split()[0]: v for k, v in fault_server.attempts.items()}
    assert attempts["FAULT=500x2"] == 3
    assert attempts["FAULT=503x9"] == 3
    assert attempts["FAULT=drop"] == 3


@pytest.mark.slow
def test_429_honours_retry_after(backend, fault_server, monkeypatch):
    start = time.perf_counter()
    res = backend.score_labels(["FAULT=429x1 r", "fine 1"], LABELS)
    elapsed = time.perf_counter() - start
    assert res.errors == [None, None]
    assert fault_server.attempts[("429", "FAULT=429x1 r")] == 2
    assert elapsed >= 1.0  # Retry-After: 1, not the 0.5 s default backoff
    # A 429 that lasts: the transport re-sends it once here (4 times, 1 s
    # apart, by default), then the SDK, with no retries left, raises it.
    monkeypatch.setattr(_transport, "MAX_RATE_LIMIT_RESENDS", 1)
    backend.set_params(max_retries=0)
    res = backend.score_labels(["FAULT=429 s", "fine"], LABELS)
    assert res.errors == ["HTTP 429 (RateLimitError)", None]
    assert fault_server.attempts[("429", "FAULT=429 s")] == 2


@pytest.mark.slow
def test_slow_response_times_out(backend, fault_server):
    fault_server.slow_s = 1.5
    backend.set_params(timeout=0.3, max_retries=0)
    start = time.perf_counter()
    res = backend.score_labels(["FAULT=slow t", "fine"], LABELS)
    assert time.perf_counter() - start < 1.4
    assert res.errors == ["timed out after 0.3 s (0 retries exhausted)", None]
    assert np.isnan(res.log_probs[0]).all() and not np.isnan(res.log_probs[1]).any()


def test_concurrency_is_bounded(backend, fault_server):
    backend.score_labels(["warm"], LABELS)  # tokenizer and label spec resolved
    fault_server.latency = 0.3
    peaks = {}
    for conc in (2, 8):
        backend.set_params(max_concurrency=conc)
        with fault_server.lock:
            fault_server.max_in_flight = 0
        res = backend.score_labels([f"c{i}" for i in range(8)], LABELS)
        assert res.usage.calls == 8
        peaks[conc] = fault_server.max_in_flight
    # Counted at the server, not timed: a loaded machine cannot make it flaky.
    assert peaks[2] == 2  # the semaphore bounds in-flight requests...
    assert peaks[8] > 2  # ...and requests really overlap when allowed


def test_works_inside_a_running_event_loop(backend):
    async def notebook_cell():
        return backend.score_labels(["inside loop"], LABELS)

    res = asyncio.run(notebook_cell())
    np.testing.assert_allclose(res.log_probs[0], _expected("inside loop"), atol=1e-9)


def test_full_sequence_auto_detection(backend, fault_server):
    backend.set_params(endpoint="completions")
    res = backend.score_labels(["Some text. Label:"], LABELS)
    assert res.extra["scoring"] == "first_token"
    assert res.extra["scoring_reason"] == "echo probe: HTTP 400"
    assert not backend.capabilities().full_sequence

    fault_server.echo_capable = True
    b = clone(backend)
    texts = ["Some text. Label:", "Another one. Label:"]
    labels = [" ham", " spam and eggs"]
    res = b.score_labels(texts, labels)
    assert res.extra["scoring"] == "full_sequence" and res.errors == [None, None]
    for i, t in enumerate(texts):
        for j, lab in enumerate(labels):
            toks = echo_tokens(t + lab)
            want = sum(v for tok, off, v in toks if off + len(tok) > len(t))
            assert res.log_probs[i, j] == pytest.approx(want, abs=1e-12)
    # capabilities() depends on parameters only, not on what the probe found.
    assert not b.capabilities().full_sequence
    assert res.usage.calls == 4

    # The probe's answer is kept: no second probe.
    def n_probes():
        return sum(
            str(r["body"].get("prompt", "")).startswith("The capital of France")
            for r in fault_server.requests
        )

    before = n_probes()
    b.score_labels(texts[:1], labels)
    assert n_probes() == before

    # A server echoing shifted log-probs (llama-cpp-python) is detected.
    fault_server.echo_misaligned = True
    res = clone(backend).set_params(missing_label="nan").score_labels(texts, labels)
    assert res.extra["scoring"] == "first_token"
    assert "disagree with next-token" in res.extra["scoring_reason"]
    assert res.errors == [None, None]


def test_full_sequence_needs_completions_endpoint(backend):
    backend.set_params(scoring="full_sequence", endpoint="chat")
    with pytest.raises(ValueError, match="endpoint='completions'"):
        backend.score_labels(["x"], LABELS)


def test_params_identity_capabilities(backend):
    ident = backend.cache_identity()
    assert ident["model"] == "fake-model" and ident["backend"] == "OpenAIBackend"
    for knob in ("api_key_env", "max_concurrency", "timeout", "max_retries"):
        assert knob not in ident
    caps = backend.capabilities()
    assert caps.logprobs and caps.sampling and caps.n_per_request
    assert caps.max_top_logprobs == 20
    b = OpenAIBackend(base_url="http://user:pw@host:8000/v1", endpoint="chat")
    assert b.cache_identity()["base_url"] == "http://host:8000/v1"
    with pytest.raises(ValueError):
        OpenAIBackend(endpoint="bogus").score_labels(["x"], LABELS)
    assert backend.score_labels([], LABELS).log_probs.shape == (0, 2)


def test_cache_identity_sends_nothing_prepare_probes_once(backend, fault_server,
                                                          tmp_path):
    from sklearn_llmconf import LLMClassifier

    auto = clone(backend).set_params(endpoint="auto")
    n = len(fault_server.requests)
    for _ in range(3):
        assert auto.cache_identity()["endpoint"] == "auto"  # not learned yet
    assert len(fault_server.requests) == n
    assert auto.prepare() is auto
    probed = len(fault_server.requests)
    assert probed > n  # the probe
    assert auto.cache_identity()["endpoint"] == auto.endpoint_[0] == "completions"
    auto.prepare(), auto.cache_identity()
    assert len(fault_server.requests) == probed  # learned: no second probe
    # scoring through a cache prepares first: the keys hold the probed endpoint
    cache = ResponseCache(tmp_path / "c.sqlite")
    clf = LLMClassifier(backend=clone(auto), n_shots=0, calibration=None, cache=cache)
    clf.fit(["spam offer", "ham lunch"], ["spam", "ham"])
    assert len(fault_server.requests) == probed  # fit alone sends nothing
    clf.predict_proba(["spam offer"])
    assert clf.backend.cache_identity()["endpoint"] == "completions"
    assert cache.get_many([ResponseCache.make_key(
        clf.backend.cache_identity(), clf._render([("spam offer",)])[0].text,
        [" ham", " spam"])])
    # without a server to ask, nothing is probed and nothing is unknown
    offline = OpenAIBackend("fake-model", base_url=None, endpoint="auto")
    assert offline.cache_identity()["endpoint"] == "chat"


def test_secret_never_leaks(backend, fault_server, caplog, tmp_path,
                            short_sdk_backoff):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        good, faulty = _fault_batch()
        res = backend.score_labels(good + list(faulty), LABELS)
    assert fault_server.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    texts = [repr(backend), str(backend.get_params()), str(res.errors), str(res.extra)]
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.__dict__) for r in caplog.records]
    texts += [str(w.message) for w in caught]
    assert caplog.records  # the SDK did log (at DEBUG)
    for text in texts:
        assert SECRET not in text
    blob = pickle.dumps(backend)
    assert SECRET.encode() not in blob
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.set_many(
        {
            ResponseCache.make_key(backend.cache_identity(), p, LABELS): row
            for p, row in zip(good, res.log_probs[: len(good)], strict=True)
        }
    )
    cache.close()
    for f in tmp_path.iterdir():
        assert SECRET.encode() not in f.read_bytes()
    clone_ = pickle.loads(blob)
    assert clone_.score_labels(good[:1], LABELS).errors == [None]
