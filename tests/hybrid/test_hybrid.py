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


def _rare_data(n=60, seed=0):
    """Three classes KeywordBackend can read, and ``rare`` with one text."""
    rng = np.random.default_rng(seed)
    y = rng.choice(["spam", "ham", "eggs"], size=n).astype(object)
    y[0] = "rare"
    X = np.array([f"{label} word{i} {rng.choice(['a', 'b', 'c'])}"
                  for i, label in enumerate(y)], dtype=object)
    return X, y


@pytest.mark.parametrize("n_shots", [4, 16])
def test_a_class_of_one_labelled_text(n_shots):
    """The rare class is a demonstration of the fitted prompt: it still fits."""
    import warnings

    X, y = _rare_data()
    llm = LLMClassifier(backend=KeywordBackend(), n_shots=n_shots, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fold warning leaks out either
        model = make_hybrid_classifier(llm, embeddings=False).fit(X, y)
    np.testing.assert_array_equal(model.classes_, ["eggs", "ham", "rare", "spam"])
    scores = model.transformers_[1][1].steps[0][1]
    assert scores.demo_mask_[0]  # the only 'rare' text is a demonstration
    swap = scores.swap_estimator_
    np.testing.assert_array_equal(swap.classes_, model.classes_)
    assert all(not text.startswith("rare") for (text,), _ in swap.demos_)
    proba = model.predict_proba(["rare word", "spam spam", "ham"])
    assert proba.shape == (3, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.isfinite(model.final_cv_log_loss_)


def test_every_training_text_a_demonstration():
    """n_shots >= the texts: the demonstrations are scored zero-shot."""
    X = np.array(["spam a", "ham b", "eggs c", "spam d"], dtype=object)
    y = np.array(["spam", "ham", "eggs", "spam"], dtype=object)
    scores = LLMScores(LLMClassifier(backend=KeywordBackend(), n_shots=8))
    F = scores.fit_transform(X, y)
    assert scores.demo_mask_.all() and scores.swap_estimator_.demos_ == []
    assert F.shape == (4, 3) and np.isfinite(F).all()


@pytest.mark.parametrize("container", ["tuples", "array", "dataframe"])
def test_several_text_columns(container):
    """The LLM fills its named fields; TF-IDF reads the joined columns."""
    from sklearn_llmconf import PromptTemplate

    X1, y = _data(60)
    subjects = [f"re {i % 4}" for i in range(len(y))]
    rows = list(zip(subjects, X1))
    if container == "array":
        X = np.array(rows, dtype=object)
    elif container == "dataframe":
        pd = pytest.importorskip("pandas")
        X = pd.DataFrame(rows, columns=["subject", "body"])
    else:
        X = rows
    prompt = PromptTemplate("Classify.\nSubject: {subject}\nBody: {body}\n"
                            "Labels: {labels}\nAnswer:")
    llm = LLMClassifier(prompt, backend=KeywordBackend(), n_shots=4, random_state=0)
    model = make_hybrid_classifier(llm, embeddings=False, Cs=4, cv=3).fit(X, y)
    proba = model.predict_proba(X[:5] if container != "dataframe" else X.iloc[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    scores = model.transformers_[1][1].steps[0][1]
    assert scores.estimator_.prompt_template_.fields == ("subject", "body")
    tfidf = model.transformers_[0][1][-1]
    assert {"re", "offer", "lunch"} <= set(tfidf.vocabulary_)
    assert model.score(X, y) > 0.9


def test_a_row_the_llm_cannot_score_fails_with_its_reason():
    from sklearn_llmconf.scoring import predict_with_failures

    X, y = _data()
    llm = LLMClassifier(backend=KeywordBackend(fail_on="BROKEN"), n_shots=4,
                        on_error="nan", random_state=0)
    model = make_hybrid_classifier(llm, embeddings=False, Cs=4, cv=3).fit(X, y)
    assert model.n_failed_train_ == 0
    proba, failed, reasons = predict_with_failures(
        model, ["spam offer", "BROKEN ham lunch", "ham lunch"], "predict_proba")
    assert "llm" in model.final_blocks_
    np.testing.assert_array_equal(failed, [False, True, False])
    assert np.isnan(proba[1]).all()
    np.testing.assert_allclose(proba[[0, 2]].sum(axis=1), 1.0)
    assert reasons == [None, "injected failure", None]  # KeywordBackend's reason


def test_training_rows_the_llm_cannot_score_are_left_out_with_a_warning():
    X, y = _data()
    X = X.copy()
    X[[10, 30]] = [f"BROKEN {x}" for x in X[[10, 30]]]
    llm = LLMClassifier(backend=KeywordBackend(fail_on="BROKEN"), n_shots=4,
                        on_error="nan", random_state=0)
    with pytest.warns(UserWarning, match="2 of 80 training texts could not be "
                      "scored by every block"):
        model = make_hybrid_classifier(llm, embeddings=False, Cs=4, cv=3).fit(X, y)
    assert model.n_failed_train_ == 2
    np.testing.assert_allclose(model.predict_proba(X[:3]).sum(axis=1), 1.0)


def test_several_llms_are_one_block_each():
    X, y = _data()
    strong = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0)
    weak = LLMClassifier(backend=KeywordBackend(strength=0.1), n_shots=0)
    model = make_hybrid_classifier([strong, weak], embeddings=False, Cs=4,
                                   cv=3).fit(X, y)
    assert [n for n, _ in model.transformers_] == ["tfidf", "llm", "llm2"]
    assert set(model.block_cv_log_loss_) == {"tfidf", "llm", "llm2"}
    second = model.transformers_[2][1].steps[0][1].estimator_
    assert second.backend.strength == 0.1 and second.n_shots == 0
    assert model.predict_proba(X[:7]).shape == (7, 2)
    # named blocks, and their parameters reachable for a grid search
    named = make_hybrid_classifier([("smol", strong), ("gemma", weak)],
                                   embeddings=False)
    assert [n for n, _ in named.features.transformer_list] == [
        "tfidf", "smol", "gemma"]
    assert named.get_params()["features__gemma__llmscores__estimator"] is weak


@pytest.mark.parametrize("llm, error, match", [
    ([], ValueError, "llm is an empty list"),
    ("smollm2", TypeError, "llm must be an LLMClassifier, a list of them or None; "
                           "got str"),
    ([LLMClassifier(), "x"], TypeError, r"llm\[1\] must be an LLMClassifier; "
                                        "got str"),
    ([("tfidf", LLMClassifier())], ValueError, "LLM block names must be distinct"),
])
def test_bad_llm_lists(llm, error, match):
    with pytest.raises(error, match=match):
        make_hybrid_classifier(llm, embeddings=False)
