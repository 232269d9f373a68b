"""OpenAIBackend's defaults against provider stand-ins driven by the embedded model.

The OpenAI-like and vLLM-like servers of ``sklearn_llmconf.utils`` compute every
log-probability with SmolLM2 (the embedded model), and behave as their
provider documents (see ``sklearn_llmconf/testing/_provider_servers.py``). The
expected values come from the embedded model's full next-token distribution
of the same prompt text.
"""

import math
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import LlamaCppBackend, OpenAIBackend
from sklearn_llmconf.backends.openai._matching import norm

pytestmark = pytest.mark.slow

PROMPTS = [
    "Message: WIN a free prize now! Call 0800 to claim\nLabel (ham or spam):",
    "Message: see you at lunch tomorrow?\nLabel (ham or spam):",
    "Message: URGENT your account is suspended, click the link\nLabel (ham or spam):",
]
LABELS = [" ham", " spam"]
# One model evaluation per request, on a shared 2-core machine: generous.
TIMEOUT = 300.0
# 30 TREC question types, as words with distinct first tokens.
QUESTION_TYPES = (
    "abbreviation expansion definition description manner reason animal body "
    "color creation currency disease event food instrument language letter "
    "plant product religion sport substance symbol technique term vehicle word "
    "group person title"
).split()


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("llama_cpp")
    from sklearn_llmconf.testing._provider_servers import EmbeddedModel

    try:
        return EmbeddedModel()
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def openai_like(model):
    from sklearn_llmconf.testing._provider_servers import OpenAILikeServer

    server = OpenAILikeServer(model).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vllm_like(model):
    from sklearn_llmconf.testing._provider_servers import VLLMLikeServer

    server = VLLMLikeServer(model).start()
    yield server
    server.stop()


def _spellings(model, label):
    """Token ids of a label's single-token spellings, as chat matching merges."""
    core = label.strip()
    first = model.tokenize(core)[0]
    key = norm(model.piece(first))
    ids = {first}
    for variant in {core, core.lower(), core.capitalize(), core.upper()}:
        for v in (variant, " " + variant):
            tok = model.tokenize(v)
            if len(tok) == 1 and norm(model.piece(tok[0])) == key:
                ids.add(tok[0])
    return sorted(ids)


def _merged_truth(model, prompt, labels):
    full = model.logprobs(prompt)
    return np.array([logsumexp(full[_spellings(model, lab)]) for lab in labels])


def test_vllm_like_defaults_equal_the_embedded_model(model, vllm_like):
    """Default settings: completions + echo (full-sequence), exact."""
    backend = OpenAIBackend("smollm2", base_url=vllm_like.base_url,
                            api_key_env=None, timeout=TIMEOUT)
    res = backend.score_labels(PROMPTS, LABELS)
    assert res.errors == [None] * len(PROMPTS)
    assert backend.endpoint_[0] == "completions"
    assert res.extra["scoring"] == "full_sequence"
    own = LlamaCppBackend(scoring="first_token").score_labels(PROMPTS, LABELS)
    np.testing.assert_allclose(softmax(res.log_probs, axis=1),
                               softmax(own.log_probs, axis=1), atol=1e-6, rtol=0)
    np.testing.assert_allclose(res.log_probs, own.log_probs, atol=1e-6, rtol=0)


def test_openai_like_defaults_equal_the_embedded_model(model, openai_like):
    """Chat (no /v1/completions), bias through tokenizer=callable, exact."""
    backend = OpenAIBackend("gpt-4o-mini", base_url=openai_like.base_url,
                            api_key_env=None, tokenizer=model.tokenize,
                            timeout=TIMEOUT)
    res = backend.score_labels(PROMPTS, LABELS)
    assert res.errors == [None] * len(PROMPTS)
    assert backend.endpoint_ == ("chat", "/v1/completions unavailable "
                                         "(NotFoundError)")
    truth = np.array([_merged_truth(model, p, LABELS) for p in PROMPTS])
    np.testing.assert_allclose(softmax(res.log_probs, axis=1),
                               softmax(truth, axis=1), atol=1e-6, rtol=0)
    # One probe request, then one request per prompt, each biased.
    rows = [r for r in openai_like.requests if r["body"].get("logit_bias")]
    assert len(rows) >= len(PROMPTS)
    assert all(r["body"]["top_logprobs"] == 20 for r in rows)


def test_30_labels_stitched_through_an_anchor(model, openai_like):
    labels = [" " + w for w in QUESTION_TYPES]
    prompt = "Question: What does NASA stand for?\nQuestion type:"
    openai_like.requests.clear()
    backend = OpenAIBackend("gpt-4o-mini", base_url=openai_like.base_url,
                            api_key_env=None, tokenizer=model.tokenize,
                            timeout=TIMEOUT)
    res = backend.score_labels([prompt], labels)
    assert res.errors == [None]
    truth = _merged_truth(model, prompt, labels)
    np.testing.assert_allclose(softmax(res.log_probs[0]), softmax(truth),
                               atol=1e-6, rtol=0)
    # Groups of at most 20 biased tokens (anchor included), far below the
    # 300-entry cap; requests = groups, and every label tokens' count is known.
    n_tokens = [len(_spellings(model, lab)) for lab in labels]
    biased = [r["body"]["logit_bias"] for r in openai_like.requests
              if r["body"].get("logit_bias")]
    assert all(len(b) <= 20 for b in biased)
    assert len(biased) >= math.ceil((sum(n_tokens) - min(n_tokens)) / 19)
    # The same labels in one request would exceed what top-20 can show.
    assert sum(n_tokens) > 20


def test_openai_like_refuses_what_openai_refuses(model, openai_like):
    import openai

    client = openai.OpenAI(base_url=openai_like.base_url, api_key="EMPTY",
                           max_retries=0)
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            max_tokens=1, logprobs=True, top_logprobs=21)
    with pytest.raises(openai.BadRequestError, match="too many tokens"):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            max_tokens=1, logit_bias={str(i): 1 for i in range(301)})
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4o-mini", prompt="hi", max_tokens=1)
    with pytest.raises(openai.BadRequestError, match="logprobs is not supported"):
        client.chat.completions.create(
            model="o4-mini", messages=[{"role": "user", "content": "hi"}],
            max_tokens=1, logprobs=True, top_logprobs=5)
    client.close()


def test_reasoning_model_falls_back_once_to_consistency(model, openai_like):
    openai_like.requests.clear()  # the server is shared by this module's tests
    backend = OpenAIBackend("o4-mini", base_url=openai_like.base_url,
                            api_key_env=None, timeout=TIMEOUT)
    X = ["free prize call now", "lunch at noon?", "claim your reward",
         "see you soon"]
    y = ["spam", "ham", "spam", "ham"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = LLMClassifier(backend=backend, strategy="auto", n_shots=0,
                            calibration=None,
                            on_error="nan").fit(X, y)
    fallback = [w for w in caught if "reasoning model" in str(w.message)]
    assert len(fallback) == 1
    assert clf.strategy_ == "consistency"
    proba = clf.predict_proba(X[:2])
    assert proba.shape == (2, 2)
    # Greedy samples that name no label are failed rows (on_error="nan").
    scored = ~np.isnan(proba).any(axis=1)
    assert clf.usage_.failed_rows == (~scored).sum()
    np.testing.assert_allclose(proba[scored].sum(axis=1), 1.0)
    # No request asked for log-probs.
    assert not any(r["body"].get("logprobs") for r in openai_like.requests
                   if r["body"].get("model") == "o4-mini")
