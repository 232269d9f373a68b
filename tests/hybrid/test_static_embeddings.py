"""WordLlamaEmbedder: static embeddings shipped in wordllama (extra static)."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_llmconf.hybrid import WordLlamaEmbedder, make_hybrid_classifier
from sklearn_llmconf.hybrid._static_embeddings import wordllama_available
from tests.hybrid.test_hybrid import _data

pytestmark = pytest.mark.skipif(not wordllama_available(),
                                reason="needs the static extra (wordllama)")

TEXTS = ["win a free cruise, reply now to claim your prize",
         "are we still meeting for lunch tomorrow?",
         "win a free cruise, reply now to claim your prize"]


@parametrize_with_checks([WordLlamaEmbedder()])
def test_sklearn_compatible_transformer(estimator, check):
    check(estimator)


def test_offline_embeddings_of_texts(monkeypatch):
    # the model ships in the package: no download is ever tried
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(requests, "get", no_network)
    embedder = WordLlamaEmbedder()
    E = embedder.fit(TEXTS).transform(TEXTS)
    assert E.shape == (3, 256) and embedder.n_features_out_ == 256
    assert E.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(E[0], E[2])
    assert E[0] @ E[1] < 0.9
    np.testing.assert_array_equal(clone(embedder).fit_transform(TEXTS), E)
    restored = pickle.loads(pickle.dumps(embedder))
    assert "_model" not in vars(restored)
    np.testing.assert_array_equal(restored.transform(TEXTS), E)
    with pytest.raises(ValueError, match="expects a sequence of texts"):
        embedder.transform("one text")


def test_as_the_hybrids_embedding_block():
    from sklearn_llmconf import LLMClassifier
    from sklearn_llmconf.testing import KeywordBackend

    X, y = _data(60)
    llm = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0)
    model = make_hybrid_classifier(llm, embeddings=WordLlamaEmbedder(), Cs=3,
                                   cv=3).fit(X, y)
    assert [n for n, _ in model.transformers_] == ["tfidf", "embeddings", "llm"]
    assert model.predict_proba(X[:4]).shape == (4, 2)
