"""The hybrid for several labels per text (MultiLabelStackingClassifier)."""

import numpy as np
import pytest
from sklearn.metrics import log_loss

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.hybrid import (
    LLMScores,
    MultiLabelStackingClassifier,
    make_hybrid_classifier,
)
from sklearn_llmconf.persistence import TRUSTED_TYPES
from sklearn_llmconf.scoring import predict_with_failures
from sklearn_llmconf.testing import KeywordBackend

LABELS = ["billing", "login", "refund"]


def tickets(n, seed):
    """Texts naming most of their labels (the keyword backend reads them)."""
    rng = np.random.RandomState(seed)
    Y = (rng.rand(n, 3) < 0.35).astype(int)
    X = [" ".join(lab for lab, y in zip(LABELS, row) if y and rng.rand() < 0.8)
         + f" ticket {seed}-{i}" for i, row in enumerate(Y)]
    return X, Y


def llm_of(model):
    (clf,) = [t[0].estimator_ for name, t in model.transformers_ if name == "llm"]
    return clf


def hybrid(**llm_params):
    llm = LLMClassifier(backend=KeywordBackend(**llm_params), n_shots=4,
                        random_state=0, on_error="nan")
    return make_hybrid_classifier(llm, embeddings=False, multilabel=True, cv=3)


def test_the_llm_scores_each_text_once_for_all_labels():
    X, Y = tickets(150, 0)
    X_new, Y_new = tickets(40, 1)
    model = hybrid().fit(X, Y, classes=LABELS)
    assert isinstance(model, MultiLabelStackingClassifier)
    assert list(model.classes_) == LABELS
    clf = llm_of(model)
    swap = [t[0].swap_estimator_ for name, t in model.transformers_
            if name == "llm"][0]
    # the prompts name the labels, not the column numbers
    assert list(clf.label_words_) == LABELS
    assert list(swap.classes_) == LABELS
    # fit: every training text once (the 4 demonstrations by the swap prompt)
    assert clf.usage_.calls + swap.usage_.calls == 150
    before = clf.usage_.calls
    P = model.predict_proba(X_new)
    assert clf.usage_.calls - before == 40  # three labels, one call per text
    assert P.shape == (40, 3) and ((P > 0) & (P < 1)).all()
    np.testing.assert_array_equal(model.predict(X_new), (P > 0.5).astype(int))
    np.testing.assert_allclose(model.decision_function(X_new),
                               np.log(P) - np.log1p(-P), rtol=1e-6)
    # the stack reads the labels: better than each label's base rate
    base = Y.mean(axis=0)
    for j in range(3):
        assert log_loss(Y_new[:, j], P[:, j], labels=[0, 1]) < log_loss(
            Y_new[:, j], np.full(40, base[j]), labels=[0, 1])


def test_the_llm_block_gives_one_log_odds_per_label():
    X, Y = tickets(60, 0)
    scores = LLMScores(LLMClassifier(backend=KeywordBackend(), n_shots=0))
    F = scores.fit_transform(X, Y[:, :2])  # two labels: two columns, not one
    assert F.shape == (60, 2) and scores.n_features_out_ == 2


def test_a_constant_label_gets_its_add_one_rate():
    X, Y = tickets(90, 0)
    Y = np.column_stack([Y[:, :2], np.zeros(90, dtype=int)])
    model = hybrid().fit(X, Y, classes=LABELS)
    assert model.label_estimators_[2] is None
    np.testing.assert_allclose(model.predict_proba(X[:5])[:, 2], 1 / 92)


def test_failed_rows_are_nan_with_their_reason():
    X, Y = tickets(90, 0)
    model = hybrid(fail_on="FAILME").fit(X, Y, classes=LABELS)
    proba, failed, reasons = predict_with_failures(
        model, ["billing FAILME", "login here"], "predict_proba")
    assert failed.tolist() == [True, False]
    assert np.isnan(proba[0]).all() and np.isfinite(proba[1]).all()
    assert reasons[0] == "injected failure" and reasons[1] is None


def test_y_must_be_an_indicator_matrix():
    X, Y = tickets(30, 0)
    with pytest.raises(ValueError, match="Y must be a 0/1 indicator matrix"):
        hybrid().fit(X, Y[:, 0])
    with pytest.raises(ValueError, match="2 label names for 3 columns"):
        hybrid().fit(X, Y, classes=LABELS[:2])


def test_model_files_trust_the_multilabel_hybrid():
    assert {"sklearn_llmconf.hybrid._multilabel.MultiLabelStackingClassifier",
            "sklearn_llmconf.hybrid._multilabel.ColumnBlock"} <= set(TRUSTED_TYPES)
