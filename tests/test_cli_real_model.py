"""fit / predict / report as a user runs them, on a real model.

The commands run as separate processes (``python -m sklearn_llmconf.cli``, the
installed package: in CI the fresh virtual environment of .ci/run) on a CSV
assembled from the bundled SMS data with the user's own column names.
"""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sklearn_llmconf.datasets import load_sms_spam
from tests.backends.test_openai_server import llama_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def sklearn_llmconf(*args, check=True):
    done = subprocess.run([sys.executable, "-m", "sklearn_llmconf.cli", *args],
                          capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return str(path)


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    X, y = load_sms_spam(return_X_y=True)
    verdict = {"ham": "keep", "spam": "junk"}
    lab = write_csv(tmp / "inbox_labelled.csv", ["msg_id", "sms_body", "verdict"],
                    [[f"m{i}", X[i], verdict[y[i]]] for i in range(80)])
    new = write_csv(tmp / "inbox_new.csv", ["msg_id", "sms_body", "verdict"],
                    [[f"n{i}", X[i], verdict[y[i]]] for i in range(2000, 2024)])
    return tmp, lab, new


@pytest.fixture(scope="module")
def embedded_model(user_files):
    pytest.importorskip("llama_cpp")
    tmp, lab, _ = user_files
    model = str(tmp / "inbox.skops")
    done = sklearn_llmconf("fit", lab, "--text-column", "sms_body",
                           "--label-column", "verdict", "--n-shots", "8",
                           "--n-scale", "30", "--tiers", "auto=0.9,check=0.7",
                           "--classifier", "llm", "--quiet", "-o", model)
    return model, done


def test_fit_predict_report_on_the_embedded_model(user_files, embedded_model):
    tmp, lab, new = user_files
    model, fit = embedded_model
    lines = fit.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[2:5]] == ["auto", "check", "escalate"]
    assert "80 labelled rows: 8 demonstrations, 30 in-fit calibration, 40 " \
        "certification; LlamaCppBackend" in fit.stderr
    out = str(tmp / "decisions.csv")
    done = sklearn_llmconf("predict", model, new, "-o", out, "--id-column",
                           "msg_id", "--all-probabilities", "--quiet")
    rows = read(out)
    assert rows[0] == ["id", "label", "probability", "proba_junk", "proba_keep",
                       "tier", "failure_reason"]
    assert [r[0] for r in rows[1:]] == [f"n{i}" for i in range(2000, 2024)]
    p = np.array([[float(r[3]), float(r[4])] for r in rows[1:]])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    truth = [r[2] for r in read(new)[1:]]
    accuracy = np.mean([r[1] == t for r, t in zip(rows[1:], truth)])
    assert accuracy >= 0.75
    assert "24 model calls, 0 cache hits" in done.stderr
    html = str(tmp / "report.html")
    done = sklearn_llmconf("report", model, new, "-o", html, "--quiet")
    page = open(html, encoding="utf-8").read()
    assert "Measured on 24 labelled rows" in page and page.count("<svg") == 2
    assert "SmolLM2-135M-Instruct.Q4_1.gguf SHA-256 " in page
    # the report re-scored nothing: every prompt came from the cache
    assert "This run: 0 model calls, 24 cache hits" in page


def test_kill_during_predict_then_rerun_gives_the_same_file(user_files,
                                                            embedded_model):
    tmp, _, new = user_files
    model, _ = embedded_model
    out, cache = str(tmp / "killed.csv"), str(tmp / "killed.sqlite")
    args = [sys.executable, "-m", "sklearn_llmconf.cli", "predict", model, new,
            "-o", out, "--cache", cache, "--chunk-size", "4", "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    written = 0
    while written < 9 and time.monotonic() < deadline:  # 2 chunks of 4 rows
        time.sleep(0.05)
        if os.path.exists(out + ".partial"):
            written = len(read(out + ".partial"))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert written >= 9 and not os.path.exists(out)  # no half file under the name
    done = sklearn_llmconf("predict", model, new, "-o", out, "--cache", cache,
                           "--chunk-size", "4", "--quiet")
    calls, hits = (int(w) for w in done.stderr.split("failed. ")[1].split()[::3][:2])
    assert calls + hits == 24 and hits >= written - 1  # nothing paid twice
    # against a run that scored every row afresh
    ref = str(tmp / "fresh.csv")
    sklearn_llmconf("predict", model, new, "-o", ref, "--cache",
                    str(tmp / "fresh.sqlite"), "--quiet")
    assert open(out, "rb").read() == open(ref, "rb").read()


@pytest.mark.server
def test_fit_predict_report_on_a_llama_cpp_server(user_files, llama_server):  # noqa: F811
    tmp, lab, new = user_files
    model = str(tmp / "server.skops")
    sklearn_llmconf("fit", lab, "--text-column", "sms_body", "--label-column",
                    "verdict", "--base-url", llama_server, "--model", "smollm2",
                    "--no-api-key", "--n-shots", "4", "--n-scale", "10",
                    "--tiers", "auto=0.8", "--classifier", "llm", "--quiet",
                    "-o", model)
    out = str(tmp / "server.csv")
    # the user confirms the server (a model file never chooses it, issue 38)
    done = sklearn_llmconf("predict", model, new, "-o", out, "--quiet",
                           "--base-url", llama_server, "--no-api-key", check=False)
    assert done.returncode in (0, 1), done.stderr
    rows = read(out)
    assert len(rows) == 25 and {r[3] for r in rows[1:]} <= {"auto", "escalate"}
    scored = [r for r in rows[1:] if r[1]]
    assert len(scored) >= 20
    html = str(tmp / "server.html")
    sklearn_llmconf("report", model, "-o", html)
    page = open(html, encoding="utf-8").read()
    assert f"server {llama_server} model smollm2" in page


def test_fit_predict_report_with_the_hybrid_kept(user_files):
    """60 labelled rows, one of them the only row of its class; the hybrid
    (LLM scores + TF-IDF + embeddings when installed) kept and certified."""
    pytest.importorskip("llama_cpp")
    tmp, _, new = user_files
    X, y = load_sms_spam(return_X_y=True)
    verdict = {"ham": "keep", "spam": "junk"}
    rows = [[f"m{i}", X[i], verdict[y[i]]] for i in range(100, 160)]
    rows[7][2] = "phishing"  # a class of one labelled row
    lab = write_csv(tmp / "hybrid_labelled.csv", ["msg_id", "sms_body", "verdict"],
                    rows)
    model = str(tmp / "hybrid.skops")
    fit = sklearn_llmconf("fit", lab, "--text-column", "sms_body",
                          "--label-column", "verdict", "--n-shots", "4",
                          "--tiers", "auto=0.9", "--classifier", "hybrid",
                          "--quiet", "-o", model)
    assert "kept: hybrid; share of the certification rows decided per tier: " \
        "auto " in fit.stdout
    assert "60 labelled rows: 30 training (4 demonstrations), 30 " \
        "certification; LlamaCppBackend" in fit.stderr
    assert "cannot be certified: phishing" in fit.stderr
    from sklearn_llmconf.persistence import load_model

    router, desc, _ = load_model(model, check=False)
    assert desc["estimator"] == "BlockStackingClassifier"
    assert desc["classes"] == ["junk", "keep", "phishing"]
    # the LLM is called for new rows only when the kept stack uses its block
    calls = 24 if "llm" in router.estimator_.estimator.final_blocks_ else 0
    out = str(tmp / "hybrid.csv")
    done = sklearn_llmconf("predict", model, new, "-o", out, "--id-column",
                           "msg_id", "--all-probabilities", "--quiet")
    decisions = read(out)
    assert decisions[0][3:6] == ["proba_junk", "proba_keep", "proba_phishing"]
    p = np.array([[float(v) for v in r[3:6]] for r in decisions[1:]])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    truth = [r[2] for r in read(new)[1:]]
    assert np.mean([r[1] == t for r, t in zip(decisions[1:], truth)]) >= 0.75
    assert f"{calls} model calls" in done.stderr
    html = str(tmp / "hybrid.html")
    sklearn_llmconf("report", model, new, "-o", html, "--quiet")
    page = open(html, encoding="utf-8").read()
    assert "certified: hybrid." in page and "Measured on 24 labelled rows" in page
    assert "Does the measured precision contradict the certificate?" in page
    assert f"This run: 0 model calls, {calls} cache hits" in page
