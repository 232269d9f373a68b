"""make_hybrid_classifier: a plain classifier for scikit-learn's tools and routing."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.hybrid import (
    BlockStackingClassifier,
    LLMScores,
    make_hybrid_classifier,
)
from sklearn_llmconf.routing import ConfidenceRouter
from sklearn_llmconf.testing import KeywordBackend


def _data(n=80, seed=0):
    """Texts whose label word KeywordBackend counts, and a TF-IDF cue."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.uniform(size=n) < 0.4, "spam", "ham")
    cue = {"spam": "offer", "ham": "lunch"}
    noise = rng.choice(["today", "now", "soon", "later"], size=n)
    X = [f"{label if rng.uniform() < 0.7 else 'neutral'} {cue[label]} {w} {i}"
         for i, (label, w) in enumerate(zip(y, noise))]
    return np.array(X, dtype=object), y


def _hybrid(**kw):
    llm = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0)
    return make_hybrid_classifier(llm, embeddings=False, Cs=4, cv=3, **kw)


def test_structure_and_probabilities():
    X, y = _data()
    model = _hybrid().fit(X, y)
    assert isinstance(model, BlockStackingClassifier)
    names = [name for name, _ in model.transformers_]
    assert names == ["tfidf", "llm"]
    assert set(model.block_cv_log_loss_) == {"tfidf", "llm"}
    scores = model.transformers_[1][1].steps[0][1]
    assert isinstance(scores, LLMScores) and scores.demo_mask_.sum() == 4
    X_test, y_test = _data(40, seed=1)
    proba = model.predict_proba(X_test)
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.classes_, ["ham", "spam"])
    assert np.mean(model.predict(X_test) == y_test) > 0.9


def test_cross_val_score_and_grid_search():
    X, y = _data()
    scores = cross_val_score(_hybrid(), X, y, cv=2, scoring="neg_log_loss")
    assert scores.shape == (2,) and np.all(scores > -0.5)
    search = GridSearchCV(
        _hybrid(), {"features__llm__llmscores__estimator__n_shots": [0, 4]},
        cv=2, scoring="neg_log_loss").fit(X, y)
    assert search.best_params_["features__llm__llmscores__estimator__n_shots"] in (0, 4)
    assert search.predict_proba(X[:3]).shape == (3, 2)


def test_confidence_router_over_the_hybrid():
    X, y = _data(150)
    router = ConfidenceRouter(_hybrid(), tiers=(("review", 0.9),),
                              random_state=0).fit(X, y)
    proba = router.estimator_.predict_proba(X[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert len(router.predict(X[:5])) == 5


def test_bad_embeddings_argument():
    with pytest.raises(ValueError, match="embeddings must be"):
        make_hybrid_classifier(embeddings="yes")
