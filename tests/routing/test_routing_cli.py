"""The `sklearn-llmconf route` command."""

import argparse

import pytest

from sklearn_llmconf import cli
from sklearn_llmconf.backends.llamacpp import _backend as _llamacpp
from sklearn_llmconf.testing import KeywordBackend


def test_route_prints_tiers_shares_and_bounds(monkeypatch, capsys):
    # The keyword backend stands in for the model: this checks the plumbing.
    monkeypatch.setattr(_llamacpp, "LlamaCppBackend", KeywordBackend)
    assert cli.main(["route", "--n-train", "50", "--n-scale", "40", "--n-calib",
                     "60", "--n-test", "50", "--tiers", "auto=0.95,check=0.6",
                     "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["tier", "target"]
    assert [line.split()[0] for line in lines[2:5]] == ["auto", "check", "escalate"]
    assert "delta=0.05 split over 2 tiers (0.025 each); 60 calibration texts" in out
    assert "n_test=50" in out
    # 60 labels cannot certify 0.95 (at least 86 error-free rows): said so.
    assert lines[2].split()[:4] == ["auto", "0.95", "not", "certified"]
    assert "note: Tier 'auto' (precision >= 0.95): no threshold could be certified" \
        in out


def test_tiers_argument_is_parsed_and_checked():
    assert cli._parse_tiers("a=0.99, b=0.9") == [("a", 0.99), ("b", 0.9)]
    with pytest.raises(argparse.ArgumentTypeError, match="accept=0.99"):
        cli._parse_tiers("accept:0.99")


def test_evaluate_is_still_the_default(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "evaluate", lambda args: calls.append(args) or 0)
    assert cli.main(["--n-test", "5"]) == 0
    assert calls[0].command == "evaluate" and calls[0].n_test == 5
