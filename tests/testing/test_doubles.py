"""The test doubles of sklearn_llmconf.testing."""

import json
import urllib.error
import urllib.request

import pytest

import sklearn_llmconf.testing as testing


def test_public_names():
    assert sorted(testing.__all__) == [
        "EmbeddedModel",
        "FaultServer",
        "KeywordBackend",
        "OpenAILikeServer",
        "VLLMLikeServer",
    ]


def test_fault_server_answers_on_loopback():
    server = testing.FaultServer().start()
    try:
        assert server.base_url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            server.base_url + "/completions",
            data=json.dumps(
                {"model": "m", "prompt": "FAULT=500x1 hi", "max_tokens": 1,
                 "logprobs": 2}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError, match="500"):
            urllib.request.urlopen(request, timeout=10)
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = json.load(answer)
        assert len(body["choices"]) == 1
    finally:
        server.stop()
