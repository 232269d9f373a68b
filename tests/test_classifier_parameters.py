"""LLMClassifier's parameters: strategies, calibration and demonstrations as objects.

Twelve parameters, each of which does something under the defaults; settings
that belong to one strategy, one calibration or one demonstration selection
live in its object. The old keywords still work for one release, with a
FutureWarning, and give exactly what the objects give.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_llmconf import (
    InFitCalibration,
    LLMClassifier,
    PromptTemplate,
    SelfConsistency,
    SimilarDemos,
    Verbalized,
)
from sklearn_llmconf.prompts import DEFAULT_TEMPLATE
from sklearn_llmconf.testing import KeywordBackend
from tests._data import X_BIN, Y_BIN
from tests.scoring.test_strategies import ScriptedBackend, vote_answer


def test_the_signature_has_twelve_parameters():
    assert sorted(LLMClassifier().get_params()) == [
        "backend", "batch_size", "cache", "calibration", "demo_selection",
        "n_jobs", "n_shots", "on_error", "progress", "prompt", "random_state",
        "strategy",
    ]


def test_strategy_settings_are_grid_searchable_through_the_object():
    X = ["spam offer"] * 6 + ["hello friend"] * 6
    y = ["spam"] * 6 + ["ham"] * 6
    clf = LLMClassifier(backend=ScriptedBackend(vote_answer), n_shots=0,
                        calibration=None, strategy=SelfConsistency(n_samples=2),
                        random_state=0)
    search = GridSearchCV(clf, {"strategy__n_samples": [2, 4]}, cv=2,
                          scoring="accuracy").fit(X, y)
    assert search.best_estimator_.strategy.n_samples in (2, 4)
    assert [p["strategy__n_samples"] for p in search.cv_results_["params"]] == [2, 4]
    # the search cloned the object: the one passed in is unchanged
    assert clf.strategy.n_samples == 2


@pytest.mark.parametrize("old, new", [
    (dict(strategy="consistency", n_samples=4, sampling_temperature=0.2,
          smoothing=0.5, max_new_tokens=3),
     dict(strategy=SelfConsistency(n_samples=4, temperature=0.2, smoothing=0.5,
                                   max_new_tokens=3))),
    (dict(strategy="verbalized", max_new_tokens=12),
     dict(strategy=Verbalized(max_new_tokens=12))),
    (dict(calibration="temperature", prior_correction="batch",
          max_calibration_samples=20),
     dict(calibration=InFitCalibration(method="temperature",
                                       prior_correction="batch", max_samples=20))),
    (dict(calibration=None, prior_correction="contextual"),
     dict(calibration=InFitCalibration(method=None, prior_correction="contextual"))),
    (dict(verbalizer="letters", demo_max_chars=50),
     dict(prompt=PromptTemplate(DEFAULT_TEMPLATE, verbalizer="letters",
                                demo_max_chars=50))),
    (dict(demo_selection="similar_stratified", demo_embedder="EMB"),
     dict(demo_selection=SimilarDemos(embedder="EMB", stratified=True))),
])
def test_moved_keywords_warn_and_land_in_their_object(old, new):
    with pytest.warns(FutureWarning, match="moved and will be removed") as record:
        clf = LLMClassifier(**old)
    assert record[0].filename == __file__
    for name in ("n_samples", "verbalizer", "prior_correction", "demo_embedder"):
        if name in old:
            assert name in str(record[0].message)
    expected = LLMClassifier(**new).get_params(deep=False)
    got = clf.get_params(deep=False)
    assert {k: repr(v) for k, v in got.items()} == {
        k: repr(v) for k, v in expected.items()}
    # the moved values survive a clone (what every meta-estimator does)
    assert repr(clone(clf)) == repr(clf)


def test_moved_keywords_that_did_nothing_are_dropped():
    with pytest.warns(FutureWarning):
        clf = LLMClassifier(n_samples=5, demo_embedder="EMB")
    assert clf.strategy == "logprobs" and clf.demo_selection == "stratified"


def test_moved_sampling_keywords_with_auto_name_the_object():
    with pytest.raises(ValueError, match=r"strategy=SelfConsistency\(n_samples=20\)"):
        with pytest.warns(FutureWarning):
            LLMClassifier(strategy="auto", n_samples=20)


def test_an_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_sample'"):
        LLMClassifier(n_sample=3)


def test_old_and_new_forms_predict_the_same():
    backend = KeywordBackend()
    X = [f"{text} number {i}" for i, text in enumerate(X_BIN * 8)]
    y = Y_BIN * 8
    new = LLMClassifier(
        backend=backend, n_shots=2, random_state=0,
        prompt=PromptTemplate(DEFAULT_TEMPLATE, demo_max_chars=20),
        calibration=InFitCalibration(prior_correction="batch", max_samples=15),
    ).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        old = LLMClassifier(backend=backend, n_shots=2, random_state=0,
                            demo_max_chars=20, prior_correction="batch",
                            max_calibration_samples=15).fit(X, y)
    np.testing.assert_array_equal(old.predict_proba(X), new.predict_proba(X))
    assert old._render([("x",)])[0].text == new._render([("x",)])[0].text
    assert len(new.calibration_indices_) == 15


@pytest.mark.parametrize("value, method, prior", [
    ("auto", "auto", None), ("temperature", "temperature", None),
    ("matrix", "matrix", None), (None, None, None),
    ("contextual", None, "contextual"), ("batch", None, "batch"),
])
def test_calibration_strings_stand_for_objects(value, method, prior):
    calibration = InFitCalibration.from_param(value)
    assert (calibration.method, calibration.prior_correction,
            calibration.max_samples) == (method, prior, 200)


def test_invalid_object_settings_are_refused_at_fit():
    clf = LLMClassifier(backend=KeywordBackend(),
                        calibration=InFitCalibration(max_samples=0))
    with pytest.raises(ValueError, match="'max_samples' parameter of InFitCalibration"):
        clf.fit(X_BIN, Y_BIN)
    with pytest.raises(ValueError, match="verbalizer must be"):
        PromptTemplate(DEFAULT_TEMPLATE, verbalizer=3)
