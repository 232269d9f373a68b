"""fit / predict / report as a user runs them, on the embedded model.

``fit`` (and the first ``predict``) run as separate processes (``python -m
sklearn_llmconf.cli``, the installed package: in CI the fresh virtual
environment of .ci/run); the later commands run ``cli.main`` in the test's
process (``sklearn_llmconf_here``: the model file is read back from disk, the
imports are not paid again) on a CSV
assembled from the bundled SMS data with the user's own column names.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests._cli_real import (  # noqa: F401 (fixture)
    read,
    sklearn_llmconf,
    sklearn_llmconf_here,
    user_files,
)

# The fixtures imported from tests._cli_real are parameters of the tests.
# ruff: noqa: F811

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded_model(user_files):
    pytest.importorskip("llama_cpp")
    tmp, lab, _ = user_files
    model = str(tmp / "inbox.skops")
    done = sklearn_llmconf("fit", lab, "--text-column", "sms_body",
                           "--label-column", "verdict", "--n-shots", "4",
                           "--n-scale", "30", "--tiers", "auto=0.9,check=0.7",
                           "--classifier", "llm", "--quiet", "-o", model)
    return model, done


# predict's options in both tests: the kill test's file is compared with the
# fresh run's byte for byte
PREDICT = ("--id-column", "msg_id", "--all-probabilities", "--quiet")


@pytest.fixture(scope="module")
def fresh_predictions(user_files, embedded_model):
    """predict on the 24 new rows, every row scored afresh (asserted below)."""
    tmp, _, new = user_files
    model, _ = embedded_model
    out = str(tmp / "decisions.csv")
    done = sklearn_llmconf("predict", model, new, "-o", out, *PREDICT)
    return out, done


def test_fit_predict_report_on_the_embedded_model(user_files, embedded_model,
                                                  fresh_predictions):
    tmp, lab, new = user_files
    model, fit = embedded_model
    lines = fit.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[2:5]] == ["auto", "check", "escalate"]
    assert "80 labelled rows: 4 demonstrations, 30 in-fit calibration, 40 " \
        "certification; LlamaCppBackend" in fit.stderr
    out, done = fresh_predictions
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
    done = sklearn_llmconf_here("report", model, new, "-o", html, "--quiet")
    page = open(html, encoding="utf-8").read()
    assert "Measured on 24 labelled rows" in page and page.count("<svg") == 2
    assert "SmolLM2-135M-Instruct.Q4_1.gguf SHA-256 " in page
    # the report re-scored nothing: every prompt came from the cache
    assert "This run: 0 model calls, 24 cache hits" in page


def test_kill_during_predict_then_rerun_gives_the_same_file(user_files,
                                                            embedded_model,
                                                            fresh_predictions):
    tmp, _, new = user_files
    model, _ = embedded_model
    out, cache = str(tmp / "killed.csv"), str(tmp / "killed.sqlite")
    args = [sys.executable, "-m", "sklearn_llmconf.cli", "predict", model, new,
            "-o", out, "--cache", cache, "--chunk-size", "4", *PREDICT]
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
                           "--chunk-size", "4", *PREDICT)
    calls, hits = (int(w) for w in done.stderr.split("failed. ")[1].split()[::3][:2])
    assert calls + hits == 24 and hits >= written - 1  # nothing paid twice
    # against the run that scored every row afresh, in one chunk, with
    # another cache (the model file's own)
    ref, fresh = fresh_predictions
    assert "24 model calls, 0 cache hits" in fresh.stderr
    assert open(out, "rb").read() == open(ref, "rb").read()
