"""The default prompt renders label words that contain ", " (and more)."""

import pytest

from sklearn_llmconf import LLMClassifier, PromptTemplate
from sklearn_llmconf.prompts._labels import choose_label_separator
from sklearn_llmconf.testing import KeywordBackend

TICKETS = ["refund my order please", "parcel is late again",
           "charged twice, want refund", "where is my delivery"] * 3
TOPICS = ["billing, refunds", "shipping, delivery"] * 6


@pytest.mark.parametrize("words, expected", [
    (["ham", "spam"], ", "),
    (["billing, refunds", "shipping, delivery"], "; "),
    (["a, b; c", "d"], " | "),
    (["a, b; c | d / e", "f"], "\n"),
])
def test_separator_is_the_first_no_label_contains(words, expected):
    assert choose_label_separator(words) == expected
    assert choose_label_separator(words, " or ") == " or "


def test_default_prompt_fits_labels_with_comma_and_says_what_it_chose():
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=2, calibration=None,
                        random_state=0).fit(TICKETS, TOPICS)
    assert clf.prompt_template_.label_separator == "; "
    text = clf._render([("my refund?",)])[0].text
    assert text.splitlines()[0] == (
        "Classify each text as one of: billing, refunds; shipping, delivery."
    )
    proba = clf.predict_proba(["charged twice", "late parcel"])
    assert proba.shape == (2, 2)
    # The unfitted template keeps None (a parameter is never changed by fit).
    assert clf.get_params()["prompt"] is None


def test_one_label_per_line_when_every_separator_is_taken():
    words = ["a, b; c | d / e", "f"]
    t = PromptTemplate("Labels:\n{labels}\n\nText: {text}\nAnswer:")
    rendered = t.render({"text": "x"}, words).text
    assert rendered.startswith("Labels:\na, b; c | d / e\nf\n\nText: x")
