"""fit / predict / report as a user runs them, the hybrid kept (embedded model).

``fit`` (and the first ``predict``) run as separate processes (``python -m
sklearn_llmconf.cli``, the installed package: in CI the fresh virtual
environment of .ci/run); the later commands run ``cli.main`` in the test's
process (``sklearn_llmconf_here``: the model file is read back from disk, the
imports are not paid again) on a CSV
assembled from the bundled SMS data with the user's own column names.
"""

import numpy as np
import pytest

from sklearn_llmconf.datasets import load_sms_spam
from tests._cli_real import (  # noqa: F401 (fixture)
    read,
    sklearn_llmconf,
    sklearn_llmconf_here,
    user_files,
    write_csv,
)

# The fixtures imported from tests._cli_real are parameters of the tests.
# ruff: noqa: F811

pytestmark = pytest.mark.slow


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
                          "--label-column", "verdict", "--n-shots", "2",
                          "--tiers", "auto=0.9", "--classifier", "hybrid",
                          "--quiet", "-o", model)
    assert "kept: hybrid; share of the certification rows decided per tier: " \
        "auto " in fit.stdout
    assert "60 labelled rows: 30 training (2 demonstrations), 30 " \
        "certification; LlamaCppBackend" in fit.stderr
    assert "cannot be certified: phishing" in fit.stderr
    from sklearn_llmconf.persistence import load_model

    router, desc, _ = load_model(model, check=False)
    assert desc["estimator"] == "BlockStackingClassifier"
    assert desc["classes"] == ["junk", "keep", "phishing"]
    # the LLM is called for new rows only when the kept stack uses its block
    calls = 24 if "llm" in router.estimator_.estimator.final_blocks_ else 0
    out = str(tmp / "hybrid.csv")
    done = sklearn_llmconf_here("predict", model, new, "-o", out, "--id-column",
                                "msg_id", "--all-probabilities", "--quiet")
    decisions = read(out)
    assert decisions[0][3:6] == ["proba_junk", "proba_keep", "proba_phishing"]
    p = np.array([[float(v) for v in r[3:6]] for r in decisions[1:]])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    truth = [r[2] for r in read(new)[1:]]
    assert np.mean([r[1] == t for r, t in zip(decisions[1:], truth)]) >= 0.75
    assert f"{calls} model calls" in done.stderr
    html = str(tmp / "hybrid.html")
    sklearn_llmconf_here("report", model, new, "-o", html, "--quiet")
    page = open(html, encoding="utf-8").read()
    assert "certified: hybrid." in page and "Measured on 24 labelled rows" in page
    assert "Does the measured precision contradict the certificate?" in page
    assert f"This run: 0 model calls, {calls} cache hits" in page
