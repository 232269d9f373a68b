"""LLMScores: out-of-prompt training features, call counts, failure policy."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union
from sklearn.preprocessing import FunctionTransformer

from sklearn_llmconf import LLMClassifier, ResponseCache
from sklearn_llmconf.backends._base import BaseBackend, ScoreResult, Usage
from sklearn_llmconf.hybrid import LLMScores
from sklearn_llmconf.prompts._text import normalize_text
from sklearn_llmconf.testing import KeywordBackend


class LeakBackend(BaseBackend):
    """Scores 0 log-odds, unless the prompt also shows the query as a demo.

    A prompt that contains its own query (after normalisation) twice scores
    the first label at log 0.99: any feature that came from such a prompt is
    non-zero, so the test below fails if one does.
    """

    def _score_labels(self, prompts, labels):
        out = np.full((len(prompts), len(labels)), -np.log(len(labels)))
        for i, prompt in enumerate(prompts):
            query = normalize_text(prompt.fields[-1])
            if normalize_text(prompt.text).count(query) > 1:
                out[i] = np.log(0.01 / (len(labels) - 1))
                out[i, 0] = np.log(0.99)
        return ScoreResult(out, errors=[None] * len(prompts),
                           usage=Usage(calls=len(prompts)))


def _texts(n, k=2, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array([f"c{j}" for j in rng.integers(0, k, size=n)], dtype=object)
    X = np.array([f"item zq{i:03d} of {label}" for i, label in enumerate(y)],
                 dtype=object)
    return X, y


def _calls(backend):
    return sum(len(c) for c in getattr(backend, "calls_", []))


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("selection", ["stratified", "random", "similar"])
def test_no_training_feature_comes_from_a_prompt_that_shows_it(selection, k):
    X, y = _texts(40, k)
    # upper-case copies of some texts: equal to them after normalisation
    X = np.concatenate([X, [x.upper() for x in X[:10]]])
    y = np.concatenate([y, y[:10]])
    clf = LLMClassifier(backend=LeakBackend(), n_shots=6, demo_selection=selection,
                        random_state=0)
    scores = LLMScores(clf)
    features = scores.fit_transform(X, y)
    assert features.shape == (len(X), 1 if k == 2 else k)
    np.testing.assert_allclose(features, 0.0 if k == 2 else -np.log(k))
    if selection != "similar":
        # the check has teeth: scoring the demonstrations with the fitted
        # prompt (what fit(X).transform(X) does) shows them to themselves
        in_prompt = scores.transform(X)
        leaked = np.any(np.abs(in_prompt - features) > 1, axis=1)
        np.testing.assert_array_equal(leaked, scores.demo_mask_)
        assert scores.demo_mask_.sum() >= 6  # the demos and any upper-case copy
        # the second prompt's demonstrations are none of the first's
        first = {normalize_text(d[0]) for d, _ in scores.estimator_.demos_}
        second = {normalize_text(d[0]) for d, _ in scores.swap_estimator_.demos_}
        assert first and second and not first & second
    else:
        assert scores.swap_estimator_ is None and not scores.demo_mask_.any()


def test_every_training_text_is_scored_once_and_the_cache_is_reused(tmp_path):
    X, y = _texts(50, 3)
    X_test, _ = _texts(20, 3, seed=1)
    X_test = np.array([x.replace("zq", "qz") for x in X_test], dtype=object)
    cache = ResponseCache(tmp_path / "c.sqlite")
    scores = LLMScores(LLMClassifier(backend=KeywordBackend(), n_shots=6,
                                     random_state=0, cache=cache))

    def calls(s):  # the estimators' backends are clones of the one given
        return _calls(s.estimator_.backend) + _calls(s.swap_estimator_.backend)

    scores.fit(X, y)
    assert calls(scores) == 0  # fit alone makes no model call
    scores.fit_transform(X, y)
    prompts = [p for est in (scores.estimator_, scores.swap_estimator_)
               for call in est.backend.calls_ for p in call]
    assert len(prompts) == len(X) == len(set(prompts))
    n_demo = scores.demo_mask_.sum()
    assert n_demo == 6
    assert scores.estimator_.usage_.calls == len(X) - n_demo
    assert scores.swap_estimator_.usage_.calls == n_demo
    features = scores.transform(X_test)
    assert calls(scores) == len(X) + len(X_test)
    # refitting on the same texts and scoring the same test texts: no new call
    again = clone(scores)
    np.testing.assert_array_equal(again.fit_transform(X, y), scores.fit_transform(X, y))
    np.testing.assert_array_equal(again.transform(X_test), features)
    assert calls(again) == 0
    assert again.estimator_.usage_.cache_hits == len(X) - n_demo + len(X_test)
    # (scores was refitted above, all from the cache;) the demonstrations
    # under the fitted prompt are the only prompts not scored yet
    assert calls(scores) == 0
    scores.transform(X)
    assert _calls(scores.estimator_.backend) == n_demo


def test_columns_follow_classes_and_feature_names():
    X, y = _texts(40, 3)
    scores = LLMScores(LLMClassifier(backend=KeywordBackend(), n_shots=3,
                                     random_state=0)).fit(X, y)
    feats = scores.transform(X[:5])
    expected = scores.estimator_.predict_log_proba(X[:5])
    np.testing.assert_allclose(feats, np.clip(expected, -27.6, 27.6))
    np.testing.assert_array_equal(scores.classes_, ["c0", "c1", "c2"])
    np.testing.assert_array_equal(scores.get_feature_names_out(),
                                  ["llmscores_c0", "llmscores_c1", "llmscores_c2"])
    Xb, yb = _texts(30, 2)
    binary = LLMScores(LLMClassifier(backend=KeywordBackend(), n_shots=2,
                                     random_state=0)).fit(Xb, yb)
    out = binary.transform(Xb[:4])
    assert out.shape == (4, 1)
    np.testing.assert_allclose(out[:, 0], binary.estimator_.decision_function(Xb[:4]))
    np.testing.assert_array_equal(binary.get_feature_names_out(), ["llmscores_c1"])


def test_calibration_of_the_estimator_is_switched_off():
    X, y = _texts(40)
    scores = LLMScores(LLMClassifier(backend=KeywordBackend(), n_shots=4,
                                     random_state=0))
    scores.fit(X, y)
    assert scores.estimator_.calibration is None
    assert _calls(scores.estimator_.backend) == 0


def test_failure_policy_is_the_classifiers():
    X, y = _texts(30)
    X[[7, 20]] = ["BROKEN zq900 of c0", "BROKEN zq901 of c1"]
    # zero-shot: KeywordBackend fails every prompt holding the marker, and a
    # marked demonstration would be in every prompt
    clf = LLMClassifier(backend=KeywordBackend(fail_on="BROKEN"), n_shots=0,
                        random_state=0)
    with pytest.raises(RuntimeError, match="2 of .* rows could not be scored"):
        LLMScores(clf).fit_transform(X, y)
    feats = LLMScores(clone(clf).set_params(on_error="nan")).fit_transform(X, y)
    np.testing.assert_array_equal(np.flatnonzero(np.isnan(feats[:, 0])), [7, 20])
    with pytest.warns(UserWarning, match="uniform probabilities"):
        feats = LLMScores(clone(clf).set_params(on_error="warn")).fit_transform(X, y)
    np.testing.assert_array_equal(feats[[7, 20], 0], 0.0)


def test_a_class_with_a_single_text_is_scored_by_a_prompt_not_showing_it():
    X, y = _texts(20)
    X = np.append(X, "lonely zq999")
    y = np.append(y, "only")
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=3, random_state=0)
    scores = LLMScores(clf)
    feats = scores.fit_transform(X, y)
    assert scores.demo_mask_[-1]  # its one text is a demonstration of P0
    swap = scores.swap_estimator_
    np.testing.assert_array_equal(swap.classes_, scores.classes_)
    assert "only" in scores.classes_
    assert all("zq999" not in " ".join(d) for d, _ in swap.demos_)
    assert "zq999" not in swap.prompt_template_.template
    assert np.isfinite(feats).all() and feats.shape == (21, len(scores.classes_))


def test_in_a_feature_union_and_pipeline():
    X, y = _texts(60, 2)
    length = FunctionTransformer(lambda X: np.array([[len(x)] for x in X]))
    model = make_pipeline(
        make_union(length, LLMScores(LLMClassifier(backend=KeywordBackend(),
                                                   n_shots=4, random_state=0))),
        LogisticRegression(),
    ).fit(X, y)
    proba = model.predict_proba(X[:7])
    assert proba.shape == (7, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.classes_, ["c0", "c1"])
