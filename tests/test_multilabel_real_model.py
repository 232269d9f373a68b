"""LLMClassifier().fit(X, Y) on several labels per text, the embedded model."""

import numpy as np
import pytest
from sklearn.utils.multiclass import type_of_target

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.datasets import load_movie_genres

pytestmark = pytest.mark.slow


def test_multilabel_fit_predict_on_the_embedded_model():
    pytest.importorskip("llama_cpp")
    movies = load_movie_genres()
    rng = np.random.RandomState(0)
    idx = rng.permutation(len(movies.data))
    train, test = idx[:40], idx[40:52]
    backend = LlamaCppBackend(n_threads=1, n_threads_batch=1)
    clf = LLMClassifier(backend=backend, n_shots=8, random_state=0).fit(
        movies.data[train], movies.target[train], classes=movies.target_names)
    assert list(clf.classes_) == list(movies.target_names)
    assert clf.calibration_bias_.shape == (5,)
    calls = clf.usage_.calls
    proba = clf.predict_proba(movies.data[test])
    # every genre of a title in one backend call
    assert clf.usage_.calls - calls == len(test)
    assert proba.shape == (12, 5)
    assert ((proba > 0) & (proba < 1)).all()
    pred = clf.predict(movies.data[test])
    assert type_of_target(pred) in ("multilabel-indicator",)
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(pred.dtype))
    # the log-odds differ between titles: the model reads them (a label
    # whose calibrated slope is 0 is constant, at its base rate)
    log_odds = clf.score_details(movies.data[test]).log_proba
    assert np.isfinite(log_odds).all() and log_odds.std(axis=0).max() > 0
