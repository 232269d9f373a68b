"""Common key mistakes must neither leak nor mislead (issue #11, item 4)."""

import logging
import pickle
import warnings
from functools import partial

import pytest
from sklearn.base import clone

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.backends.openai import _client

KEY = "sk-proj-SECRET0123456789abcdefXYZ"
LABELS = [" ham", " spam"]


@pytest.mark.parametrize("value", [KEY, "0123456789abcdef0123", "AIza-Sy.Dtoken-xyz",
                                   "abcdEFGHijklMNOPqrstUVWX12345678"])
def test_key_given_as_variable_name_is_refused_unprinted(value):
    with pytest.raises(ValueError, match="looks like an API key itself") as info:
        OpenAIBackend("m", api_key_env=value)
    assert value not in str(info.value)
    backend = OpenAIBackend("m")
    with pytest.raises(ValueError, match="looks like an API key itself") as info:
        backend.set_params(api_key_env=value)
    assert value not in str(info.value)
    assert backend.api_key_env == "OPENAI_API_KEY"  # not stored
    assert value not in repr(backend)
    clf = LLMClassifier(backend=OpenAIBackend("m"))
    with pytest.raises(ValueError, match="looks like an API key itself"):
        clf.set_params(backend__api_key_env=value)
    assert value not in repr(clf)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "MY_TEAM_LLM_GATEWAY_KEY_PROD",
                                  "key", "A" * 40 + "_B"])
def test_variable_names_are_accepted(name):
    assert OpenAIBackend("m", api_key_env=name).api_key_env == name


def test_missing_variable_with_base_url_warns_once_and_none_opts_out(
    fault_server, monkeypatch
):
    monkeypatch.delenv("LLMCONF_NO_SUCH_KEY", raising=False)
    monkeypatch.setattr(_client, "_WARNED_PLACEHOLDER", set())
    b = OpenAIBackend("m", base_url=fault_server.base_url,
                      api_key_env="LLMCONF_NO_SUCH_KEY", logit_bias=False)
    with pytest.warns(UserWarning, match="'LLMCONF_NO_SUCH_KEY' gave none.*'EMPTY'"):
        assert b.score_labels(["x"], LABELS).errors == [None]
    assert fault_server.requests[-1]["headers"]["authorization"] == "Bearer EMPTY"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b.score_labels(["y"], LABELS)  # once per server and variable
        b.set_params(api_key_env=None)  # the explicit opt-in: no warning
        monkeypatch.setattr(_client, "_WARNED_PLACEHOLDER", set())
        assert b.score_labels(["z"], LABELS).errors == [None]
    assert fault_server.requests[-1]["headers"]["authorization"] == "Bearer EMPTY"


def test_credentials_in_base_url_stay_out_of_repr_logs_and_cache_keys(
    fault_server, caplog
):
    url = fault_server.base_url.replace("http://", "http://alice:pw-S3CRET@")
    b = OpenAIBackend("m", base_url=url, api_key_env=None, logit_bias="auto")
    clf = LLMClassifier(backend=b, n_shots=0)
    caplog.set_level(logging.DEBUG)
    res = b.score_labels(["x"], LABELS)
    assert res.errors == [None]
    # Sent as HTTP Basic auth, as the HTTP client did with a URL's userinfo.
    auth = fault_server.requests[-1]["headers"]["authorization"]
    assert auth == "Basic YWxpY2U6cHctUzNDUkVU"  # base64("alice:pw-S3CRET")
    shown = [repr(b), repr(clf), clf._repr_html_(), str(b.cache_identity())]
    shown += [r.getMessage() for r in caplog.records]
    assert caplog.records
    for text in shown:
        assert "S3CRET" not in text and "alice" not in text
    assert "***@127.0.0.1" in repr(b)
    # get_params returns what was set, and clone works.
    assert b.get_params()["base_url"] == url
    assert clone(clf).backend.base_url == url
    assert clone(b).set_params(base_url=url).base_url == url


def test_key_callable_is_dropped_on_pickling(fault_server):
    holder = partial(str, KEY)  # a callable holding the key
    b = OpenAIBackend("m", base_url=fault_server.base_url, api_key_env=holder,
                      logit_bias=False)
    assert b.score_labels(["x"], LABELS).errors == [None]
    assert fault_server.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"
    learned = b._learned
    blob = pickle.dumps(b)
    assert KEY.encode() not in blob
    assert b._learned is learned  # pickling leaves the live backend intact
    restored = pickle.loads(blob)
    assert "dropped on pickling" in repr(restored)
    with pytest.raises(RuntimeError, match="dropped when this backend was pickled"):
        restored.score_labels(["x"], LABELS)
    restored.set_params(api_key_env=holder)
    assert restored.score_labels(["x"], LABELS).errors == [None]
    assert b.api_key_env is holder  # the live estimator keeps it
