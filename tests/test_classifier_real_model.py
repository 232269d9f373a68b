"""LLMClassifier on the real embedded model (and server): prefix labels, warnings.

Labels that are prefixes of other labels: without an end marker ``P(" 1")``
contains ``P(" 10")``, so classes 1..12 were all predicted 1 on texts reading
"Answer: 10/11/12", and "ham radio" could never beat "ham".
"""

import numpy as np
import pytest

from sklearn_llmconf import LLMClassifier, PromptTemplate
from sklearn_llmconf.backends import LlamaCppBackend, OpenAIBackend
from tests.backends.test_openai_server import llama_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

CLASSES = list(range(1, 13))
# The texts state their answer on purpose: not rejected as fake answers.
PROMPT = PromptTemplate("Copy the number.\n\nText: {text}\nAnswer:",
                        reject_fake_answers=False)


@pytest.fixture(scope="module")
def backend():
    pytest.importorskip("llama_cpp")
    return LlamaCppBackend(n_threads=1)


def test_numbered_classes_with_prefixes_predict_correctly(backend):
    clf = LLMClassifier(PROMPT, backend=backend, n_shots=0, calibration=None).fit(
        [f"Answer: {c}" for c in CLASSES], CLASSES)
    # The texts whose answer has a prefix among the labels, and that prefix.
    asked = [10, 11, 12, 1]
    proba = clf.predict_proba([f"Answer: {c}" for c in asked])
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], asked)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_ham_radio_can_win_over_ham(backend):
    X = ["Answer: ham radio", "Answer: ham"]
    y = ["ham radio", "ham"]
    clf = LLMClassifier(PROMPT, backend=backend, n_shots=0, calibration=None).fit(X, y)
    np.testing.assert_array_equal(clf.predict(X), y)


@pytest.mark.server
def test_first_token_scoring_refuses_prefix_labels(llama_server):  # noqa: F811
    """The llama.cpp server has no correct echo, so the backend scores first
    tokens only; " ham" and " ham radio" share theirs and it says so. (Digit
    labels do not show this: the server's tokenizer splits " 1" into " " and
    "1", an empty first token, which is refused with its own message.)"""
    be = OpenAIBackend("smollm2", base_url=llama_server, endpoint="completions",
                       api_key_env=None)
    clf = LLMClassifier(PROMPT, backend=be, n_shots=0, calibration=None).fit(
        ["a ham", "a ham radio"], ["ham", "ham radio"])
    with pytest.raises(ValueError, match="share their first token"):
        clf.predict_proba(["Answer: ham radio"])


def test_truncation_warning_points_at_the_callers_line():
    pytest.importorskip("llama_cpp")
    small = LlamaCppBackend(n_ctx=128, n_threads=1)
    clf = LLMClassifier(backend=small, n_shots=0).fit(["a", "b"], ["ham", "spam"])
    long_text = "call me back later please " * 60
    for method in ("predict_proba", "decision_function"):
        with pytest.warns(UserWarning, match="truncated") as record:
            getattr(clf, method)([long_text])
        assert [w.filename for w in record] == [__file__]
