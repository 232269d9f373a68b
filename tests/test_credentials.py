"""Credentials never leave (#22): the OpenAI key, database passwords."""

import os
import pickle
import warnings

import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_llmconf import LLMClassifier, PostgresResponseCache, ResponseCache
from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.backends.openai import _client
from sklearn_llmconf.testing import KeywordBackend

KEY = "sk-proj-OPENAI0123456789abcdefXYZ"
LABELS = [" ham", " spam"]
URL = "postgresql://app:S3CRETpw@db.example/llm"


@pytest.fixture
def openai_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(_client, "_WARNED_PLACEHOLDER", set())


def test_openai_key_is_not_sent_to_another_server(fault_server, openai_key):
    # Regression (#22): the default api_key_env sent the OpenAI key to base_url.
    b = OpenAIBackend("m", base_url=fault_server.base_url, logit_bias=False)
    with pytest.warns(UserWarning, match=r"OPENAI_API_KEY was not sent to "
                                         r"http://127\.0\.0\.1.*'EMPTY' was sent"):
        assert b.score_labels(["x"], LABELS).errors == [None]
    sent = fault_server.requests[-1]["headers"]["authorization"]
    assert sent == "Bearer EMPTY" and KEY not in sent
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per server
        b.score_labels(["y"], LABELS)


def test_openai_base_url_from_the_environment_counts_too(fault_server, openai_key,
                                                         monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fault_server.base_url)
    assert _client.resolve_api_key("OPENAI_API_KEY", None) == "EMPTY"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert _client.resolve_api_key("OPENAI_API_KEY", None) == KEY
    assert _client.resolve_api_key("OPENAI_API_KEY", "https://api.openai.com/v1") == KEY
    assert _client.resolve_api_key("OPENAI_API_KEY",
                                   "https://api.openai.com.evil.example/v1") == "EMPTY"


def test_a_named_variable_or_callable_is_sent(fault_server, openai_key, monkeypatch):
    monkeypatch.setenv("LLMCONF_SERVER_KEY", "server-key-123")
    b = OpenAIBackend("m", base_url=fault_server.base_url, logit_bias=False,
                      api_key_env="LLMCONF_SERVER_KEY")
    b.score_labels(["x"], LABELS)
    assert fault_server.requests[-1]["headers"]["authorization"] == (
        "Bearer server-key-123")
    b.set_params(api_key_env=lambda: os.environ["OPENAI_API_KEY"])  # on purpose
    b.score_labels(["y"], LABELS)
    assert fault_server.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"


def test_database_password_is_masked_in_reprs_and_left_out_of_pickles():
    # Regression (#22): repr(clf), get_params(), GridSearchCV and pickles showed it.
    clf = LLMClassifier(backend=KeywordBackend(), cache=URL)
    search = GridSearchCV(clf, {"n_shots": [0, 2]})
    shown = [repr(clf), repr(clf.get_params()), repr(search), clf._repr_html_(),
             repr(PostgresResponseCache(URL))]
    for text in shown:
        assert "S3CRETpw" not in text
    assert "app:***@db.example" in repr(clf)
    for blob in (pickle.dumps(clf), pickle.dumps(search), pickle.dumps(clf.cache),
                 pickle.dumps(PostgresResponseCache(URL))):
        assert b"S3CRETpw" not in blob
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.cache == "postgresql://app@db.example/llm"  # libpq: PGPASSWORD
    # get_params returns what was set; clone and set_params keep it.
    assert clf.get_params()["cache"] == URL
    assert clone(clf).cache == URL
    assert clone(clf).set_params(cache=URL).cache == URL
    assert "S3CRETpw" not in repr(clf.set_params(cache=URL))
    # Anything else is stored as given.
    assert LLMClassifier(cache="postgresql://app@db/llm").cache == (
        "postgresql://app@db/llm")
    assert type(LLMClassifier(cache="c.sqlite").cache) is str


def test_a_server_url_is_not_taken_for_an_sqlite_file():
    with pytest.raises(ValueError, match="PostgresResponseCache"):
        ResponseCache(URL)
    assert "S3CRETpw" not in repr(PostgresResponseCache(URL))
