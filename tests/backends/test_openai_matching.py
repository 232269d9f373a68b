"""Pure first-token matching and bound arithmetic of the OpenAI backend (no server)."""

import math

import numpy as np
import pytest

from sklearn_llmconf.backends.openai._matching import (
    logsumexp,
    match_first_token,
    norm,
    spellings,
)

KEYS = ("ham", "spam")
LABELS = (" ham", " spam")
log = math.log


def _match(top, chosen=None, keys=KEYS, labels=LABELS, missing="bound", **kw):
    return match_first_token(top, chosen, keys, missing, labels=labels, **kw)


def test_norm_merges_space_marks_and_case():
    assert norm(" Spam") == norm("\u2581spam") == norm("\u0120SPAM ") == "spam"


def test_logsumexp_and_spellings():
    assert logsumexp([log(0.2), log(0.3)]) == pytest.approx(log(0.5))
    assert logsumexp([-math.inf, -math.inf]) == -math.inf
    assert spellings(" spam") == 6  # spam, Spam, SPAM, each with/without space
    assert spellings("A") == 4


def test_spellings_are_merged_and_uncovered_mass_computed():
    top = [(" ham", log(0.5)), ("Ham", log(0.1)), (" spam", log(0.2)),
           (" the", log(0.15))]
    m = _match(top)
    np.testing.assert_allclose(np.exp(m.row), [0.6, 0.2])
    assert m.uncovered == pytest.approx(0.2) and m.error is None and not m.bounded


def test_generated_token_outside_the_list_counts_as_observed():
    m = _match([(" ham", log(0.5)), (" a", log(0.3))], chosen=(" spam", log(0.01)))
    np.testing.assert_allclose(np.exp(m.row), [0.5, 0.01])


def test_no_label_observed_is_a_failed_row():
    m = _match([(" the", -0.1)])
    assert np.isnan(m.row).all() and math.isnan(m.uncovered)
    assert m.error == "none of the labels among the top-1 alternatives"


def test_missing_label_nan():
    m = _match([(" spam", -0.5), (" a", -1.5)], missing="nan")
    assert math.isnan(m.row[0]) and m.row[1] == -0.5 and m.error is None


def test_bound_kept_and_flagged_when_the_ranking_is_certain():
    top = [(" spam", log(0.7)), (" a", log(0.1)), (" b", log(0.05))]
    m = _match(top)
    # min(6 spellings x 0.05, 1 - 0.85) = 0.15 < 0.7: " spam" surely wins.
    np.testing.assert_allclose(np.exp(m.row), [0.15, 0.7])
    assert m.error is None and m.bounded
    # A tokenizer that knows " ham" has 2 single-token spellings: 2 x 0.05.
    m = _match(top, n_spellings=(2, 3))
    np.testing.assert_allclose(np.exp(m.row), [0.1, 0.7])


def test_bound_that_could_win_fails_the_row():
    """Issue #11: fewer alternatives than labels gave a wrong argmax, unflagged."""
    keys, labels = ("a", "b", "c"), (" A", " B", " C")
    top = [(" B", log(0.3)), (" the", log(0.2))]  # top_logprobs=2, 3 labels
    m = _match(top, keys=keys, labels=labels)
    assert np.isnan(m.row).all()
    assert "[' A', ' C'] not among the top-2 alternatives" in m.error
    assert "upper bound is not below the best observed label" in m.error
    # The "nan" rule keeps the observed label and leaves the decision to on_error.
    m = _match(top, keys=keys, labels=labels, missing="nan")
    assert m.error is None and np.isnan(m.row[[0, 2]]).all()


def test_bias_applied_to_sampling_only_is_a_failed_row_not_a_tie():
    """Issue #11 item 7: llama-cpp-python reports unbiased log-probs.

    Its list is the unbiased top-k plus the (biased) generated token. The old
    bound (smallest shown value) equalled that token's log-prob: [0.5, 0.5].
    """
    top = [(f" w{i}", log(0.9 / 20) - 0.01 * i) for i in range(20)]
    chosen = (" spam", -6.58)
    m = _match(top, chosen=chosen, biased=True)
    assert np.isnan(m.row).all()
    assert "logit_bias changed only the generated token" in m.error
    # Without the bias the same answer is an ordinary ambiguous row.
    assert "upper bound" in _match(top, chosen=chosen).error


def test_labels_tied_under_bias_fail_the_row():
    top = [(" ham", -0.6931), (" spam", -0.6931), (" a", -20.0)]
    m = _match(top, biased=True)
    assert np.isnan(m.row).all() and "tied at exactly the same value" in m.error
    assert _match(top).error is None  # an honest tie without bias stays
