"""The embedded model inside scikit-learn's own tools (slow, real model).

Zero-shot prompts do not depend on the training fold, so one response cache for
the module makes every cross-validation below pay once per (prompt, text).
"""

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

pytest.importorskip("llama_cpp")

from sklearn_llmconf import LLMClassifier  # noqa: E402
from sklearn_llmconf.datasets import load_sms_spam  # noqa: E402

pytestmark = pytest.mark.slow

PROMPTS = [
    "Classify each text as one of: {labels}.\n\nText: {text}\nAnswer:",
    "Is this SMS message spam or ham?\n\nSMS: {text}\nIt is",
]


@pytest.fixture(scope="module")
def data():
    X, y = load_sms_spam(return_X_y=True)
    short = np.array([len(t) < 160 for t in X])
    # 18 texts, 6 spam: two per fold of the 3-fold tools below
    ham = np.flatnonzero(short & (y == "ham"))[:12]
    spam = np.flatnonzero(short & (y == "spam"))[:6]
    idx = np.sort(np.concatenate([ham, spam]))
    return X[idx], y[idx]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache") / "responses.sqlite")


def check_proba(proba, n):
    assert proba.shape == (n, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba > 0) & (proba < 1)).all()


def test_pipeline_with_text_cleaning_and_demonstrations(data, cache):
    X, y = data
    pipe = make_pipeline(
        FunctionTransformer(lambda texts: [" ".join(t.split()) for t in texts]),
        LLMClassifier(n_shots=2, random_state=0, cache=cache),
    )
    pipe.fit(X, y)
    check_proba(pipe.predict_proba(X[:6]), 6)
    assert list(pipe.classes_) == ["ham", "spam"]


def test_grid_search_over_two_prompts(data, cache):
    X, y = data
    search = GridSearchCV(
        LLMClassifier(n_shots=0, cache=cache), {"prompt": PROMPTS}, cv=3,
        scoring="neg_log_loss",
    ).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert search.best_params_["prompt"] == PROMPTS[int(np.argmax(scores))]


def test_cross_val_score(data, cache):
    X, y = data
    clf = LLMClassifier(n_shots=0, cache=cache)
    scores = cross_val_score(clf, X, y, cv=3, scoring="roc_auc")
    assert scores.shape == (3,) and np.isfinite(scores).all()


@pytest.mark.parametrize("method", ["sigmoid", "isotonic", "temperature"])
@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "cv3"])
def test_calibrated_classifier_cv(data, cache, method, frozen):
    X, y = data
    clf = LLMClassifier(n_shots=0, cache=cache)
    if frozen:
        calibrated = CalibratedClassifierCV(FrozenEstimator(clf.fit(X, y)),
                                            method=method)
    else:
        calibrated = CalibratedClassifierCV(clf, method=method, cv=3)
    calibrated.fit(X, y)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(calibrated.classes_) == ["ham", "spam"]
    expected_fits = 1 if frozen else 3
    assert len(calibrated.calibrated_classifiers_) == expected_fits
    # The clones' classes are the prompt's label words, except that
    # scikit-learn label-encodes string targets for method="temperature"
    # with cv (1.8, 1.9): those clones prompt with "0"/"1" (the user guide
    # warns and points to TemperatureScaler, which keeps the words).
    words = ["0", "1"] if method == "temperature" and not frozen else ["ham", "spam"]
    for pair in calibrated.calibrated_classifiers_:
        inner = getattr(pair.estimator, "estimator", pair.estimator)
        assert [str(c) for c in inner.classes_] == words
