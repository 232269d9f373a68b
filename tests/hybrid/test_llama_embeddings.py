"""LlamaEmbedder: the embedded LLM's pooled hidden states (extra local, no torch)."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

pytest.importorskip("llama_cpp")

from sklearn_llmconf import LLMClassifier  # noqa: E402
from sklearn_llmconf.backends import LlamaCppBackend  # noqa: E402
from sklearn_llmconf.hybrid import (  # noqa: E402
    LlamaEmbedder,
    _hybrid,  # noqa: E402
    make_hybrid_classifier,
)
from sklearn_llmconf.testing import KeywordBackend  # noqa: E402
from tests.hybrid.test_hybrid import _data  # noqa: E402

pytestmark = pytest.mark.slow

@parametrize_with_checks([LlamaEmbedder(n_threads=1)])
def test_sklearn_compatible_transformer(estimator, check):
    # 1-D text input (as TfidfVectorizer): scikit-learn runs the checks that
    # do not feed numeric arrays; the transformer conventions on texts are
    # tested below
    check(estimator)


TEXTS = ["win a free cruise, reply now to claim your prize",
         "are we still meeting for lunch tomorrow?",
         "win a free cruise, reply now to claim your prize"]


def test_pooled_hidden_states_of_the_default_model():
    embedder = LlamaEmbedder(n_threads=1)
    E = embedder.fit(TEXTS).transform(TEXTS)
    assert E.shape == (3, 576) and embedder.n_features_out_ == 576
    assert E.dtype == np.float64 and np.isfinite(E).all()
    np.testing.assert_array_equal(E[0], E[2])  # the same text, the same vector
    assert not np.allclose(E[0], E[1])
    memo = embedder._get_model().memo
    assert len(memo) >= 2
    # a clone shares the loaded model and its memo: no second forward pass
    again = clone(embedder).transform(TEXTS[:2])
    np.testing.assert_array_equal(again, E[:2])
    last = LlamaEmbedder(pooling="last", n_threads=1).transform(TEXTS[:2])
    assert last.shape == (2, 576) and not np.allclose(last, E[:2])
    restored = pickle.loads(pickle.dumps(embedder))
    assert "_model" not in vars(restored)
    np.testing.assert_array_equal(restored.transform(TEXTS[:1]), E[:1])
    assert embedder.get_feature_names_out()[[0, -1]].tolist() == [
        "llama_embedding_0", "llama_embedding_575"]
    with pytest.raises(ValueError, match="expects a sequence of texts"):
        embedder.transform("one text")


def test_the_hybrid_without_sentence_transformers_embeds_with_the_llm(monkeypatch):
    monkeypatch.setattr(_hybrid, "embeddings_available", lambda: False)
    llm = LLMClassifier(backend=LlamaCppBackend(n_threads=1, n_ctx=512))
    model = make_hybrid_classifier(llm)
    blocks = dict(model.features.transformer_list)
    assert list(blocks) == ["tfidf", "embeddings", "llm"]
    embedder = blocks["embeddings"][1]
    assert isinstance(embedder, LlamaEmbedder)
    assert embedder.model_path is None and embedder.n_threads == 1
    gemma = LLMClassifier(backend=LlamaCppBackend("gemma3-270m", n_threads=1))
    assert dict(make_hybrid_classifier(gemma).features.transformer_list)[
        "embeddings"][1].model_path == "gemma3-270m"
    # a test double's LLM has no hidden states: no embedding block
    keyword = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0)
    assert "embeddings" not in dict(make_hybrid_classifier(
        keyword).features.transformer_list)
    # end to end: the embedded model's states beside a test double's scores
    X, y = _data(60)
    hybrid = make_hybrid_classifier(
        keyword, embeddings=LlamaEmbedder(n_threads=1), Cs=3, cv=3).fit(X, y)
    assert "embeddings" in hybrid.block_cv_log_loss_
    assert hybrid.predict_proba(X[:5]).shape == (5, 2)
