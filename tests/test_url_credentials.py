"""A password in an HTTP base_url stays out of pickles (#38), as a PostgreSQL
one does, and ``n_jobs`` workers still authenticate."""

import base64
import os
import pickle
import subprocess
import sys

import pytest
from sklearn.base import clone

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.backends.openai import _client

PASSWORD = "pw-8d2e-0x5ecret"
X = [f"message {i} {'win a prize' if i % 2 else 'see you'}" for i in range(12)]
Y = ["spam" if i % 2 else "ham" for i in range(12)]


def with_userinfo(url, userinfo=f"alice:{PASSWORD}"):
    return url.replace("http://", f"http://{userinfo}@")


def basic(userinfo=f"alice:{PASSWORD}"):
    return "Basic " + base64.b64encode(userinfo.encode()).decode()


def make(fault_server, **kw):
    backend = OpenAIBackend("m", base_url=with_userinfo(fault_server.base_url),
                            api_key_env=None, logit_bias=False, endpoint="chat")
    return LLMClassifier(backend=backend, n_shots=0, calibration=None, **kw)


def test_backend_and_fitted_classifier_pickles_hold_no_password(fault_server):
    clf = make(fault_server).fit(X, Y)
    for obj in (clf.backend, clf, clone(clf)):
        data = pickle.dumps(obj)
        assert PASSWORD.encode() not in data  # regression (#38): it was there
    # in this process the password comes back, and is sent
    again = pickle.loads(pickle.dumps(clf))
    assert again.backend.base_url == with_userinfo(fault_server.base_url)
    fault_server.reset()
    again.predict_proba(X[:2])
    assert {r["headers"]["authorization"] for r in fault_server.requests} == {
        basic()}
    assert PASSWORD not in repr(again) and PASSWORD not in repr(again.backend)


def _unpickle_in_child(data, env):
    code = ("import pickle, sys; b = pickle.loads(sys.stdin.buffer.read()); "
            "print(str(b.base_url))")
    done = subprocess.run([sys.executable, "-c", code], input=data, env=env,
                          capture_output=True, timeout=120, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout.decode().strip()


def test_another_process_gets_the_password_only_through_the_environment(
        fault_server):
    backend = make(fault_server).backend
    data = pickle.dumps(backend)
    started_by_us = dict(os.environ)
    assert _unpickle_in_child(data, started_by_us) == with_userinfo(
        fault_server.base_url)
    elsewhere = {k: v for k, v in os.environ.items()
                 if not k.startswith(_client.SECRET_ENV_PREFIX)}
    assert _unpickle_in_child(data, elsewhere) == with_userinfo(
        fault_server.base_url, "alice")


def test_n_jobs_workers_authenticate(fault_server):
    from joblib.externals.loky import get_reusable_executor

    clf = make(fault_server, n_jobs=2)
    # Workers started after the URL was set inherit its password (a reusable
    # executor from an earlier test would predate it: start afresh).
    get_reusable_executor().shutdown(wait=True)
    clf.fit(X, Y)
    fault_server.reset()
    proba = clf.predict_proba(X)
    assert proba.shape == (12, 2)
    sent = [r["headers"].get("authorization") for r in fault_server.requests]
    assert len(sent) >= 12 and set(sent) == {basic()}


@pytest.mark.parametrize("url", ["http://bob@127.0.0.1:9/v1",
                                 "http://127.0.0.1:9/v1"])
def test_urls_without_password_pickle_as_they_are(url):
    backend = pickle.loads(pickle.dumps(OpenAIBackend("m", base_url=url)))
    assert backend.base_url == url


def test_no_password_in_a_printed_line(capsys, tmp_path):
    from sklearn_llmconf import cli

    data = tmp_path / "d.csv"
    data.write_text("body,kind\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(20)))
    for url in (f"ftp://alice:{PASSWORD}@h/v1", f"http://alice:{PASSWORD}@[::1"):
        assert cli.main(["fit", str(data), "--text-column", "body",
                         "--label-column", "kind", "--model", "m", "--base-url",
                         url, "-o", str(tmp_path / "m.skops")]) == 2
        out = capsys.readouterr()
        assert PASSWORD not in out.out + out.err
        assert len(out.err.strip().splitlines()) == 1
