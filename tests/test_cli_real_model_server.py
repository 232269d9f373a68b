"""fit / predict / report as a user runs them, on a llama.cpp server.

``fit`` (and the first ``predict``) run as separate processes (``python -m
sklearn_llmconf.cli``, the installed package: in CI the fresh virtual
environment of .ci/run); the later commands run ``cli.main`` in the test's
process (``sklearn_llmconf_here``: the model file is read back from disk, the
imports are not paid again) on a CSV
assembled from the bundled SMS data with the user's own column names.
"""

import pytest

from tests._cli_real import (  # noqa: F401 (fixture)
    read,
    sklearn_llmconf,
    sklearn_llmconf_here,
    user_files,
    write_csv,
)
from tests.backends.test_openai_server import llama_server  # noqa: F401 (fixture)

# The fixtures imported from tests._cli_real are parameters of the tests.
# ruff: noqa: F811

pytestmark = pytest.mark.slow


@pytest.mark.server
def test_fit_predict_report_on_a_llama_cpp_server(user_files, llama_server):  # noqa: F811
    tmp, lab, new = user_files
    # Each prompt is one request that the server evaluates from its first
    # token: the first 40 labelled rows and 2 demonstrations keep it short.
    lab = write_csv(tmp / "server_labelled.csv", read(lab)[0], read(lab)[1:41])
    model = str(tmp / "server.skops")
    sklearn_llmconf("fit", lab, "--text-column", "sms_body", "--label-column",
                    "verdict", "--base-url", llama_server, "--model", "smollm2",
                    "--no-api-key", "--n-shots", "2", "--n-scale", "10",
                    "--tiers", "auto=0.8", "--classifier", "llm", "--quiet",
                    "-o", model)
    # 12 new rows (the first half of the user's file)
    new = write_csv(tmp / "server_new.csv", read(new)[0], read(new)[1:13])
    out = str(tmp / "server.csv")
    # the user confirms the server (a model file never chooses it, issue 38)
    done = sklearn_llmconf("predict", model, new, "-o", out, "--quiet",
                           "--base-url", llama_server, "--no-api-key", check=False)
    assert done.returncode in (0, 1), done.stderr
    rows = read(out)
    assert len(rows) == 13 and {r[3] for r in rows[1:]} <= {"auto", "escalate"}
    scored = [r for r in rows[1:] if r[1]]
    assert len(scored) >= 10
    html = str(tmp / "server.html")
    sklearn_llmconf_here("report", model, "-o", html)
    page = open(html, encoding="utf-8").read()
    assert f"server {llama_server} model smollm2" in page
