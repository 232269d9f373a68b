"""The public utilities: test doubles and the llama.cpp loader guard."""

import json
import urllib.error
import urllib.request

import pytest

import sklearn_llmconf.utils as utils
from sklearn_llmconf.backends.llamacpp import _backend as _llamacpp


def test_public_names():
    assert sorted(utils.__all__) == [
        "EmbeddedModel",
        "FaultServer",
        "KeywordBackend",
        "OpenAILikeServer",
        "VLLMLikeServer",
        "without_extra_buffer_types",
    ]
    assert utils.without_extra_buffer_types is _llamacpp.without_extra_buffer_types


def test_fault_server_answers_on_loopback():
    server = utils.FaultServer().start()
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
