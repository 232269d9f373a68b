"""OpenAIBackend.generate and the generation strategies over HTTP (fault server)."""

import json

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator

from sklearn_llmconf import LLMClassifier, SelfConsistency, TemperatureScaler
from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.testing._fault_server import sample_token

X = np.array([f"message number {i} about the weather" for i in range(12)])
Y = np.array(["ham", "spam"] * 6)


@pytest.fixture
def backend(fault_server):
    return OpenAIBackend(
        "fake-model", base_url=fault_server.base_url, api_key_env=None,
        max_retries=0, timeout=5.0,
    )


def _generation_requests(server):
    return [r["body"] for r in server.requests if r["path"].startswith("/v1/")]


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_one_request_per_prompt_when_server_honours_n(backend, fault_server, endpoint):
    backend.set_params(endpoint=endpoint, system_prompt="Be brief.")
    prompts = ["first prompt", "second prompt"]
    res = backend.generate(prompts, n_samples=5, temperature=0.7, max_tokens=8,
                           seed=11, stop=["\n\n"])
    expected = [[sample_token(p, 0.7, 11, j) for j in range(5)] for p in prompts]
    assert res.texts == expected
    assert res.errors == [None, None]
    assert res.usage.calls == 2
    assert res.usage.completion_tokens == 10  # 5 one-token choices per prompt
    bodies = _generation_requests(fault_server)
    assert len(bodies) == 2
    for body in bodies:
        assert body["n"] == 5 and body["seed"] == 11 and body["temperature"] == 0.7
        assert body["max_tokens"] == 8 and body["stop"] == ["\n\n"]
        assert "logprobs" not in body and "logit_bias" not in body
    if endpoint == "chat":
        assert bodies[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert backend.capabilities().n_per_request


def test_server_ignoring_n_gets_seeded_single_requests(backend, fault_server):
    fault_server.honor_n = False  # like llama-cpp-python
    res = backend.generate(["only prompt"], n_samples=4, temperature=1.0, seed=3)
    # Sample 0 from the n=4 request (seed 3), samples 1-3 from seeds 4, 5, 6.
    assert res.texts == [[sample_token("only prompt", 1.0, 3 + j, 0) for j in range(4)]]
    seeds = sorted(b["seed"] for b in _generation_requests(fault_server))
    assert seeds == [3, 3 + 1, 3 + 2, 3 + 3]
    assert res.usage.calls == 4
    # Stable: capabilities() does not change after a call (strategy='auto').
    assert backend.capabilities().n_per_request

    # Learned: later prompts go straight to single requests, seeds 3..6.
    fault_server.reset()
    fault_server.honor_n = False
    res2 = backend.generate(["only prompt", "other"], n_samples=4, temperature=1.0,
                            seed=3)
    assert res2.texts[0] == res.texts[0]
    bodies = _generation_requests(fault_server)
    assert len(bodies) == 8 and all("n" not in b for b in bodies)


def test_greedy_generation_is_one_request_repeated(backend, fault_server):
    res = backend.generate(["greedy prompt"], n_samples=3, temperature=0.0,
                           max_tokens=4)
    assert res.texts == [[sample_token("greedy prompt", 0.0, None, 0)] * 3]
    (body,) = _generation_requests(fault_server)
    assert "n" not in body and "seed" not in body and body["temperature"] == 0.0


def test_failed_prompt_keeps_the_others(backend, fault_server):
    prompts = ["good one", "bad FAULT=500", "also good", "broken FAULT=malformed"]
    res = backend.generate(prompts, n_samples=2, temperature=0.5, seed=0)
    assert res.texts[0] and res.texts[2] and res.texts[1] == [] == res.texts[3]
    assert res.errors[0] is None and res.errors[2] is None
    assert res.errors[1] == "HTTP 500 (InternalServerError)"
    assert res.errors[3].startswith("malformed response")


def test_generate_validates_arguments(backend):
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        backend.generate(["x"], n_samples=0)
    with pytest.raises(ValueError, match="At most 4 stop strings"):
        backend.generate(["x"], stop=list("abcde"))
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        backend.generate(["x"], temperature=-1.0)
    assert backend.generate([]).texts == []


def test_consistency_strategy_over_http_counts_the_votes(backend, fault_server):
    """Probabilities are the smoothed shares of the server's sampled answers."""
    fault_server.honor_n = False

    def reply(prompt, seed, index):
        # A deterministic, prompt-dependent answer so that votes differ by row.
        token = sample_token(prompt, 1.0, seed, index)
        return " spam" if token in (" spam", "spam", "Spam", " no") else " ham"

    fault_server.reply = reply
    clf = LLMClassifier(backend=backend,
                        strategy=SelfConsistency(n_samples=6, temperature=1.0,
                                                 smoothing=1.0),
                        calibration=None, random_state=5,
                        n_shots=0).fit(X, Y)
    proba = clf.predict_proba(X[:4])
    assert proba.shape == (4, 2) and list(clf.classes_) == ["ham", "spam"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # Recompute the votes from the server's own sampling rule.
    prompts = {}
    for body in _generation_requests(fault_server):
        prompt = body["messages"][-1]["content"]
        prompts.setdefault(prompt, []).append(reply(prompt, body["seed"], 0))
    assert len(prompts) == 4 and all(len(v) == 6 for v in prompts.values())
    for text, row in zip(X[:4], proba, strict=True):
        # Requests run concurrently: find each row's prompt by its text.
        (answers,) = [v for p, v in prompts.items() if f"Text: {text}\n" in p]
        spam = sum(a == " spam" for a in answers)
        np.testing.assert_allclose(row[1], (spam + 1) / (6 + 2))
    assert clf.usage_.calls == 4 * 6


def test_verbalized_strategy_over_http_and_temperature_scaling(backend, fault_server):
    """A chat model answering the whole JSON object; rows it botches follow on_error."""

    def reply(prompt, seed, index):
        text = prompt.rsplit("Text:", 1)[-1]
        if "number 3 " in text:
            return "I am not sure."  # unparseable
        spam = int(text.split("number ")[1].split()[0]) % 2 == 1
        prob = 0.9 if spam else 0.7
        return json.dumps({"label": "spam" if spam else "ham", "probability": prob})

    fault_server.reply = reply
    clf = LLMClassifier(backend=backend, strategy="verbalized", on_error="nan",
                        n_shots=0, calibration=None).fit(X, Y)
    proba = clf.predict_proba(X[:6])
    assert np.isnan(proba[3]).all()
    ok = np.delete(np.arange(6), 3)
    expected = np.array([[0.7, 0.3], [0.1, 0.9]])[ok % 2]
    np.testing.assert_allclose(proba[ok], expected, atol=1e-12)
    assert clf.usage_.failed_rows == 1
    body = _generation_requests(fault_server)[0]
    assert body["temperature"] == 0.0 and body["stop"] == ["}", "\n\n"]
    assert "Answer with JSON only" in body["messages"][-1]["content"]

    # Composes with TemperatureScaler on the verbalized log-scores.
    clf.set_params(on_error="raise")
    keep = np.array([i for i in range(12) if i != 3])
    ts = TemperatureScaler(FrozenEstimator(clf), bias=True).fit(X[keep], Y[keep])
    calibrated = ts.predict_proba(X[keep])
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    assert (ts.predict(X[keep]) == Y[keep]).all()


def test_extra_body_reaches_every_request_and_the_cache_key(backend, fault_server):
    backend.set_params(extra_body={"repeat_penalty": 1.0, "top_k": 5})
    backend.generate(["some prompt"], n_samples=2, temperature=0.5, seed=1)
    backend.score_labels(["some prompt"], [" ham", " spam"])
    bodies = _generation_requests(fault_server)
    # Generation, scoring, and the endpoint probe's requests (endpoint="auto").
    assert len(bodies) >= 2
    assert all(b["repeat_penalty"] == 1.0 and b["top_k"] == 5 for b in bodies)
    identity = backend.cache_identity()
    assert identity["extra_body"] == {"repeat_penalty": 1.0, "top_k": 5}
    assert backend.set_params(extra_body=None).cache_identity() != identity
