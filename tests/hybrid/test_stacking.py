"""BlockStackingClassifier: per-block models stacked on out-of-fold log-probs."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import FunctionTransformer

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.hybrid import BlockStackingClassifier, make_hybrid_classifier
from sklearn_llmconf.hybrid._logistic import logistic_cv
from sklearn_llmconf.testing import KeywordBackend


def _columns(start, stop):
    return FunctionTransformer(lambda X: np.asarray(X)[:, start:stop])


def _synthetic(n, k=3, seed=0, n_noise=40):
    """An informative block (5 columns) and a wide noise block."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    centres = rng.normal(size=(k, 5)) * 1.2
    good = centres[y] + rng.normal(size=(n, 5))
    noise = rng.normal(size=(n, n_noise))
    labels = np.array(["zeta", "alpha", "mid", "beta"][:k], dtype=object)
    return np.hstack([good, noise]), labels[y]


def _stack(**kw):
    blocks = FeatureUnion([("good", _columns(0, 5)), ("noise", _columns(5, None))])
    return BlockStackingClassifier(blocks, Cs=4, final_Cs=4, cv=4, **kw)


def _single(*_):
    return logistic_cv(Cs=4, cv=4, scoring="neg_log_loss", max_iter=2000)


@pytest.mark.parametrize("k", [2, 3])
def test_a_noise_block_costs_little(k):
    X, y = _synthetic(200, k)
    X_test, y_test = _synthetic(2000, k, seed=1)
    # the same centres: draw the test set from the training seed's generator
    X_all, y_all = _synthetic(2200, k)
    X, y, X_test, y_test = X_all[:200], y_all[:200], X_all[200:], y_all[200:]
    model = _stack().fit(X, y)
    proba = model.predict_proba(X_test)
    good = _single(0, 5).fit(X[:, :5], y)
    ll_good = log_loss(y_test, good.predict_proba(X_test[:, :5]), labels=good.classes_)
    ll_noise_only = log_loss(y_test, _single(5, None).fit(X[:, 5:], y)
                             .predict_proba(X_test[:, 5:]), labels=good.classes_)
    ll_stack = log_loss(y_test, proba, labels=model.classes_)
    assert ll_noise_only > ll_good + 0.2  # the noise block alone is useless
    assert ll_stack <= 1.02 * ll_good, (ll_stack, ll_good)
    # one regression on both blocks with one C is hurt by the wide noise block
    both = _single(0, None).fit(X, y)
    assert log_loss(y_test, both.predict_proba(X_test), labels=both.classes_) > ll_stack
    assert model.block_cv_log_loss_["good"] < model.block_cv_log_loss_["noise"]


def test_classes_order_and_probabilities():
    X, y = _synthetic(150, 4, seed=3)
    model = _stack().fit(X, y)
    np.testing.assert_array_equal(model.classes_, ["alpha", "beta", "mid", "zeta"])
    proba = model.predict_proba(X[:20])
    assert proba.shape == (20, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(model.predict_log_proba(X[:20])), proba)
    np.testing.assert_array_equal(model.predict(X[:20]),
                                  model.classes_[proba.argmax(axis=1)])
    # the columns follow classes_: the true class gets the highest mean probability
    idx = np.searchsorted(model.classes_, y[:100])
    mean_true = model.predict_proba(X[:100])[np.arange(100), idx].mean()
    assert mean_true > 0.5
    assert model.decision_function(X[:5]).shape == (5, 4)


@pytest.mark.parametrize("joint", [False, True])
def test_binary_decision_function_is_1d(joint):
    X, y = _synthetic(120, 2)
    model = _stack(joint=joint).fit(X, y)
    assert model.decision_function(X[:7]).shape == (7,)
    assert set(model.block_cv_log_loss_) == {"good", "noise"} | (
        {"joint"} if joint else set())
    assert set(model.final_blocks_) <= set(model.block_cv_log_loss_)
    proba = model.predict_proba(X[:7])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # the joint block alone, kept as it is: its model sees both blocks side by side
    model.final_blocks_, model.final_estimator_ = ["joint"] if joint else ["good"], None
    np.testing.assert_allclose(model.predict_proba(X[:7]).sum(axis=1), 1.0)


def test_clone_params_grid_search_and_cross_val_score():
    X, y = _synthetic(150, 3)
    model = _stack()
    params = model.get_params()
    assert params["features__good"] is model.features.transformer_list[0][1]
    assert clone(model).get_params()["Cs"] == 4
    scores = cross_val_score(model, X, y, cv=3, scoring="neg_log_loss")
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    search = GridSearchCV(model, {"features__noise": [_columns(5, None), "drop"]},
                          cv=3, scoring="neg_log_loss").fit(X, y)
    assert search.predict_proba(X[:3]).shape == (3, 3)
    dropped = _stack().set_params(features__noise="drop").fit(X, y)
    assert [name for name, _ in dropped.transformers_] == ["good"]


def test_errors():
    X, y = _synthetic(40, 2)
    with pytest.raises(ValueError, match="two classes"):
        _stack().fit(X, np.array(["a"] * 40, dtype=object))
    with pytest.raises(ValueError, match="rows"):
        _stack().fit(X, y[:-1])
    with pytest.raises(ValueError, match="no block"):
        _stack().set_params(features__good="drop", features__noise="drop").fit(X, y)




def test_the_hybrid_scores_each_training_text_once():
    """5 stacking folds, but the LLM block's fit_transform runs once."""
    rng = np.random.default_rng(0)
    y = np.where(rng.uniform(size=60) < 0.5, "spam", "ham")
    X = np.array([f"{label} word{i}" for i, label in enumerate(y)], dtype=object)
    llm = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0)
    model = make_hybrid_classifier(llm, embeddings=False, Cs=4, cv=5).fit(X, y)
    scores = model.transformers_[1][1].steps[0][1]
    calls = sum(len(c) for est in (scores.estimator_, scores.swap_estimator_)
                for c in est.backend.calls_)
    assert calls == len(X)
    model.predict_proba(X[:10])
    calls_after = sum(len(c) for c in scores.estimator_.backend.calls_)
    assert calls_after == len(X) - scores.demo_mask_.sum() + 10


def test_rare_class_folds_have_no_zero_probability():
    """A class of one text: finite out-of-fold log loss, no fold warning."""
    import warnings

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], size=40).astype(object)
    y[3] = "z"
    X = [f"{label} {label}{i % 3} filler" for i, label in enumerate(y)]
    model = BlockStackingClassifier(make_union(TfidfVectorizer()), Cs=3, cv=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X, y)
    np.testing.assert_array_equal(model.classes_, ["a", "b", "c", "z"])
    assert all(np.isfinite(v) for v in model.block_cv_log_loss_.values())
    np.testing.assert_allclose(model.predict_proba(X[:4]).sum(axis=1), 1.0)


def test_every_class_of_one_text_is_refused():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    model = BlockStackingClassifier(make_union(TfidfVectorizer()), cv=5)
    with pytest.raises(ValueError, match="cv=5 needs two texts of some class"):
        model.fit(["alpha xx", "beta yy", "gamma zz"], ["a", "b", "c"])


@pytest.mark.parametrize("k", [2, 3])
def test_fast_neg_log_loss_is_scikit_learns_to_the_bit(k):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import get_scorer

    from sklearn_llmconf.hybrid._logistic import neg_log_loss

    X, y = _synthetic(60, k=k, seed=3)
    reference = get_scorer("neg_log_loss")
    for C in (1e-3, 1.0, 1e4):  # from flat to nearly 0/1 probabilities
        model = LogisticRegression(C=C, max_iter=5000).fit(X[:40], y[:40])
        assert neg_log_loss(model, X[40:], y[40:]) == reference(model, X[40:], y[40:])
    # inside LogisticRegressionCV: the same C and coefficients as by name
    by_name = logistic_cv(Cs=5, cv=3, scoring="neg_log_loss", max_iter=2000)
    fast = logistic_cv(Cs=5, cv=3, scoring=neg_log_loss, max_iter=2000)
    by_name.fit(X, y)
    fast.fit(X, y)
    np.testing.assert_array_equal(fast.C_, by_name.C_)
    np.testing.assert_array_equal(fast.coef_, by_name.coef_)
    np.testing.assert_array_equal(_scores(fast), _scores(by_name))


def _scores(model):
    """``scores_``: one array (scikit-learn 1.9) or a dict per class (1.8)."""
    scores = model.scores_
    return np.asarray(list(scores.values()) if isinstance(scores, dict) else scores)
