"""Fast tests of LLMClassifier's plumbing, with a deterministic backend."""

import pickle
import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_llmconf import InFitCalibration, LLMClassifier, PromptTemplate
from sklearn_llmconf.backends import ScoreResult
from sklearn_llmconf.prompts import DEFAULT_TEMPLATE
from sklearn_llmconf.testing import KeywordBackend
from tests._data import X_BIN, Y_BIN


def make_clf(**kw):
    kw.setdefault("n_shots", 0)  # zero-shot unless a test is about demonstrations
    return LLMClassifier(backend=KeywordBackend(), **kw)


def test_fit_sets_sorted_classes_and_makes_no_call():
    backend = KeywordBackend()
    clf = LLMClassifier(backend=backend, n_shots=2, random_state=0,
                        calibration=None)  # the default calibration scores texts
    clf.fit(X_BIN, Y_BIN)
    assert list(clf.classes_) == ["ham", "spam"]
    assert clf.label_words_ == ["ham", "spam"]
    assert not hasattr(backend, "calls_")


def test_predict_proba_shape_order_and_sum():
    clf = make_clf().fit(X_BIN, Y_BIN)
    proba = clf.predict_proba(X_BIN)
    assert proba.shape == (6, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # KeywordBackend puts mass on the label word found in the text.
    np.testing.assert_array_equal(clf.predict(X_BIN), Y_BIN)
    assert (proba[np.array(Y_BIN) == "spam", 1] > 0.5).all()


def test_decision_function_binary_is_log_odds_of_second_class():
    clf = make_clf().fit(X_BIN, Y_BIN)
    scores = clf.decision_function(X_BIN)
    proba = clf.predict_proba(X_BIN)
    assert scores.shape == (6,)
    np.testing.assert_allclose(scores, np.log(proba[:, 1] / proba[:, 0]))
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X_BIN)), proba)


def test_multiclass_decision_function_and_integer_classes():
    X = ["one thing", "two things", "three things", "one more", "two more", "three"]
    y = [3, 1, 2, 3, 1, 2]
    words = {1: "two", 2: "three", 3: "one"}
    clf = make_clf(prompt=PromptTemplate(DEFAULT_TEMPLATE, verbalizer=words)).fit(X, y)
    assert list(clf.classes_) == [1, 2, 3]
    assert clf.label_words_ == ["two", "three", "one"]
    scores = clf.decision_function(X)
    assert scores.shape == (6, 3)
    np.testing.assert_allclose(np.exp(scores).sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), y)


def test_letters_verbalizer_shows_the_mapping():
    letters = PromptTemplate(DEFAULT_TEMPLATE, verbalizer="letters")
    clf = make_clf(prompt=letters).fit(X_BIN, Y_BIN)
    assert clf.label_words_ == ["A", "B"]
    text = clf._render([("hi",)])[0].text
    assert "A: ham, B: spam" in text
    assert text.endswith("Text: hi\nAnswer:")


def test_stratified_demos_are_balanced_and_seeded():
    X = [f"text number {i}" for i in range(40)]
    y = ["a"] * 30 + ["b"] * 10
    clf = make_clf(n_shots=4, random_state=0).fit(X, y)
    labels = [w for _, w in clf.demos_]
    assert sorted(labels) == ["a", "a", "b", "b"]
    again = make_clf(n_shots=4, random_state=0).fit(X, y)
    assert again.demos_ == clf.demos_
    other = make_clf(n_shots=4, random_state=1).fit(X, y)
    assert other.demos_ != clf.demos_


def test_demos_appear_in_prompt_before_query_and_prefix_is_shared():
    clf = make_clf(n_shots=2, random_state=0).fit(X_BIN, Y_BIN)
    prompts = clf.render_prompts(["first", "second"])
    (d0, w0), (d1, w1) = clf.demos_
    text = prompts[0]
    assert text.index(d0[0]) < text.index(d1[0]) < text.index("Text: first")
    assert f"Text: {d0[0]}\nAnswer: {w0}\n\n" in text
    head = text[: text.index("Text: first")]
    assert prompts[1].startswith(head)
    assert prompts == [p.text for p in clf._render([("first",), ("second",)])]
    with pytest.raises(ValueError, match="row 1"):
        clf.render_prompts(["first", None])
    assert clf.render_prompts([("first",)], as_fields=True) == prompts[:1]
    with pytest.raises(ValueError, match=r"row 0 has 2 values, the prompt has 1 "
                       r"fields \['text'\]"):
        clf.render_prompts([("a", "b")], as_fields=True)


def test_similar_demos_never_include_the_query_itself():
    X = ["free prize now", "Free prize, NOW!", "lunch at noon", "prize draw free",
         "dinner at eight", "call me at noon"]
    y = ["spam", "spam", "ham", "spam", "ham", "ham"]
    clf = make_clf(n_shots=2, demo_selection="similar").fit(X, y)
    prompt = clf._render([("free prize now",)])[0].text
    demo_part = prompt[: prompt.rindex("Text: free prize now")]
    # The duplicate (after normalisation) is excluded, the nearest other is used.
    assert "free prize now" not in demo_part.lower().replace(",", "").replace("!", "")
    assert "prize draw free" in demo_part
    strat = make_clf(n_shots=2, demo_selection="similar_stratified").fit(X, y)
    p = strat._render([("free prize now",)])[0].text
    assert p.count("Answer: spam") == 1 and p.count("Answer: ham") == 1


def test_one_backend_call_per_unique_prompt():
    backend = KeywordBackend()
    clf = LLMClassifier(n_shots=0, backend=backend, batch_size=2).fit(X_BIN, Y_BIN)
    proba = clf.predict_proba(X_BIN + X_BIN[:3])
    scored = [t for call in backend.calls_ for t in call]
    assert len(scored) == 6 == len(set(scored))
    np.testing.assert_allclose(proba[6:], proba[:3])
    assert clf.usage_.calls == 6
    assert all(len(call) <= 2 for call in backend.calls_)


@pytest.mark.parametrize(
    "X, message",
    [
        ("just one string", "got a single str"),
        (["fine", None], "Input X contains None at row 1"),
        (["fine", float("nan")], "Input X contains NaN at row 1"),
        (["fine", 3], "Input X has a int at row 1; expected a str."),
        ([], "at least one text"),
    ],
)
def test_bad_text_input_gets_clear_error(X, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_clf().fit(X, ["a", "b"][: len(X)] if not isinstance(X, str) else ["a"])


def test_predict_time_bad_input_names_the_row():
    clf = make_clf().fit(X_BIN, Y_BIN)
    with pytest.raises(ValueError, match="contains None at row 2"):
        clf.predict(["a", "b", None])


def test_y_mismatch_and_single_class():
    with pytest.raises(ValueError, match="X has 6 rows but y has 2"):
        make_clf().fit(X_BIN, ["a", "b"])
    with pytest.raises(ValueError, match="only one class"):
        make_clf().fit(X_BIN, ["a"] * 6)


def test_prompt_validation():
    with pytest.raises(ValueError, match="no field placeholder"):
        make_clf(prompt="Classify: {labels}").fit(X_BIN, Y_BIN)
    with pytest.raises(ValueError, match="must be named"):
        make_clf(prompt="Text: {}").fit(X_BIN, Y_BIN)
    with pytest.raises(ValueError, match=r"fields are \['subject', 'body'\]"):
        make_clf(prompt="{subject}\n{body}").fit(X_BIN, Y_BIN)
    with pytest.raises(ValueError, match="no word for classes"):
        make_clf(prompt=PromptTemplate(DEFAULT_TEMPLATE, verbalizer={"ham": "no"})
                 ).fit(X_BIN, Y_BIN)
    with pytest.raises(ValueError, match="distinct"):
        make_clf(prompt=PromptTemplate(DEFAULT_TEMPLATE,
                                       verbalizer={"ham": "x", "spam": "x"})
                 ).fit(X_BIN, Y_BIN)


def test_dataframe_columns_fill_named_placeholders():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {"body": ["buy spam now", "hi ham"], "subject": ["offer", "re: lunch"],
         "extra": [1, 2]}
    )
    clf = make_clf(prompt="Subject: {subject}\nBody: {body}\nLabel:")
    clf.fit(df, ["spam", "ham"])
    assert list(clf.feature_names_in_) == ["body", "subject", "extra"]
    text = clf._render(clf._validate_rows(df, reset=False))[0].text
    assert text.endswith("Subject: offer\nBody: buy spam now\nLabel:")
    np.testing.assert_array_equal(clf.predict(df), ["spam", "ham"])
    with pytest.raises(ValueError, match="Expected 2-D X with 3 columns"):
        clf.predict(["only text"])


def test_on_error_policies():
    X = ["spam here", "ham here", "FAIL spam"]
    y = ["spam", "ham", "spam"]
    clf = LLMClassifier(n_shots=0, backend=KeywordBackend(fail_on="FAIL"),
                        calibration=None).fit(X, y)
    with pytest.raises(RuntimeError, match="1 of 3 rows could not be scored"):
        clf.predict_proba(X)
    clf.set_params(on_error="warn").fit(X, y)  # fit decides the policy
    with pytest.warns(UserWarning, match="uniform probabilities"):
        proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba[2], [0.5, 0.5])
    assert proba[0, 1] > 0.5 and proba[1, 0] > 0.5  # other rows kept
    clf.set_params(on_error="nan").fit(X, y)
    proba = clf.predict_proba(X)
    assert np.isnan(proba[2]).all() and np.isfinite(proba[:2]).all()
    with pytest.raises(ValueError, match="1 rows have no score"):
        clf.predict(X)
    # Two scorings since fit met the failing row; failures are never cached.
    assert clf.usage_.failed_rows == 2


def test_missing_label_counts_as_failed_row():
    clf = LLMClassifier(n_shots=0, backend=KeywordBackend(missing_on="???"),
                        on_error="nan")
    clf.fit(["a spam", "b ham"], ["spam", "ham"])
    proba = clf.predict_proba(["a spam", "who ???"])
    assert np.isfinite(proba[0]).all() and np.isnan(proba[1]).all()


def test_clone_and_pickle_roundtrip_give_identical_probabilities():
    clf = make_clf(n_shots=2, random_state=0)
    cloned = clone(clf)
    assert cloned.get_params()["n_shots"] == 2
    pickle.loads(pickle.dumps(clf))  # unfitted
    clf.fit(X_BIN, Y_BIN)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X_BIN),
                                  clf.predict_proba(X_BIN))
    assert restored.demos_ == clf.demos_


def test_default_backend_is_built_in_fit_and_kept():
    # No model call: zero-shot, no calibration, only the backend objects.
    clf = LLMClassifier(n_shots=0, calibration=None)
    assert clf.get_backend() is not clf.get_backend()  # unfitted: nothing kept
    clf.fit(X_BIN, Y_BIN)
    backend = clf.get_backend()
    assert type(backend).__name__ == "LlamaCppBackend" and clf.get_backend() is backend
    other = KeywordBackend()
    assert clf.set_params(backend=other).get_backend() is other  # read when called
    clf.set_params(backend=None)
    assert clf.get_params()["backend"] is None  # a parameter is not set by fit
    restored = pickle.loads(pickle.dumps(clf))
    assert restored._get_backend() is restored._get_backend()  # rebuilt once
    assert restored._get_backend() is not backend
    clf.fit(X_BIN, Y_BIN)
    assert clf._get_backend() is not backend  # a refit builds its own
    assert clone(clf).__dict__.get("_default_backend") is None


def test_pipeline_gridsearch_over_prompts_and_cross_val_score():
    X = X_BIN * 3
    y = Y_BIN * 3
    pipe = make_pipeline(
        FunctionTransformer(lambda t: [s.lower() for s in t]),
        make_clf(),
    )
    prompts = [
        "Text: {text}\nAnswer:",
        PromptTemplate("Message: {text}\nCategory:", answer_prefix=" "),
    ]
    search = GridSearchCV(pipe, {"llmclassifier__prompt": prompts}, cv=3,
                          scoring="neg_log_loss")
    search.fit(X, y)
    assert search.best_params_["llmclassifier__prompt"] in prompts
    assert search.predict_proba(X).shape == (18, 2)
    scores = cross_val_score(make_clf(), X, y, cv=3)
    assert scores.shape == (3,) and (scores == 1.0).all()


def test_parameter_validation():
    with pytest.raises(ValueError, match="n_shots"):
        make_clf(n_shots=-1).fit(X_BIN, Y_BIN)
    with pytest.raises(ValueError, match="demo_selection"):
        make_clf(demo_selection="nearest").fit(X_BIN, Y_BIN)
    with pytest.raises(ValueError, match="backend"):
        LLMClassifier(backend="gpt").fit(X_BIN, Y_BIN)


# -- response cache -------------------------------------------------------------
def _scored(backend):
    return sum(len(call) for call in getattr(backend, "calls_", []))


def test_cache_makes_a_second_prediction_free(tmp_path):
    path = tmp_path / "responses.sqlite"
    backend = KeywordBackend()
    clf = LLMClassifier(n_shots=0, backend=backend, cache=str(path),
                        calibration=None).fit(X_BIN, Y_BIN)
    first = clf.predict_proba(X_BIN)
    assert _scored(backend) == 6
    # A clone (as in cross-validation) shares the file, not the object.
    other = clone(clf).fit(X_BIN, Y_BIN)
    np.testing.assert_array_equal(other.predict_proba(X_BIN), first)
    assert _scored(backend) == 6
    assert other.usage_.cache_hits == 6 and other.usage_.calls == 0


def test_interrupted_prediction_resumes_without_rescoring(tmp_path):
    class Interrupt(KeywordBackend):
        armed = True

        def score_labels(self, prompts, labels):
            if self.armed and any("boom" in p.text for p in prompts):
                raise KeyboardInterrupt
            return super().score_labels(prompts, labels)

    X = [f"text {i} spam" for i in range(6)] + ["boom"]
    y = ["spam", "ham"] * 3 + ["ham"]
    backend = Interrupt()
    clf = LLMClassifier(n_shots=0, backend=backend, cache=tmp_path / "c.sqlite",
                        batch_size=3, calibration=None)
    clf.fit(X, y)
    with pytest.raises(KeyboardInterrupt):
        clf.predict_proba(X)
    assert _scored(backend) == 6  # two batches finished before the interruption
    backend.armed = False
    clf.predict_proba(X)
    assert clf.usage_.cache_hits == 6 and clf.usage_.calls == 6 + 1  # since fit
    assert _scored(backend) == 7


def test_failed_rows_are_not_cached(tmp_path):
    backend = KeywordBackend(fail_on="FAIL")
    clf = LLMClassifier(n_shots=0, backend=backend, cache=tmp_path / "c.sqlite",
                        on_error="nan", calibration=None)
    clf.fit(["a spam", "FAIL"], ["spam", "ham"])
    clf.predict_proba(["a spam", "FAIL"])
    clf.predict_proba(["a spam", "FAIL"])
    assert _scored(backend) == 3  # the failed row was asked for again


def test_calibrated_cv_and_grid_search_score_each_prompt_once(tmp_path):
    from sklearn.calibration import CalibratedClassifierCV

    class Counting(KeywordBackend):
        scored = []  # class-level: shared by the clones that CV makes

        def score_labels(self, prompts, labels):
            Counting.scored.extend(p.text for p in prompts)
            return super().score_labels(prompts, labels)

    X = [f"message {i} " + ("spam offer" if i % 3 == 0 else "ham lunch")
         for i in range(30)]
    y = ["spam" if i % 3 == 0 else "ham" for i in range(30)]
    clf = LLMClassifier(n_shots=0, backend=Counting(), cache=tmp_path / "c.sqlite")
    cal = CalibratedClassifierCV(clf, method="sigmoid", cv=5).fit(X, y)
    cal.predict_proba(X)
    # Zero-shot prompts do not depend on the fold: 30 texts, 30 scorings in all,
    # although 5 folds each scored their calibration part and then all of X.
    assert len(Counting.scored) == 30
    prompts = ["Text: {text}\nAnswer:", "SMS: {text}\nLabel:", "{text}\nIt is"]
    GridSearchCV(clf, {"prompt": prompts}, cv=5, scoring="neg_log_loss").fit(X, y)
    # 3 new prompts x 30 texts, each scored once over 5 folds x (fit, score).
    assert len(Counting.scored) == len(set(Counting.scored)) == 30 + 3 * 30


# -- labels that are prefixes of each other, label validation ------------------
class AnswerBackend(KeywordBackend):
    """A model that answers the text's "Answer: <word>" with probability 0.6.

    The rest of the mass is spread evenly over the other ``words``; every
    answer is followed by the template's demo separator, as in the
    demonstrations. A label string's probability is, exactly, the mass of the
    continuations that start with it: ``P(" 1")`` includes ``P(" 10...")``.
    """

    def __init__(self, words=(), end="\n\nText:"):
        self.words = words
        self.end = end

    def _score_labels(self, prompts, labels):
        self.__dict__.setdefault("labels_", []).append(list(labels))
        out = np.empty((len(prompts), len(labels)))
        for i, prompt in enumerate(prompts):
            said = prompt.fields[-1].split("Answer: ")[-1]
            others = (1 - 0.6) / (len(self.words) - 1)
            answers = {f" {w}{self.end}": 0.6 if w == said else others
                       for w in self.words}
            for j, label in enumerate(labels):
                out[i, j] = np.log(sum(p for a, p in answers.items()
                                       if a.startswith(label)))
        return ScoreResult(out)


def test_labels_that_are_prefixes_of_others_can_win():
    classes = list(range(1, 13))
    X = [f"Answer: {c}" for c in classes]
    backend = AnswerBackend(words=[str(c) for c in classes])
    # The texts state their answer on purpose: not rejected as fake answers.
    prompt = PromptTemplate(DEFAULT_TEMPLATE, reject_fake_answers=False)
    clf = LLMClassifier(prompt, n_shots=0, backend=backend,
                        calibration=None).fit(X, classes)
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict(X), classes)  # 10, 11, 12 included
    # The scored events are disjoint: the scores are the model's distribution.
    np.testing.assert_allclose(np.diag(proba), 0.6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert backend.labels_[0] == [f" {c}\n" for c in classes]

    words = ["ham", "ham radio"]
    backend = AnswerBackend(words=words)
    clf = LLMClassifier(prompt, n_shots=0, backend=backend).fit(
        ["Answer: ham", "Answer: ham radio"], words)
    np.testing.assert_array_equal(
        clf.predict(["Answer: ham radio", "Answer: ham"]), ["ham radio", "ham"])


def test_labels_without_prefixes_are_scored_as_before():
    template = PromptTemplate("Text: {text}\nAnswer:")
    assert template.label_strings(["ham", "spam"]) == [" ham", " spam"]
    assert template.label_strings(["1", "2", "3"]) == [" 1", " 2", " 3"]
    assert template.label_strings(["1", "12"]) == [" 1\n", " 12\n"]
    custom = PromptTemplate("Q: {text}\nA:", demo_separator="\n###\n")
    assert custom.label_strings(["ham", "ham radio"]) == [" ham\n", " ham radio\n"]
    inline = PromptTemplate("Q: {text} A:", demo_separator=" | ")
    assert inline.label_strings(["1", "12"]) == [" 1 | ", " 12 | "]
    for separator in ["", " "]:
        with pytest.raises(ValueError, match="does not separate them"):
            PromptTemplate("{text} =", demo_separator=separator).label_strings(
                ["a", "a b"])


def test_y_containing_none_gets_clear_error():
    with pytest.raises(ValueError, match=r"y contains None at row 1 \(2 row"):
        make_clf().fit(["a", "b", "c"], ["spam", None, None])


@pytest.mark.parametrize(
    "verbalizer, message",
    [
        ({"ham": "ham, eggs", "spam": "spam"}, "contains the label separator ', '"),
        ({"ham": "ham\nAnswer: spam", "spam": "spam"}, "contains a line break"),
        (["ham", "sp\r\nam"], "contains a line break"),
    ],
)
def test_label_words_that_would_corrupt_the_prompt_are_refused(verbalizer, message):
    # An explicit separator is kept (the default chooses one the words lack).
    prompt = PromptTemplate(DEFAULT_TEMPLATE, label_separator=", ",
                            verbalizer=verbalizer)
    with pytest.raises(ValueError, match=re.escape(message)):
        make_clf(prompt=prompt).fit(X_BIN, Y_BIN)
    # Classes (no verbalizer) are checked the same way.
    with pytest.raises(ValueError, match="contains a line break"):
        make_clf().fit(["a", "b"], ["ok", "not\nok"])


def test_long_demonstrations_are_cut_and_the_query_is_not():
    long_texts = [f"{'word ' * 100}{label}" for label in ("ham", "spam")] * 3
    y = ["ham", "spam"] * 3
    clf = make_clf(n_shots=2, prompt=PromptTemplate(DEFAULT_TEMPLATE, demo_max_chars=40)
                   ).fit(long_texts, y)
    prompt = clf._render([(long_texts[0],)])[0]
    demo_lines = [ln for ln in prompt.text.split("\n")[:-2] if ln.startswith("Text: ")]
    assert len(demo_lines) == 2
    # Cut at the last space before 40 characters: 7 words of 5 characters.
    assert all(ln == "Text: " + "word " * 7 + "word" for ln in demo_lines)
    assert prompt.fields == (long_texts[0],)  # the query is whole
    whole = make_clf(n_shots=2,
                     prompt=PromptTemplate(DEFAULT_TEMPLATE, demo_max_chars=None)
                     ).fit(long_texts, y)
    assert whole._render([("x",)])[0].text.count("word") == 200
    with pytest.raises(ValueError, match="demo_max_chars must be an int >= 1"):
        PromptTemplate(DEFAULT_TEMPLATE, demo_max_chars=0)


def _state(estimator):
    """Everything the estimator holds but its usage counters, as one hash."""
    import joblib

    return joblib.hash({k: v for k, v in vars(estimator).items() if k != "usage_"})


@pytest.mark.parametrize("params", [
    {"n_shots": 4},
    {"n_shots": 4, "demo_selection": "similar",
     "calibration": InFitCalibration(prior_correction="batch")},
    {"n_shots": 0, "calibration": InFitCalibration(prior_correction="contextual")},
    {"n_shots": 2, "on_error": "nan", "calibration": None},
])
def test_predict_changes_no_attribute_but_the_usage_counters(params):
    X, y = X_BIN * 3, Y_BIN * 3
    failing = params.get("on_error") == "nan"
    backend = KeywordBackend(fail_on="zzz" if failing else None)
    clf = LLMClassifier(backend=backend, **params).fit(X, y)
    before, calls = _state(clf), clf.usage_.calls
    for method in ("predict_proba", "predict_log_proba", "decision_function",
                   "predict", "score_details"):
        extra = (["unseen text zzz"] if failing and method != "predict"
                 else [f"unseen spam text for {method}"])
        getattr(clf, method)(X_BIN + extra)
    assert _state(clf) == before
    assert clf.usage_.calls > calls


class _DictCache:
    """A user-written cache with the documented protocol only."""

    def __init__(self):
        self.rows = {}

    def get_many(self, keys):
        return {k: self.rows[k] for k in keys if k in self.rows}

    def set_many(self, items):
        self.rows.update(items)


def test_a_user_cache_with_the_documented_protocol_works():
    from sklearn_llmconf import TemperatureScaler
    from sklearn_llmconf.routing import ConfidenceRouter

    cache = _DictCache()
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=2, cache=cache,
                        random_state=0)
    X, y = X_BIN * 4, Y_BIN * 4
    clf.fit(X, y)
    first = clf.predict_proba(X_BIN)
    assert len(cache.rows) > 0
    calls = clf.usage_.calls
    np.testing.assert_array_equal(clf.predict_proba(X_BIN), first)
    assert clf.usage_.calls == calls  # answered from the user's cache
    assert cross_val_score(clone(clf), X, y, cv=2).shape == (2,)
    TemperatureScaler(clone(clf).set_params(calibration=None), cv=2).fit(X, y)
    ConfidenceRouter(FrozenEstimator(clf), tiers=[("accept", 0.6)]).fit(X, y)


def test_usage_counts_every_call_of_threads_predicting_at_once():
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"spam number {i}" for i in range(200)]
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0, calibration=None,
                        batch_size=1).fit(X_BIN, Y_BIN)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(clf.predict_proba, [texts[i::8] for i in range(8)]))
    assert clf.usage_.calls == 200


def test_fit_classes_offers_a_class_without_examples():
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=2, calibration=None,
                        random_state=0)
    clf.fit(["spam now", "ham here", "spam again"], ["spam", "ham", "spam"],
            classes=["eggs", "ham", "spam"])
    np.testing.assert_array_equal(clf.classes_, ["eggs", "ham", "spam"])
    assert {label for _, label in clf.demos_} <= {"ham", "spam"}
    assert clf.predict_proba(["eggs"]).shape == (1, 3)
    y = np.array(["spam", "ham", "spam"])  # '<U4': a longer class is not cut
    clf.fit(["spam now", "ham here", "spam again"], y,
            classes=["ham", "phishing", "spam"])
    np.testing.assert_array_equal(clf.classes_, ["ham", "phishing", "spam"])
    with pytest.raises(ValueError, match=r"y holds the classes \['spam'\] that "
                       "classes does not list"):
        clf.fit(["a", "b"], ["spam", "ham"], classes=["ham", "eggs"])


@pytest.mark.parametrize("n_shots", [0, 4])
def test_in_fit_calibration_with_a_class_of_one_text(n_shots):
    rng = np.random.default_rng(0)
    y = rng.choice(["spam", "ham", "eggs"], size=60).astype(object)
    y[5] = "rare"
    X = [f"{label} w{i}" for i, label in enumerate(y)]
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=n_shots,
                        random_state=0).fit(X, y)
    proba = clf.predict_proba(X[:3])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert "rare" in clf.classes_
