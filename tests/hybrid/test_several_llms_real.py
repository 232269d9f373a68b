"""The hybrid with two real LLMs (SmolLM2 and gemma-3-270m), end to end."""

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from sklearn_llmconf import LLMClassifier  # noqa: E402
from sklearn_llmconf.backends import LlamaCppBackend, checkpoint_path  # noqa: E402
from sklearn_llmconf.datasets import load_sms_spam  # noqa: E402
from sklearn_llmconf.hybrid import (  # noqa: E402
    make_hybrid_classifier,
    service_candidates,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma():
    try:
        checkpoint_path("gemma3-270m", download=False)
    except ImportError:
        pytest.skip("gemma3-270m is not in the model cache "
                    "(checkpoint_path('gemma3-270m') fetches it)")
    return LLMClassifier(backend=LlamaCppBackend("gemma3-270m", n_threads=1,
                                                 n_ctx=512),
                         n_shots=4, random_state=0)


def _sms(n_train=30, n_test=16):
    # 30 training texts: 10 per fold of the 3-fold stack, each scored once by
    # each LLM (with 40 the fit cost 80 prompts for the same checks)
    X, y = load_sms_spam(return_X_y=True)
    X = np.array([x[:160] for x in X], dtype=object)
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), (n_train + n_test) // 2,
                                     replace=False) for c in np.unique(y)])
    rng.shuffle(idx)
    return X[idx[:n_train]], y[idx[:n_train]], X[idx[n_train:]], y[idx[n_train:]]


def test_two_llms_each_one_block(gemma):
    smol = LLMClassifier(backend=LlamaCppBackend(n_threads=1, n_ctx=512),
                         n_shots=4, random_state=0)
    X, y, X_test, y_test = _sms()
    model = make_hybrid_classifier([smol, gemma], embeddings=False, Cs=4, cv=3)
    model.fit(X, y)
    assert [n for n, _ in model.transformers_] == ["tfidf", "llm", "llm2"]
    assert set(model.block_cv_log_loss_) == {"tfidf", "llm", "llm2"}
    for name in ("llm", "llm2"):
        assert np.isfinite(model.block_cv_log_loss_[name])
    second = model.transformers_[2][1].steps[0][1].estimator_
    assert second.backend.cache_identity()["model"] == "gemma-3-270m-q4_k_m.gguf"
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(model.predict(X_test) == y_test) >= 0.6
    # the service's candidates take the same list
    (name, llm), (_, hybrid) = service_candidates([smol, gemma], embeddings=False)
    assert name == "llm" and llm.backend.model_path is None
    assert [n for n, _ in hybrid.features.transformer_list] == ["tfidf", "llm", "llm2"]
