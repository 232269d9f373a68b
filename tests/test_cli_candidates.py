"""fit --classifier llm|hybrid|auto: candidates compared, the kept one certified.

The keyword backend stands in for the model (plumbing); the embedded-model
run with the hybrid kept is in test_cli_real_model.py.
"""

import re

import numpy as np
import pytest

from sklearn_llmconf import cli
from sklearn_llmconf.cli import _common
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.hybrid import _hybrid
from sklearn_llmconf.persistence import load_model
from sklearn_llmconf.testing import KeywordBackend
from tests._cli_real import read, write_csv


@pytest.fixture
def keyword_model(monkeypatch):
    monkeypatch.setattr(_common, "_local_backend", lambda path: KeywordBackend())


# labelled rows, half training, half certification: the auto run's 3-fold
# comparison (a logistic stack per fold over the tf-idf, embedding and LLM
# blocks) and its embeddings cost in proportion to them
N_LABELLED = 100


@pytest.fixture
def rare_files(tmp_path):
    """SMS rows as ham/spam, and one row of the class 'scam'."""
    X, y = load_sms_spam(return_X_y=True)
    texts = [f"{t} {lab}" if i % 3 else t for i, (t, lab) in enumerate(zip(X, y))]
    rows = [[f"s{i % 7}", texts[i], y[i]] for i in range(N_LABELLED)]
    rows[17] = ["s0", "send your bank pin to claim scam", "scam"]
    lab = write_csv(tmp_path / "tickets.csv", ["sender", "body", "kind"], rows)
    new = write_csv(tmp_path / "incoming.csv", ["sender", "body", "kind"],
                    [[f"s{i % 5}", texts[i], y[i]] for i in range(300, 360)])
    return tmp_path, lab, new


@pytest.mark.parametrize("choice", ["llm", "hybrid", "auto"])
def test_every_choice_fits_a_class_of_one_row(keyword_model, rare_files, capsys,
                                              monkeypatch, choice):
    if choice != "auto":  # the embeddings block only in the auto run (speed)
        monkeypatch.setattr(_hybrid, "embeddings_available", lambda: False)
        monkeypatch.setattr(_hybrid, "llama_embeddings_available", lambda: False)
    tmp, lab, new = rare_files
    model = str(tmp / f"{choice}.skops")
    assert cli.main(["fit", lab, "--text-column", "sender", "--text-column", "body",
                     "--label-column", "kind", "--tiers", "auto=0.95,check=0.7",
                     "--n-shots", "4", "--classifier", choice, "--quiet",
                     "-o", model]) == 0
    out = capsys.readouterr()
    assert "classes with one labelled row train but cannot be certified: " \
        "scam" in out.err
    expected = ["llm", "hybrid"] if choice == "auto" else [choice]
    # the printed certificate, then the candidates with their CV figures
    # (one candidate is fitted once: nothing to compare, no folds to pay)
    text = out.out
    router, desc, extras = load_model(model)
    sel = desc["selection"]
    assert sel["classifier_option"] == choice
    if choice == "auto":
        assert f"candidates (3-fold cross-validation on the {N_LABELLED // 2} " \
            "training rows only)" in text
        table = text.split("candidates (", 1)[1].splitlines()
        assert table[1].split()[:5] == ["candidate", "CV", "log", "loss", "CV"]
        names = [ln.split()[0] for ln in table[3:3 + len(expected)]]
        assert names == expected
        for ln in table[3:3 + len(expected)]:
            ll, acc = map(float, ln.split()[1:3])
            assert 0 < ll < 5 and 0 <= acc <= 1
        assert [c["name"] for c in sel["candidates"]] == expected
        assert sel["cv_folds"] == 3
    else:
        assert f"one candidate (--classifier {choice}): fitted once on the " \
            "training rows, not cross-validated." in text
        assert "cross-validation on" not in text
        assert sel["candidates"] == [] and sel["cv_folds"] == 0
    assert sel["kept"] in expected
    kept_line = next(ln for ln in text.splitlines() if ln.startswith("kept: "))
    assert kept_line.startswith(f"kept: {sel['kept']}; share of the certification "
                                "rows decided per tier: auto ")
    shares = desc["tier_shares"]
    assert set(shares) == {"auto", "check", "escalate"}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert desc["estimator"] == ("LLMClassifier" if sel["kept"] == "llm"
                                 else "BlockStackingClassifier")
    assert desc["classes"] == ["ham", "scam", "spam"]
    assert "scam" not in set(extras["certification_y"])
    assert desc["data"]["classes_not_certified"] == ["scam"]
    half = N_LABELLED // 2
    assert desc["data"]["n_train"] == half
    assert desc["data"]["n_certification"] == half

    # predict and report work with whatever was kept
    out_csv = str(tmp / f"{choice}.csv")
    assert cli.main(["predict", model, new, "-o", out_csv, "--all-probabilities",
                     "--quiet"]) == 0
    rows = read(out_csv)
    assert rows[0][:6] == ["id", "label", "probability", "proba_ham",
                           "proba_scam", "proba_spam"]
    p = np.array([[float(v) for v in r[3:6]] for r in rows[1:]])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(router.predict_proba(
        [(r[0], r[1]) for r in read(new)[1:]]), p)
    html = str(tmp / f"{choice}.html")
    assert cli.main(["report", model, new, "-o", html, "--quiet"]) == 0
    page = open(html, encoding="utf-8").read()
    assert "Candidates and the kept model" in page
    assert f"certified: {sel['kept']}." in page
    assert ("not cross-validated" in page) == (choice != "auto")
    assert "Per class (certification rows)" in page
    assert "Where the errors go (certification rows)" in page
    assert "Does the measured precision contradict the certificate?" in page
    confusion = page.split("Where the errors go")[1].split("</table>")[0]
    cells = [int(c) for c in re.findall(r"<td>(\d+)</td>", confusion)]
    assert sum(cells) == half - desc["certificate"]["n_failed_calibration"]


def test_contradiction_test_per_tier():
    from sklearn_llmconf.cli._audit import contradiction_rows

    cert = {"tiers": ["accept", "review"], "fallback_tier": "escalate",
            "targets": [0.99, 0.9], "certified": [False, True]}
    # review: 52 of 58 correct at or above it (0.897 against 0.90)
    ys = ["a"] * 58 + ["a"] * 20
    labels = ["a"] * 52 + ["b"] * 6 + [None] * 20
    tiers = ["review"] * 58 + ["escalate"] * 20
    rows = contradiction_rows(cert, ys, labels, tiers)
    assert rows[0] == ["accept", "0.99", "-", "-", "-", "not certified"]
    assert rows[1] == ["review", "0.9", "58", "0.897", "0.529",
                       "no contradiction at the 5 % level"]
    labels = ["a"] * 44 + ["b"] * 14 + [None] * 20  # 0.759: contradicts
    row = contradiction_rows(cert, ys, labels, tiers)[1]
    assert row[3] == "0.759" and row[4] == "0.00143"
    assert row[5] == "contradicts the certificate (p < 0.05)"


def test_several_gguf_are_llm_blocks_of_the_hybrid(rare_files, capsys, monkeypatch):
    # two models (a test double per --gguf value, told apart by their
    # strength): the first is the llm candidate, both are blocks of the
    # hybrid; the model file rebuilds each LLM's own backend
    strength = {"smollm2-135m": 2.0, "gemma3-270m": 0.5}
    monkeypatch.setattr(_common, "_local_backend",
                        lambda path: KeywordBackend(strength=strength[path]))
    monkeypatch.setattr(_hybrid, "embeddings_available", lambda: False)
    monkeypatch.setattr(_hybrid, "llama_embeddings_available", lambda: False)
    tmp, lab, new = rare_files
    model = str(tmp / "two.skops")
    assert cli.main(["fit", lab, "--text-column", "body", "--label-column", "kind",
                     "--gguf", "smollm2-135m", "--gguf", "gemma3-270m",
                     "--n-shots", "4", "--classifier", "hybrid", "--quiet",
                     "-o", model]) == 0
    router, desc, _ = load_model(model)
    assert desc["backend"]["params"]["strength"] == 2.0
    assert [b["backend"]["params"]["strength"]
            for b in desc["further_backends"]] == [0.5]
    kept = router.estimator_.estimator
    assert [n for n, _ in kept.transformers_] == ["tfidf", "llm", "llm2"]
    blocks = dict(kept.transformers_)
    assert blocks["llm"][0].estimator_.backend.strength == 2.0
    assert blocks["llm2"][0].estimator_.backend.strength == 0.5
    out_csv = str(tmp / "two.csv")
    assert cli.main(["predict", model, new, "-o", out_csv, "--quiet"]) == 0
    assert len(read(out_csv)) == 61
    capsys.readouterr()
    assert cli.main(["fit", lab, "--text-column", "body", "--label-column", "kind",
                     "--gguf", "smollm2-135m", "--gguf", "no-such-model", "-o",
                     str(tmp / "three.skops")]) == 2
    assert ("--gguf no-such-model: no such file. The model names are: "
            "gemma3-270m, smollm2-135m.") in capsys.readouterr().err
