"""TransformersBackend against the real SmolLM2 model, loaded once (slow)."""

import os
import pickle

import numpy as np
import pytest
from scipy.special import softmax

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("accelerate")

import torch  # noqa: E402

from sklearn_llmconf import LLMClassifier  # noqa: E402
from sklearn_llmconf.backends import Prompt, TransformersBackend  # noqa: E402
from sklearn_llmconf.backends.transformers._scoring import (  # noqa: E402
    score_one_reference,
)
from sklearn_llmconf.datasets._base import QUESTION_TYPE_NAMES  # noqa: E402

pytestmark = pytest.mark.slow

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
# float32: the batched tree and the sequential oracle run the model's body in
# float32 on differently shaped matrices (summation order; eager attention
# gives the same); the output projection and log_softmax are float64 in both.
# Exactness itself is the float64 test's (1e-9). Measured max |difference|
# on the 6-label set: 7.9e-6 nats on one CPU, 1.8e-5 on another (the same
# code: the CPU's kernels), 1.9e-5 on the 30 question types; the oracle
# against itself on a longer input, 4.7e-6. 5e-5 bounds float32 rounding on
# these CPUs, far below what a scoring bug moves (a wrong position or mask:
# tenths of a nat and more).
FLOAT32_ATOL = 5e-5


@pytest.fixture(scope="module")
def backend():
    # The model is loaded once per process and shared by every backend with
    # the same source, dtype and device (other dtypes are cast copies).
    return TransformersBackend(dtype="float32", device="cpu", n_threads=1)


@pytest.fixture(scope="module")
def scores6(backend):
    """The batched tree's scores of PROMPTS on the 6 labels, computed once for
    the tests that compare them (with the oracle, other batchings, llama.cpp)."""
    return backend.score_labels(PROMPTS, LABEL_SETS[6])


def reference(backend, prompts, labels):
    loaded = backend._get_loaded()
    label_tokens = [backend.tokenize(lab, add_special_tokens=False)
                    for lab in labels]
    with torch.inference_mode():
        return np.array([
            score_one_reference(loaded.model, backend.tokenize(p.text), label_tokens)
            for p in prompts
        ])


def test_batched_tree_equals_sequential_oracle_in_float64(backend):
    backend._get_loaded()
    exact = TransformersBackend(dtype="float64", device="cpu", n_threads=1)
    # 6 labels with shared token prefixes on one prompt; 8 of the 30
    # multi-word question types (shared prefixes too) on another (the oracle
    # runs one float64 forward pass per prompt and label).
    for prompts, labels in ((PROMPTS[:1], LABEL_SETS[6]),
                            (PROMPTS[2:], LABEL_SETS[30][::-1][:8])):
        result = exact.score_labels(prompts, labels)
        assert result.log_probs.shape == (len(prompts), len(labels))
        assert result.errors == [None] * len(prompts)
        np.testing.assert_allclose(result.log_probs,
                                   reference(exact, prompts, labels),
                                   rtol=0, atol=1e-9)


def test_batched_tree_equals_sequential_oracle_in_float32(backend, scores6):
    labels = LABEL_SETS[6]
    result = scores6
    np.testing.assert_allclose(result.log_probs[:2],
                               reference(backend, PROMPTS[:2], labels),
                               rtol=0, atol=FLOAT32_ATOL)
    # The shared instruction prefix was evaluated once, not three times.
    first = len(backend.tokenize(PROMPTS[0].text))
    assert result.usage.prompt_tokens < 2 * first
    assert result.usage.calls == 3


def test_scores_do_not_depend_on_batching_or_order(scores6):
    labels = LABEL_SETS[6]
    together = scores6.log_probs
    single = TransformersBackend(dtype="float32", device="cpu", n_threads=1,
                                 batch_size=1)
    reversed_ = single.score_labels(PROMPTS[::-1], labels).log_probs
    np.testing.assert_allclose(together, reversed_[::-1], rtol=0, atol=FLOAT32_ATOL)


def test_scores_equal_llama_cpp_within_the_quantization_gap(backend, scores6):
    # Same GGUF file, same prompts: llama.cpp computes with the quantized
    # weights (and 8-bit activations), transformers with dequantized float32
    # weights. Measured on these prompts and labels: up to 0.53 nats on a
    # label's log-probability, 0.35 per label token, 0.046 on a probability
    # renormalised over the labels, the same best label for every prompt. The
    # bounds tested: 0.75, 0.5 and 0.1.
    llama_cpp = pytest.importorskip("llama_cpp")  # noqa: F841
    from sklearn_llmconf.backends import LlamaCppBackend

    llama = LlamaCppBackend(n_threads=1, n_threads_batch=1)
    for labels in (LABEL_SETS[6], LABEL_SETS[30]):
        assert llama.tokenize(PROMPTS[0].text) == backend.tokenize(PROMPTS[0].text)
        ours = (scores6 if labels is LABEL_SETS[6]
                else backend.score_labels(PROMPTS, labels)).log_probs
        theirs = llama.score_labels(PROMPTS, labels).log_probs
        n_tokens = np.array([len(backend.tokenize(lab, add_special_tokens=False))
                             for lab in labels])
        assert np.abs(ours - theirs).max() < 0.75
        assert (np.abs(ours - theirs) / n_tokens).max() < 0.5
        gap = np.abs(softmax(ours, axis=1) - softmax(theirs, axis=1)).max()
        assert gap < 0.1
        np.testing.assert_array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))


def test_first_token_scoring_reads_one_position(backend):
    labels = [" spam", " ham", " maybe"]
    full = backend.score_labels(PROMPTS, labels)
    first = TransformersBackend(dtype="float32", device="cpu", n_threads=1,
                                scoring="first_token")
    assert not first.capabilities().full_sequence
    result = first.score_labels(PROMPTS, labels)
    # Single-token labels: the first token is the whole label.
    np.testing.assert_allclose(result.log_probs, full.log_probs, atol=FLOAT32_ATOL)
    assert result.usage.completion_tokens == 0
    with pytest.raises(ValueError, match="same token"):
        first.score_labels(PROMPTS, [" not spam", " not sure"])


def test_overlong_text_is_truncated_with_a_warning(backend):
    small = TransformersBackend(dtype="float32", device="cpu", n_threads=1, n_ctx=64)
    prompt = Prompt(("Instructions stay.\nText: ", "call now to claim " * 100,
                     "\nAnswer:"))
    with pytest.warns(UserWarning, match="1 of 1 prompts were longer than the"):
        result = small.score_labels([prompt], [" spam", " ham"])
    assert np.isfinite(result.log_probs).all()


def test_thread_setting_holds_while_computing_and_is_restored(backend):
    seen = []
    model = backend._get_loaded().model
    handle = model.register_forward_pre_hook(
        lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        TransformersBackend(dtype="float32", device="cpu", n_threads=2) \
            .score_labels(PROMPTS[:1], [" a", " b"])
    finally:
        handle.remove()
    assert seen and set(seen) == {2}
    assert torch.get_num_threads() == before


def test_mc_dropout_is_seeded_spread_is_reported_and_model_restored(backend):
    labels = LABEL_SETS[2]
    deterministic = backend.score_labels(PROMPTS, labels).log_probs
    mc = TransformersBackend(dtype="float32", device="cpu", n_threads=1,
                             mc_dropout=0.1, mc_samples=4, random_state=3)
    a = mc.score_labels(PROMPTS, labels)
    b = mc.score_labels(PROMPTS, labels)
    np.testing.assert_array_equal(a.log_probs, b.log_probs)  # seeded
    other = mc.set_params(random_state=4).score_labels(PROMPTS, labels)
    assert np.abs(other.log_probs - a.log_probs).max() > 1e-3
    assert np.abs(a.log_probs - deterministic).max() > 1e-3
    for name in ("mc_mutual_information", "mc_variance"):
        assert a.extra[name].shape == (3,)
        assert (a.extra[name] > 0).all()
    model = backend._get_loaded().model
    assert not model.training
    assert all(m.attention_dropout == 0.0 for m in backend._get_loaded()
               .attention_modules)
    np.testing.assert_array_equal(backend.score_labels(PROMPTS, labels).log_probs,
                                  deterministic)


def test_generation_is_seeded_and_stops(backend):
    prompts = PROMPTS[:2]
    a = backend.generate(prompts, n_samples=3, temperature=1.0, max_tokens=6,
                         seed=1, stop=["\n"])
    # Each prompt's samples are seeded on their own: the second prompt, asked
    # again alone, gets the same samples (reproducible, and independent of
    # what was generated before it).
    b = backend.generate(prompts[1:], n_samples=3, temperature=1.0, max_tokens=6,
                         seed=1, stop=["\n"])
    assert a.texts[1:] == b.texts and [len(t) for t in a.texts] == [3, 3]
    assert all("\n" not in s for t in a.texts for s in t)
    assert a.usage.calls == 6
    greedy = backend.generate(prompts, n_samples=2, max_tokens=4)
    assert all(t[0] == t[1] for t in greedy.texts)
    assert greedy.usage.calls == 2


def test_classifier_end_to_end_with_mc_dropout_spread(backend):
    X = ["WINNER! claim your free prize", "ok see you at home", "URGENT call now",
         "are we still on for lunch"]
    y = ["spam", "ham", "spam", "ham"]
    mc = TransformersBackend(dtype="float32", device="cpu", n_threads=1,
                             mc_dropout=0.05, mc_samples=3)
    # One demonstration: the shots are not what this test is about.
    clf = LLMClassifier(backend=mc, n_shots=1, random_state=0,
                        calibration=None).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    spread = clf.score_details(X).extra["mc_mutual_information"]
    assert spread.shape == (4,) and np.isfinite(spread).all()
    blob = pickle.dumps(clf)
    assert len(blob) < 50_000  # the model is never pickled
    np.testing.assert_allclose(pickle.loads(blob).predict_proba(X), proba)


def test_explicit_n_threads_is_used_as_given_and_restored(backend, monkeypatch):
    seen = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads",
                        lambda n: (seen.append(n), real(n))[1])
    before = torch.get_num_threads()
    one = TransformersBackend(n_threads=1, dtype="float32", device="cpu")
    one.score_labels(PROMPTS * 4, [" spam", " ham"])
    assert seen[0] == 1 and set(seen[1:-1]) <= {1} and seen[-1] == before
    assert torch.get_num_threads() == before


def test_default_torch_threads_are_chosen_by_timing(backend, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    auto = TransformersBackend(dtype="float32", device="cpu", batch_size=1)
    before = torch.get_num_threads()
    chooser = auto._get_loaded().thread_chooser(2)
    # Up to 60 prompts, as before, but no more once both counts were timed
    # (an untimed first unit plus ~0.2 s per candidate: a few prompts).
    for start in range(0, 60, 4):
        auto.score_labels([Prompt(("Text: ", f"message {i} here", "\nAnswer:"))
                           for i in range(start, start + 4)], [" spam", " ham"])
        assert torch.get_num_threads() == before  # restored after each call
        if {n for n, _ in chooser.history} == {1, 2}:
            break
    assert {n for n, _ in chooser.history} == {1, 2}
