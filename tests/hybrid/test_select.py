"""BestCandidateClassifier: candidates compared on the same folds, best kept."""

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.hybrid import (
    BestCandidateClassifier,
    BlockStackingClassifier,
    service_candidates,
)
from sklearn_llmconf.testing import KeywordBackend
from tests.hybrid.test_hybrid import _data, _rare_data


def test_keeps_the_lower_cross_validated_log_loss():
    X, y = _data(90)
    model = BestCandidateClassifier([
        ("prior", DummyClassifier()),
        ("tfidf", make_pipeline(TfidfVectorizer(), LogisticRegression())),
    ]).fit(X, y)
    res = model.cv_results_
    assert list(res) == ["prior", "tfidf"] and model.n_splits_ == 3
    assert res["tfidf"]["log_loss"] < res["prior"]["log_loss"]
    assert res["prior"]["accuracy"] == pytest.approx(np.mean(y == "ham"), abs=0.02)
    assert model.best_name_ == "tfidf"
    np.testing.assert_allclose(model.predict_proba(X[:4]).sum(axis=1), 1.0)
    assert set(model.predict(X[:4])) <= {"ham", "spam"}


def test_service_candidates_with_a_class_of_one_text():
    X, y = _rare_data()
    llm = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0)
    model = BestCandidateClassifier(service_candidates(llm, embeddings=False))
    model.fit(X, y)
    assert list(model.cv_results_) == ["llm", "hybrid"]
    for figures in model.cv_results_.values():
        assert np.isfinite(figures["log_loss"]) and 0 <= figures["accuracy"] <= 1
    assert model.best_name_ == min(model.cv_results_,
                                   key=lambda n: model.cv_results_[n]["log_loss"])
    np.testing.assert_array_equal(model.classes_, ["eggs", "ham", "rare", "spam"])
    kept = model.best_estimator_
    assert isinstance(kept, BlockStackingClassifier if model.best_name_ == "hybrid"
                      else LLMClassifier)
    np.testing.assert_array_equal(kept.classes_, model.classes_)


def test_further_candidates_plug_in():
    X, y = _data(60)
    llm = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0)
    tfidf = make_pipeline(TfidfVectorizer(), LogisticRegression())
    candidates = service_candidates(llm, embeddings=False, kinds=("llm",),
                                    extra=[("tfidf", tfidf)])
    assert [n for n, _ in candidates] == ["llm", "tfidf"]
    model = BestCandidateClassifier(candidates, cv=2).fit(X, y)
    assert list(model.cv_results_) == ["llm", "tfidf"] and model.n_splits_ == 2


def test_bad_candidates():
    with pytest.raises(ValueError, match="names must be distinct"):
        BestCandidateClassifier([("a", DummyClassifier()),
                                 ("a", DummyClassifier())]).fit(["x", "y"], [0, 1])
    with pytest.raises(ValueError, match=r"unknown candidate kinds \['bert'\]"):
        service_candidates(kinds=("llm", "bert"))


def test_service_candidates_with_several_llms():
    strong = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0)
    weak = LLMClassifier(backend=KeywordBackend(strength=0.1), n_shots=0)
    (_, llm), (_, hybrid) = service_candidates([strong, weak], embeddings=False)
    assert isinstance(llm, LLMClassifier) and llm.backend.strength == 2.0
    assert llm is not strong  # clones
    assert [n for n, _ in hybrid.features.transformer_list] == ["tfidf", "llm", "llm2"]
    blocks = dict(hybrid.features.transformer_list)
    assert blocks["llm2"][0].estimator.backend.strength == 0.1
    assert blocks["llm2"][0].estimator is not weak
    X, y = _data(60)
    model = BestCandidateClassifier([("hybrid", hybrid)], cv=2).fit(X, y)
    assert [n for n, _ in model.best_estimator_.transformers_] == [
        "tfidf", "llm", "llm2"]
