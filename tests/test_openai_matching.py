"""Pure first-token matching and bound arithmetic of the OpenAI backend (no server)."""

import math

import numpy as np
import pytest

from sklearn_llmconf.backends.openai._matching import (
    logsumexp,
    match_first_token,
    norm,
)

KEYS = ("ham", "spam")


def test_norm_merges_space_marks_and_case():
    assert norm(" Spam") == norm("\u2581spam") == norm("\u0120SPAM ") == "spam"


def test_logsumexp():
    assert logsumexp([math.log(0.2), math.log(0.3)]) == pytest.approx(math.log(0.5))
    assert logsumexp([-math.inf, -math.inf]) == -math.inf


def test_spellings_are_merged_and_uncovered_mass_computed():
    alts = [(" ham", math.log(0.5)), ("Ham", math.log(0.1)), (" spam", math.log(0.2)),
            (" the", math.log(0.15))]
    row, uncovered, error = match_first_token(alts, KEYS, "bound")
    np.testing.assert_allclose(np.exp(row), [0.6, 0.2])
    assert uncovered == pytest.approx(0.2) and error is None


def test_no_label_observed_is_a_failed_row():
    row, uncovered, error = match_first_token([(" the", -0.1)], KEYS, "bound")
    assert np.isnan(row).all() and math.isnan(uncovered)
    assert error == "none of the labels among the top-1 alternatives"


def test_missing_label_nan():
    row, _, error = match_first_token([(" spam", -0.5), (" a", -1.5)], KEYS, "nan")
    assert math.isnan(row[0]) and row[1] == -0.5 and error is None
