"""fit / predict / report on a CSV with several labels per row (--multilabel).

The keyword backend stands in for the model (these check the plumbing); the
embedded-model run is in test_cli_real_model_multilabel.py.
"""

import json
import re

import numpy as np
import pytest

from sklearn_llmconf import _persistence, cli
from sklearn_llmconf.cli import _common
from sklearn_llmconf.cli._label_sets import parse_cell, split_label_sets
from sklearn_llmconf.persistence import ModelFileError, load_model
from sklearn_llmconf.routing import ConfidenceRouter, MultiLabelRouter
from sklearn_llmconf.testing import KeywordBackend
from tests._cli_real import read, write_csv
from tests._model_files import edit_json, rezip

LABELS = ["billing", "login", "refund"]


@pytest.fixture
def keyword_model(monkeypatch):
    monkeypatch.setattr(_common, "_local_backend", lambda path: KeywordBackend())


def tickets(n, seed=0, sep=";"):
    """Rows whose text names most of their labels (the keyword backend reads
    the label words): ``[ref, body, topics]``."""
    rng = np.random.RandomState(seed)
    rows = []
    for i in range(n):
        labels = [lab for lab in LABELS if rng.rand() < 0.35] or ["billing"]
        words = [lab for lab in labels if rng.rand() < 0.95]
        rows.append([f"T{i}", " ".join(words) + f" ticket {i}", sep.join(labels)])
    return rows


@pytest.fixture
def files(tmp_path):
    lab = write_csv(tmp_path / "tickets.csv", ["ref", "body", "topics"],
                    tickets(400))
    new = write_csv(tmp_path / "new.csv", ["ref", "body", "topics"],
                    tickets(60, seed=1))
    return tmp_path, lab, new


def fit(lab, model, *extra, classifier="llm"):
    return cli.main(["fit", lab, "--text-column", "body", "--label-column",
                     "topics", "--multilabel", "--n-shots", "4", "--quiet",
                     "--classifier", classifier, "-o", model, *extra])


def one_line(capsys, argv):
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_fit_predict_report_on_a_multilabel_csv(keyword_model, files, capsys):
    tmp, lab, new = files
    model = str(tmp / "m.skops")
    assert fit(lab, model) == 0
    out = capsys.readouterr()
    assert "400 labelled rows, 3 labels: 4 demonstrations, 196 in-fit " \
        "calibration, 200 certification; KeywordBackend; kept llm." in out.err
    lines = out.out.splitlines()
    assert lines[0].split()[:1] == ["label"]
    assert [ln.split()[0] for ln in lines[2:5]] == LABELS
    assert "delta=0.05 over the 6 tests (0.00833 each, Bonferroni)" in out.out

    # the model file round-trips: a MultiLabelRouter, its certificate
    router, desc, extras = load_model(model)
    assert isinstance(router, MultiLabelRouter) and desc["task"] == "multilabel"
    assert desc["classes"] == LABELS and list(router.classes_) == LABELS
    cert = desc["certificate"]
    assert cert["target_precision"] == 0.9 and cert["risk_level"] == 0.05
    present = [np.inf if t is None else t for t in cert["present_thresholds"]]
    np.testing.assert_array_equal(present, router.thresholds_)
    assert np.isfinite(router.thresholds_).any()  # something is certified
    assert extras["certification_proba"].shape == (200, 3)
    assert extras["certification_y"].shape == (200, 3)
    assert desc["data"]["label_set_separator"] == ";"

    out_csv = str(tmp / "decisions.csv")
    assert cli.main(["predict", model, new, "-o", out_csv, "--id-column", "ref",
                     "--chunk-size", "16", "--quiet"]) == 0
    rows = read(out_csv)
    assert rows[0] == ["id", "labels", "undecided", "tier", "proba_billing",
                       "proba_login", "proba_refund", "decision_billing",
                       "decision_login", "decision_refund", "failure_reason"]
    assert [r[0] for r in rows[1:]] == [f"T{i}" for i in range(60)]
    P = np.array([[float(x) for x in r[4:7]] for r in rows[1:]])
    assert ((P > 0) & (P < 1)).all()
    np.testing.assert_allclose(P, router.predict_proba(
        [r[1] for r in read(new)[1:]]))
    for r, p in zip(rows[1:], P):
        decisions = r[7:10]
        for j, d in enumerate(decisions):
            pos = p[j] >= router.thresholds_[j]
            neg = p[j] <= router.negative_thresholds_[j]
            # both thresholds loose: the likelier side
            want = (("1" if p[j] > 0.5 else "0") if pos and neg else
                    "1" if pos else "0" if neg else "")
            assert d == want
        assert r[1] == ";".join(c for c, d in zip(LABELS, decisions) if d == "1")
        assert r[2] == ";".join(c for c, d in zip(LABELS, decisions) if d == "")
        assert r[3] == ("accept" if "" not in decisions else "review")
        assert r[10] == ""
    assert {r[3] for r in rows[1:]} == {"accept", "review"}

    html = str(tmp / "report.html")
    assert cli.main(["report", model, new, "-o", html, "--quiet"]) == 0
    page = open(html, encoding="utf-8").read()
    for heading in ("Certificate (per label)",
                    "Calibration per label (certification rows)",
                    "Measured on 60 labelled rows", "Hamming loss",
                    "micro (all pairs)", "separated by &#39;;&#39;"):
        assert heading in page, heading
    assert page.count("<td>billing</td>") >= 4


def test_label_cells_are_split_stripped_and_deduplicated():
    assert parse_cell(" comedy ;romance;; comedy;", ";") == ["comedy", "romance"]
    assert parse_cell("a|b", "|") == ["a", "b"]
    assert parse_cell("a;b", "|") == ["a;b"]
    assert parse_cell(" ; ", ";") == []


def test_another_separator(keyword_model, tmp_path, capsys):
    lab = write_csv(tmp_path / "t.csv", ["ref", "body", "topics"],
                    tickets(120, sep=" | "))
    model = str(tmp_path / "m.skops")
    assert fit(lab, model, "--label-separator", "|") == 0
    _, desc, _ = load_model(model)
    assert desc["classes"] == LABELS and desc["data"]["label_set_separator"] == "|"


def test_single_label_fit_does_not_split_labels(keyword_model, tmp_path, capsys):
    rows = [[f"T{i}", f"billing login ticket {i}" if i % 2 else f"refund {i}",
             "billing;login" if i % 2 else "refund"] for i in range(80)]
    lab = write_csv(tmp_path / "t.csv", ["ref", "body", "topics"], rows)
    model = str(tmp_path / "m.skops")
    assert cli.main(["fit", lab, "--text-column", "body", "--label-column",
                     "topics", "--classifier", "llm", "--n-shots", "2",
                     "--quiet", "-o", model]) == 0
    router, desc, _ = load_model(model)
    assert isinstance(router, ConfidenceRouter) and "task" not in desc
    assert desc["classes"] == ["billing;login", "refund"]
    assert desc["certificate"]["tiers"] == ["accept", "review"]


def test_a_row_without_labels_is_refused_unless_allowed(keyword_model, tmp_path,
                                                        capsys):
    rows = tickets(120)
    rows[7][2] = " ; "
    lab = write_csv(tmp_path / "t.csv", ["ref", "body", "topics"], rows)
    model = str(tmp_path / "m.skops")
    line = one_line(capsys, ["fit", lab, "--text-column", "body",
                             "--label-column", "topics", "--multilabel",
                             "-o", model])
    assert line == (f"sklearn-llmconf fit: error: {lab}: line 9 has no label in "
                    "column 'topics' (cell ' ; ', labels separated by ';'); pass "
                    "--allow-no-label if no label applies to such a row.")
    rows[8][2] = ""
    lab = write_csv(tmp_path / "t.csv", ["ref", "body", "topics"], rows)
    assert fit(lab, model, "--allow-no-label") == 0
    _, desc, _ = load_model(model)
    assert desc["data"]["allow_no_label"] is True and desc["classes"] == LABELS


@pytest.mark.parametrize("extra, message", [
    (["--label-separator", "|"],
     "--label-separator is for several labels per row: give --multilabel too."),
    (["--allow-no-label"],
     "--allow-no-label is for several labels per row: give --multilabel too."),
    (["--target-precision", "0.8"],
     "--target-precision is for several labels per row: give --multilabel too."),
    (["--multilabel", "--tiers", "accept=0.9"],
     "--tiers is for one label per row; a --multilabel model certifies every "
     "label at --target-precision (tiers: accept when every label of a row is "
     "decided, else review)."),
    (["--multilabel", "--cv-folds", "1"], "--cv-folds must be at least 2."),
    (["--multilabel", "--gguf", "a.gguf", "--gguf", "b.gguf"],
     "several --gguf (a hybrid of several LLMs) take one label per row; give "
     "one --gguf with --multilabel."),
    (["--multilabel", "--label-separator", " "],
     "--label-separator must hold a character other than spaces, got ' '."),
])
def test_option_errors_are_one_line(keyword_model, files, capsys, extra, message):
    tmp, lab, _ = files
    line = one_line(capsys, ["fit", lab, "--text-column", "body",
                             "--label-column", "topics", *extra,
                             "-o", str(tmp / "m.skops")])
    assert line == f"sklearn-llmconf fit: error: {message}"
    assert not (tmp / "m.skops").exists()


def test_one_label_and_the_none_label_are_refused(keyword_model, tmp_path,
                                                  capsys):
    argv = ["fit", "", "--text-column", "body", "--label-column", "topics",
            "--multilabel", "-o", str(tmp_path / "m.skops")]
    argv[1] = write_csv(tmp_path / "one.csv", ["body", "topics"],
                        [[f"t{i}", "billing"] for i in range(20)])
    assert one_line(capsys, argv).endswith(
        "the label column holds 1 label (billing) split on ';'; a multi-label "
        "model needs at least 2.")
    argv[1] = write_csv(tmp_path / "none.csv", ["body", "topics"],
                        [[f"t{i}", "none;a" if i % 2 else "a"] for i in range(20)])
    assert one_line(capsys, argv).endswith(
        "the label 'none' is the prompt's answer when no label applies; rename "
        "it (or drop it and pass --allow-no-label).")


def test_a_label_with_one_positive_trains_and_is_never_decided_present(
        keyword_model, tmp_path, capsys):
    rows = tickets(200)
    rows[5][2] += ";urgent"
    lab = write_csv(tmp_path / "t.csv", ["ref", "body", "topics"], rows)
    model = str(tmp_path / "m.skops")
    assert fit(lab, model) == 0
    err = capsys.readouterr().err
    assert ("note: labels with no positive certification row are never decided "
            "present: urgent.") in err
    router, desc, _ = load_model(model)
    assert desc["classes"] == [*LABELS, "urgent"]
    assert desc["certificate"]["present_thresholds"][3] is None
    assert desc["data"]["labels_without_certification_positive"] == ["urgent"]


def test_split_trains_every_label():
    Y = np.zeros((40, 3), dtype=int)
    Y[:, 0] = 1
    Y[3, 1] = 1  # one positive: trains
    Y[[10, 30], 2] = 1
    for seed in range(20):
        train, cert = split_label_sets(Y, 0.5, seed)
        assert sorted([*train, *cert]) == list(range(40))
        assert 3 in train and Y[train, 2].any()


def test_report_refuses_a_label_the_model_does_not_know(keyword_model, files,
                                                        capsys):
    tmp, lab, new = files
    model = str(tmp / "m.skops")
    assert fit(lab, model) == 0
    rows = read(new)
    rows[4][2] = "billing;shipping"
    bad = write_csv(tmp / "bad.csv", rows[0], rows[1:])
    line = one_line(capsys, ["report", model, bad, "-o", str(tmp / "r.html")])
    assert line == (f"sklearn-llmconf report: error: {bad}: line 5 has the label "
                    "'shipping', which the model does not know; its labels are: "
                    "billing, login, refund.")
    assert not (tmp / "r.html").exists()


def test_a_description_that_lies_about_the_task_is_refused(keyword_model, files,
                                                           capsys):
    tmp, lab, _ = files
    model = str(tmp / "m.skops")
    assert fit(lab, model) == 0

    def single(desc):  # a single-label description over the same router
        del desc["task"]
        desc["certificate"] = {
            "tiers": ["accept"], "fallback_tier": "review", "targets": [0.9],
            "thresholds": [0.9], "certified": [True],
            "precision_lower_bound": [0.9], "n_accepted": [10], "n_errors": [0],
            "n_labels_needed": [None], "delta": 0.05, "delta_per_test": 0.05,
            "method": "ltt", "per_class": False, "n_calibration": 200,
            "n_failed_calibration": 0}

    def bogus(desc):
        desc["task"] = "regression"

    for change, message in [
            (single, "the certification probabilities are not one row of 3 "
                     "per labelled certification row."),
            (bogus, "the model file's description field task is 'regression', "
                    "not one of ('multiclass', 'multilabel').")]:
        edited = rezip(model, tmp / "edited.skops", edit_json(change))
        with pytest.raises(ModelFileError, match=re.escape(message)):
            load_model(edited, check=False)
    # a multi-label description over a single-label router
    _, desc, _ = load_model(model, check=False)
    payload = {"description": json.dumps(desc),
               "router": ConfidenceRouter(KeywordBackend())}
    with pytest.raises(ModelFileError, match="m.skops: the model file's "
                       "description says several labels per row but it holds "
                       "a ConfidenceRouter."):
        _persistence._parse_description(
            "m.skops", payload, {"certification_proba": None,
                                 "certification_y": None})


def test_a_row_that_fails_is_reviewed_with_its_reason(monkeypatch, files, capsys):
    # the keyword backend, saved with its parameters, fails on "FAILME" rows
    monkeypatch.setattr(_common, "_local_backend",
                        lambda path: KeywordBackend(fail_on="FAILME"))
    tmp, lab, new = files
    model = str(tmp / "m.skops")
    assert fit(lab, model) == 0
    rows = read(new)
    rows[3][1] += " FAILME"
    bad = write_csv(tmp / "bad.csv", rows[0], rows[1:])
    out_csv = str(tmp / "decisions.csv")
    assert cli.main(["predict", model, bad, "-o", out_csv, "--quiet"]) == 1
    assert "; 1 failed." in capsys.readouterr().err
    failed = read(out_csv)[3]
    assert failed[:4] == ["3", "", "", "review"]
    assert failed[4:10] == [""] * 6 and failed[10] == "injected failure"


def test_auto_compares_the_llm_and_the_multilabel_hybrid(keyword_model, tmp_path,
                                                          capsys):
    # 200 labelled rows (100 training): the candidates' 3-fold comparison
    # fits a stack per label and fold, its cost grows with the rows
    tmp = tmp_path
    lab = write_csv(tmp / "tickets.csv", ["ref", "body", "topics"], tickets(200))
    model = str(tmp / "m.skops")
    assert fit(lab, model, classifier="auto") == 0
    out = capsys.readouterr()
    _, desc, _ = load_model(model)
    selection = desc["selection"]
    assert [c["name"] for c in selection["candidates"]] == ["llm", "hybrid"]
    losses = {c["name"]: c["log_loss"] for c in selection["candidates"]}
    assert selection["kept"] == min(losses, key=losses.get)
    assert selection["cv_folds"] == 3 and desc["estimator"] == (
        "LLMClassifier" if selection["kept"] == "llm"
        else "MultiLabelStackingClassifier")
    assert f"kept {selection['kept']}." in out.err
    assert "candidates (3-fold cross-validation on the 100 training rows" in out.out


def test_the_multilabel_hybrid_model_file(keyword_model, files, capsys):
    tmp, lab, new = files
    model = str(tmp / "h.skops")
    assert fit(lab, model, classifier="hybrid") == 0
    assert "200 certification; KeywordBackend; kept hybrid." in \
        capsys.readouterr().err
    router, desc, _ = load_model(model)
    assert desc["estimator"] == "MultiLabelStackingClassifier"
    out_csv = str(tmp / "decisions.csv")
    assert cli.main(["predict", model, new, "-o", out_csv, "--quiet"]) == 0
    # every new text scored once by the LLM block, for all three labels
    assert "60 rows: " in capsys.readouterr().err
    rows = read(out_csv)
    P = np.array([[float(x) for x in r[4:7]] for r in rows[1:]])
    np.testing.assert_allclose(P, router.predict_proba(
        [r[1] for r in read(new)[1:]]))
    assert ((P >= 0) & (P <= 1)).all()


def test_label_names_are_escaped_in_the_report(keyword_model, files):
    from sklearn_llmconf.cli import _html, _report

    tmp, lab, _ = files
    model = str(tmp / "m.skops")
    assert fit(lab, model) == 0
    _, desc, extras = load_model(model, check=False)
    hostile = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>",
               "</td><b>x"]
    desc["classes"] = desc["certificate"]["labels"] = hostile
    desc["data"]["label_set_separator"] = "<i>"
    page = _html.page("r", _report._sections(desc, extras, None))
    assert "<script>" not in page and "<img" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
