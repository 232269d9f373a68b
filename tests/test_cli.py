"""The sklearn-llmconf command."""

import re

import numpy as np
import pytest

from sklearn_llmconf import cli, datasets
from sklearn_llmconf.backends.llamacpp import _backend as _llamacpp
from sklearn_llmconf.testing import KeywordBackend


def _choices(parser, option):
    evaluate = parser._subparsers._group_actions[0].choices["evaluate"]
    (action,) = [a for a in evaluate._actions if option in a.option_strings]
    return sorted(action.choices)


def test_option_lists_come_from_their_owners():
    parser = cli.build_parser()
    assert _choices(parser, "--dataset") == sorted(
        name.removeprefix("load_") for name in datasets.__all__
    )
    assert _choices(parser, "--demo-selection") == [
        "random", "similar", "similar_stratified", "stratified"
    ]
    # every listed data set loads through the name the command builds
    for name in _choices(parser, "--dataset"):
        assert callable(getattr(datasets, f"load_{name}"))


def test_split_is_disjoint_stratified_and_sized():
    X = np.array([f"t{i}" for i in range(100)], dtype=object)
    y = np.array(["a"] * 80 + ["b"] * 20)
    (Xtr, ytr), (Xte, yte) = cli._split(X, y, 30, 25, seed=0)
    assert (len(Xtr), len(Xte)) == (30, 25)
    assert not set(Xtr) & set(Xte)
    assert (yte == "b").sum() == 5 and (ytr == "b").sum() == 6
    with pytest.raises(SystemExit, match="asked for 125 texts"):
        cli._split(X, y, 100, 25, seed=0)


def test_evaluate_prints_default_raw_and_calibrated_rows(monkeypatch, capsys):
    # The keyword backend stands in for the model: this checks the plumbing.
    monkeypatch.setattr(_llamacpp, "LlamaCppBackend", KeywordBackend)
    assert cli.main(["--n-train", "80", "--n-calib", "60", "--n-test", "60",
                     "--n-bootstrap", "20", "--quiet", "--no-candidates"]) == 0
    out = capsys.readouterr().out
    for row in ["default (in-fit calibration)", "raw (calibration=None)",
                "raw + TemperatureScaler(bias)", "raw + sklearn sigmoid",
                "n_test=60"]:
        assert row in out
    # fit scores the 60 calibration texts; the test texts cost 60 calls; the
    # raw classifier and the calibrators reuse the cached scores.
    assert "fit of the default: 60 model calls" in out
    assert "In all: 120 model calls" in out
    assert "service: kept" not in out  # --no-candidates


def test_evaluate_shows_the_model_the_service_keeps(monkeypatch, capsys):
    monkeypatch.setattr(_llamacpp, "LlamaCppBackend", KeywordBackend)
    assert cli.main(["--n-train", "40", "--n-calib", "30", "--n-test", "30",
                     "--n-bootstrap", "10", "--n-shots", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    # beside the default, the model the decision service keeps, with its
    # candidates' cross-validated log loss and the prompts they had scored
    assert re.search(r"\nservice: kept (llm|hybrid) \(fit --classifier auto\) ", out)
    found = re.search(r"3-fold log loss on the labelled texts \(llm \d\.\d{3}, "
                      r"hybrid \d\.\d{3}\), (\d+) more model calls\.", out)
    assert found and int(found.group(1)) > 0


@pytest.mark.slow
def test_default_command_runs_on_the_embedded_model(capsys):
    pytest.importorskip("llama_cpp")
    # 8 shots leave 32 texts, 20 of them calibrating: enough spam for every
    # fold of CalibratedClassifierCV's sigmoid (with 16 shots a fold had none).
    # 10 test texts: each costs a prompt, and the claim is that the command
    # runs on the embedded model, not the figures' precision.
    assert cli.main(["--n-train", "40", "--n-calib", "20", "--n-test", "10",
                     "--n-shots", "8", "--n-bootstrap", "10", "--quiet",
                     "--no-candidates"]) == 0
    out = capsys.readouterr().out
    assert "default (in-fit calibration)" in out and "n_test=10" in out
    assert "service: kept" not in out  # --no-candidates (the row is tested above)
