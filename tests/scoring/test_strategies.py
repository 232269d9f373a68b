"""Strategies for hidden log-probs (verbalized, self-consistency) and ensembles."""

import warnings

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.base import clone
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from sklearn_llmconf import (
    LLMClassifier,
    PromptTemplate,
    ResponseCache,
    SelfConsistency,
    Verbalized,
)
from sklearn_llmconf.backends import (
    BackendCapabilities,
    BaseBackend,
    GenerationResult,
    Usage,
)
from sklearn_llmconf.prompts import DEFAULT_TEMPLATE
from sklearn_llmconf.scoring._strategies import (
    VERBALIZED_EPS,
    consistency_log_scores,
    match_label,
    parse_verbalized,
    resolve_strategy,
    verbalized_log_scores,
)
from sklearn_llmconf.testing import KeywordBackend
from tests._data import short_sms

ALIASES = [["ham"], ["spam"]]
X = ["win cash now", "see you at lunch", "free prize claim", "call me later"]
Y = ["spam", "ham", "spam", "ham"]


class ScriptedBackend(BaseBackend):
    """Answers from a function of the query text; counts what it was asked.

    ``answer(text, j)`` gives sample ``j`` for the text (the prompt's last field).
    Capabilities are set per instance so that ``auto`` can be tested.
    """

    def __init__(self, answer=None, logprobs=False, sampling=True):
        self.answer = answer
        self.logprobs = logprobs
        self.sampling = sampling

    def capabilities(self):
        return BackendCapabilities(logprobs=self.logprobs, sampling=self.sampling,
                                   n_per_request=True)

    def cache_identity(self):
        # The answering function changes the scores: key on its name.
        return {"backend": "ScriptedBackend", "answer": self.answer.__name__}

    def _score_labels(self, prompts, labels):  # pragma: no cover - never allowed
        raise AssertionError("score_labels must not be called")

    def _generate(self, prompts, *, n_samples, temperature, max_tokens, seed, stop):
        calls = self.__dict__.setdefault("calls_", [])
        calls.append(dict(prompts=[p.text for p in prompts], n_samples=n_samples,
                          temperature=temperature, seed=seed, stop=stop))
        texts = [[self.answer(p.fields[-1], j) for j in range(n_samples)]
                 for p in prompts]
        usage = Usage(calls=len(prompts), prompt_tokens=10 * len(prompts),
                      completion_tokens=3 * n_samples * len(prompts))
        return GenerationResult(texts, usage=usage)


def verbal_answer(text, j):
    # The prompt ends with the JSON prefill, so the model continues it.
    if "unparseable" in text:
        return "I cannot decide"
    label = "spam" if ("win" in text or "free" in text) else "ham"
    return f'{label}", "probability": 0.8'


def vote_answer(text, j):
    # 7 of 10 samples say spam for spammy texts, 3 say it for others; sample 9
    # never names a label.
    if "nolabel" in text:
        return " maybe"
    if j == 9:
        return " I do not know"
    spammy = "win" in text or "free" in text
    return " spam" if (j < 7) == spammy else " Ham."


# -- parsing ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"label": "spam", "probability": 0.9}', (1, 0.9)),
        ('```json\n{"label": "ham", "probability": 0.75}\n```', (0, 0.75)),
        ('{"label": "spam", "probability": "85%"}', (1, 0.85)),
        ('{"label": "spam", "probability": 85}', (1, 0.85)),
        ('{"label": "spam", "probability": "0.6"}', (1, 0.6)),
        ('Sure! {"label": "spam", "probability": 0.7} Hope this helps.', (1, 0.7)),
        ('{"label": "  SPAM ", "probability": 0.7}', (1, 0.7)),
        ("{'label': 'Ham', 'probability': 0.55}", (0, 0.55)),
        ('{"label": "spam", "confidence": 0.65}', (1, 0.65)),
        ('{"label": "spam", "probability": 1}', (1, 1.0)),
        ('{"label": "ham", "probability": 0}', (0, 0.0)),
        # Continuation of the prefill '{"label": "', cut at the stop string "}".
        ('spam", "probability": 0.8', (1, 0.8)),
        # Not JSON at all, but the fields are there.
        ("{label: spam, probability: 90%}", (1, 0.9)),
    ],
)
def test_parse_verbalized_good(text, expected):
    parsed = parse_verbalized(text, ALIASES, prefill='{"label": "')
    assert parsed[0] == expected[0]
    assert parsed[1] == pytest.approx(expected[1])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "spam",  # no probability
        "I think it is spam with 90% confidence but no JSON",
        '{"label": "eggs", "probability": 0.9}',  # not a label
        '{"label": "spam", "probability": 150}',
        '{"label": "spam", "probability": -0.2}',
        '{"label": "spam", "probability": "high"}',
        '{"label": "spam"}',
        '{"probability": 0.9}',
        '{"label": "spam", "probability": true}',
        '["spam", 0.9]',
    ],
)
def test_parse_verbalized_bad(text):
    assert parse_verbalized(text, ALIASES, prefill="") is None


def test_parse_verbalized_per_label_and_aliases():
    parsed = parse_verbalized(
        '{"probabilities": {"Spam": 0.3, "ham": 0.7}}', ALIASES)
    np.testing.assert_allclose(parsed, [0.7, 0.3])
    # A class name is accepted in place of its letter verbalization.
    assert parse_verbalized('{"label": "spam", "probability": 0.9}',
                            [["A", "ham"], ["B", "spam"]]) == (1, 0.9)


def test_verbalized_log_scores_invert_exactly():
    for k, j, p in [(2, 1, 0.8), (2, 0, 0.3), (4, 2, 0.55), (3, 0, 0.999)]:
        scores = verbalized_log_scores((j, p), k)
        expected = np.full(k, (1 - p) / (k - 1))
        expected[j] = p
        # Already log-probabilities: their softmax is the stated probability.
        np.testing.assert_allclose(np.exp(scores), expected, rtol=1e-12)
        np.testing.assert_allclose(softmax(scores), expected, rtol=1e-12)
    # 0 and 1 are clipped so that every log-score is finite.
    top = verbalized_log_scores((1, 1.0), 2)
    np.testing.assert_allclose(np.exp(top), [VERBALIZED_EPS, 1 - VERBALIZED_EPS])
    low = verbalized_log_scores((1, 0.0), 2)
    np.testing.assert_allclose(np.exp(low), [1 - VERBALIZED_EPS, VERBALIZED_EPS])
    # One probability per label: normalised; a missing label takes what is left.
    np.testing.assert_allclose(
        np.exp(verbalized_log_scores(np.array([0.2, 0.6, np.nan]), 3)),
        [0.2, 0.6, 0.2])
    np.testing.assert_allclose(
        np.exp(verbalized_log_scores(np.array([1.0, 1.0]), 2)), [0.5, 0.5])


def test_consistency_smoothing():
    np.testing.assert_allclose(np.exp(consistency_log_scores([7, 3], 1.0)),
                               [8 / 12, 4 / 12])
    np.testing.assert_allclose(np.exp(consistency_log_scores([10, 0, 0], 0.5)),
                               [10.5 / 11.5, 0.5 / 11.5, 0.5 / 11.5])
    assert np.isfinite(consistency_log_scores([0, 5], 0.1)).all()


def test_match_label():
    assert match_label(" Spam, definitely", ALIASES) == 1
    assert match_label("ham or spam?", ALIASES) == 0  # the first one named
    assert match_label("spammy hamster", ALIASES) is None  # whole words only
    assert match_label("Answer: NOT   SPAM", [["spam"], ["not spam"]]) == 1
    assert match_label("", ALIASES) is None


# -- choosing a strategy -----------------------------------------------------------
def test_auto_follows_capabilities():
    assert resolve_strategy("auto", KeywordBackend()) == "logprobs"
    assert resolve_strategy("auto", ScriptedBackend(logprobs=False)) == "consistency"
    assert resolve_strategy(
        "auto", ScriptedBackend(logprobs=False, sampling=False)) == "verbalized"
    clf = LLMClassifier(backend=ScriptedBackend(vote_answer), strategy="auto")
    assert clf.fit(X, Y).strategy_ == "consistency"
    clf = LLMClassifier(backend=KeywordBackend(), strategy="auto")
    assert clf.fit(X, Y).strategy_ == "logprobs"


def test_unsupported_signal_errors_name_alternatives():
    with pytest.raises(ValueError, match="does not return log-probabilities.*"
                       "'consistency' or 'verbalized'"):
        LLMClassifier(backend=ScriptedBackend(logprobs=False),
                      strategy="logprobs").fit(X, Y)
    with pytest.raises(ValueError, match="cannot sample.*'verbalized'"):
        LLMClassifier(backend=ScriptedBackend(sampling=False),
                      strategy="consistency").fit(X, Y)
    with pytest.raises(ValueError, match="cannot generate text.*'logprobs'"):
        LLMClassifier(backend=KeywordBackend(), strategy="verbalized").fit(X, Y)
    with pytest.raises(NotImplementedError, match="strategy='logprobs'"):
        KeywordBackend().generate([])


@pytest.mark.parametrize("strategy, message", [
    (SelfConsistency(n_samples=0), "'n_samples' parameter of SelfConsistency"),
    (SelfConsistency(smoothing=0.0), "'smoothing' parameter of SelfConsistency"),
    (SelfConsistency(temperature=-1), "'temperature' parameter of SelfConsistency"),
    (SelfConsistency(max_new_tokens=0), "'max_new_tokens' parameter of "
                                         "SelfConsistency"),
    (Verbalized(max_new_tokens=0), "'max_new_tokens' parameter of Verbalized"),
    ("vote", "'strategy' parameter of LLMClassifier"),
])
def test_parameter_validation(strategy, message):
    clf = LLMClassifier(backend=ScriptedBackend(vote_answer), strategy=strategy)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, Y)


# -- the classifier with each strategy ------------------------------------------------
def test_verbalized_classifier_probabilities_and_prompt():
    backend = ScriptedBackend(verbal_answer)
    clf = LLMClassifier(backend=backend, strategy="verbalized").fit(X, Y)
    proba = clf.predict_proba(X)
    expected = np.array([[0.2, 0.8], [0.8, 0.2], [0.2, 0.8], [0.8, 0.2]])
    np.testing.assert_allclose(proba, expected)
    np.testing.assert_allclose(clf.decision_function(X),
                               np.log(expected[:, 1] / expected[:, 0]))
    call = backend.calls_[0]
    assert call["temperature"] == 0.0 and call["n_samples"] == 1
    prompt = call["prompts"][0]
    assert prompt.startswith("Answer with JSON only")
    assert '<one of: ham, spam>' in prompt
    assert prompt.endswith('Answer: {"label": "')


@pytest.mark.parametrize("on_error", ["raise", "warn", "nan"])
def test_unparseable_rows_follow_on_error(on_error):
    clf = LLMClassifier(backend=ScriptedBackend(verbal_answer), strategy="verbalized",
                        on_error=on_error).fit(X, Y)
    Xe = ["win now", "unparseable text", "lunch"]
    if on_error == "raise":
        with pytest.raises(RuntimeError, match="1 of 3 rows.*unparseable verbalized "
                           "answer 'I cannot decide'"):
            clf.predict_proba(Xe)
        return
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        proba = clf.predict_proba(Xe)
    assert clf.usage_.failed_rows == 1
    np.testing.assert_allclose(proba[[0, 2]], [[0.2, 0.8], [0.8, 0.2]])
    if on_error == "warn":
        assert any("could not be scored" in str(w.message) for w in record)
        np.testing.assert_allclose(proba[1], [0.5, 0.5])
    else:
        assert np.isnan(proba[1]).all()


def test_consistency_votes_smoothing_and_unmatched():
    backend = ScriptedBackend(vote_answer)
    clf = LLMClassifier(backend=backend,
                        strategy=SelfConsistency(n_samples=10, smoothing=1.0,
                                                 temperature=0.9),
                        random_state=3,
                        on_error="nan").fit(X, Y)
    proba = clf.predict_proba(X + ["nolabel"])
    # 9 samples name a label: 7 spam + 2 ham, or 2 spam ("Ham." ends with a dot)
    # + 7 ham; with Laplace smoothing (7 + 1) / (9 + 2).
    spam = np.array([8 / 11, 3 / 11, 8 / 11, 3 / 11])
    np.testing.assert_allclose(proba[:4, 1], spam)
    np.testing.assert_allclose(proba[:4].sum(axis=1), 1.0)
    assert np.isnan(proba[4]).all()  # no sample named a label: a failed row
    assert clf.usage_.unmatched_answers == 4 * 1 + 10
    assert clf.usage_.failed_rows == 1
    call = backend.calls_[0]
    assert call["n_samples"] == 10 and call["temperature"] == 0.9
    assert call["seed"] == 3
    # Generation usage is accumulated on usage_.
    assert clf.usage_.calls == 5 and clf.usage_.completion_tokens == 5 * 30


def test_cache_keys_distinct_per_strategy_and_parameters(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    backend = ScriptedBackend(vote_answer, logprobs=True)
    variants = [
        dict(strategy=SelfConsistency(n_samples=5)),
        dict(strategy=SelfConsistency(n_samples=10)),
        dict(strategy=SelfConsistency(n_samples=10, temperature=1.0)),
        dict(strategy=SelfConsistency(n_samples=10, smoothing=0.5)),
        dict(strategy=SelfConsistency(n_samples=10), random_state=1),
        dict(strategy=SelfConsistency(n_samples=10, max_new_tokens=4)),
    ]
    for i, params in enumerate(variants, 1):
        clf = LLMClassifier(backend=backend, cache=cache, random_state=0)
        clf.set_params(**params).fit(X, Y)
        first = clf.predict_proba(X[:1])
        n_calls = len(backend.calls_)
        again = clf.predict_proba(X[:1])  # a cache hit: no generation
        assert len(backend.calls_) == n_calls
        assert clf.usage_.cache_hits == 1
        np.testing.assert_allclose(again, first)
        assert len(cache) == i  # a key of its own
    # Same rendered prompt, log-probs vs consistency: different keys.
    shared = ResponseCache(tmp_path / "shared.sqlite")
    LLMClassifier(backend=KeywordBackend(), cache=shared).fit(X, Y).predict_proba(
        X[:1])
    LLMClassifier(backend=ScriptedBackend(vote_answer), cache=shared,
                  strategy="consistency", random_state=0).fit(X, Y).predict_proba(
        X[:1])
    assert len(shared) == 2


def test_failed_rows_are_not_cached(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    clf = LLMClassifier(backend=ScriptedBackend(verbal_answer), strategy="verbalized",
                        cache=cache, on_error="nan").fit(X, Y)
    clf.predict_proba(["win", "unparseable"])
    assert len(cache) == 1


# -- ensembles with scikit-learn's own tools -------------------------------------------
PROMPTS = [
    "Classify each text as one of: {labels}.\n\nText: {text}\nAnswer:",
    "Is this SMS spam? Options: {labels}.\n\nSMS: {text}\nLabel:",
    "Message: {text}\nCategory ({labels}):",
]
X_TRAIN = ["spam offer win", "ham at home", "spam spam", "lunch ham", "free spam",
           "ham friend", "spam prize", "see you ham"]
Y_TRAIN = ["spam", "ham"] * 4


def _members(backend, cache=None):
    return [
        (f"p{i}", FrozenEstimator(LLMClassifier(prompt, backend=backend, cache=cache,
                                                n_shots=0)
                                  .fit(X_TRAIN, Y_TRAIN)))
        for i, prompt in enumerate(PROMPTS)
    ]


def test_soft_voting_averages_member_probabilities():
    backend = KeywordBackend()
    members = _members(backend)
    vote = VotingClassifier(members, voting="soft").fit(X_TRAIN, Y_TRAIN)
    expected = np.mean([m.predict_proba(X) for _, m in members], axis=0)
    np.testing.assert_allclose(vote.predict_proba(X), expected)
    assert list(vote.classes_) == ["ham", "spam"]
    assert set(vote.predict(X)) <= {"ham", "spam"}


def test_ensembles_share_one_cache(tmp_path):
    backend, cache = KeywordBackend(), ResponseCache(tmp_path / "cache.sqlite")
    stack = StackingClassifier(_members(backend, cache),
                               final_estimator=LogisticRegression(), cv=2)
    stack.fit(X_TRAIN, Y_TRAIN)
    proba = stack.predict_proba(X_TRAIN + X)
    assert proba.shape == (len(X_TRAIN) + len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    scored = [t for call in backend.calls_ for t in call]
    # Every (prompt, text) pair was scored once, although the stack scores the
    # training texts in its cross-validation and again at predict time.
    assert len(scored) == len(set(scored)) == len(PROMPTS) * (len(X_TRAIN) + len(X))
    vote = VotingClassifier(_members(backend, cache), voting="soft")
    n_before = len(scored)
    vote.fit(X_TRAIN, Y_TRAIN).predict_proba(X)
    assert sum(len(c) for c in backend.calls_) == n_before  # all cache hits


def test_unfrozen_members_see_encoded_labels():
    # VotingClassifier and StackingClassifier fit their members on label-encoded
    # y (0, 1, ...): an unfrozen LLMClassifier would show the model "0" and "1".
    # Either fit members on the real labels and freeze them (see the example), or
    # give the words as a list in sorted-class order, which survives the encoding.
    vote = VotingClassifier([("a", LLMClassifier(backend=KeywordBackend()))],
                            voting="soft").fit(X_TRAIN, Y_TRAIN)
    assert list(vote.estimators_[0].classes_) == [0, 1]
    assert vote.estimators_[0].label_words_ == ["0", "1"]
    words = sorted(set(Y_TRAIN))
    member = LLMClassifier(PromptTemplate(DEFAULT_TEMPLATE, verbalizer=words),
                           backend=KeywordBackend())
    vote = VotingClassifier([("a", member)], voting="soft").fit(X_TRAIN, Y_TRAIN)
    assert vote.estimators_[0].label_words_ == words
    assert list(vote.classes_) == words
    stack = StackingClassifier([("a", member)], cv=2).fit(X_TRAIN, Y_TRAIN)
    assert stack.estimators_[0].label_words_ == words
    with pytest.raises(ValueError, match="lists 3 words but there are 2 classes"):
        LLMClassifier(PromptTemplate(DEFAULT_TEMPLATE, verbalizer=["a", "b", "c"]),
                      backend=KeywordBackend()).fit(X_TRAIN, Y_TRAIN)


def test_generation_strategy_members_clone_and_vote():
    members = [
        ("verbal", LLMClassifier(backend=ScriptedBackend(verbal_answer),
                                 strategy="verbalized")),
        ("votes", LLMClassifier(backend=ScriptedBackend(vote_answer),
                                strategy="consistency", random_state=0)),
    ]
    members = [(n, FrozenEstimator(clone(m).fit(X, Y))) for n, m in members]
    vote = VotingClassifier(members, voting="soft").fit(X, Y)
    proba = vote.predict_proba(X)
    np.testing.assert_allclose(proba[0], [(0.2 + 3 / 11) / 2, (0.8 + 8 / 11) / 2])


# -- the real embedded model -----------------------------------------------------------
def _real_backend():
    pytest.importorskip("llama_cpp")
    from sklearn_llmconf.backends import LlamaCppBackend, default_model_path

    try:
        default_model_path()
    except ImportError as exc:
        pytest.skip(str(exc))
    return LlamaCppBackend()


@pytest.mark.slow
def test_llamacpp_generate_is_seeded_and_coexists_with_prefix_reuse():
    from sklearn_llmconf.backends import Prompt

    backend = _real_backend()
    a = Prompt(("Text: hello, are you coming to lunch?\nIs this spam? Answer:",))
    b = Prompt(("Text: WIN a FREE prize now!\nIs this spam? Answer:",))
    labels = [" yes", " no"]
    before = backend.score_labels([a], labels).log_probs
    first = backend.generate([a], n_samples=3, temperature=0.8, max_tokens=6, seed=5)
    backend.score_labels([b], labels)
    again = backend.generate([a], n_samples=3, temperature=0.8, max_tokens=6, seed=5)
    assert first.texts == again.texts
    prefix = backend.generate([a], n_samples=2, temperature=0.8, max_tokens=6, seed=5)
    assert prefix.texts[0] == first.texts[0][:2]
    # Scoring after generation (which moved the KV cache) is unchanged.
    np.testing.assert_allclose(backend.score_labels([a], labels).log_probs, before,
                               atol=1e-4)
    # With the prompt cached (from `again`), each draw re-evaluates exactly 2
    # prompt tokens (a one-token batch would give history-dependent logits).
    assert prefix.usage.prompt_tokens == 2 * 2
    # Same samples after a state holding all of `a` but its last token.
    backend.score_labels([Prompt((a.text[:-1],))], labels)
    after_prefix = backend.generate([a], n_samples=3, temperature=0.8, max_tokens=6,
                                    seed=5)
    assert after_prefix.texts == first.texts
    greedy = backend.generate([a, b], n_samples=3, temperature=0.0, max_tokens=6)
    assert all(len(set(t)) == 1 and len(t) == 3 for t in greedy.texts)
    assert greedy.usage.calls == 2 and greedy.usage.completion_tokens > 0


@pytest.mark.slow
@pytest.mark.parametrize("strategy, spec", [
    ("verbalized", Verbalized(max_new_tokens=20)),
    ("consistency", SelfConsistency(n_samples=3, max_new_tokens=4)),
])
def test_real_model_strategies_give_valid_probabilities(strategy, spec):
    X_test, _, X_pool, y_pool = short_sms(12)
    # 4 demonstrations: the test is about the strategies, not the shots.
    clf = LLMClassifier(backend=_real_backend(), strategy=spec, n_shots=4,
                        on_error="warn", random_state=0, calibration=None)
    clf.fit(X_pool, y_pool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        proba = clf.predict_proba(X_test)
    assert proba.shape == (12, 2)
    assert np.isfinite(proba).all() and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.usage_.completion_tokens > 0
    # One greedy completion per text, or one seeded sample per text and draw.
    assert clf.usage_.calls == 12 * getattr(spec, "n_samples", 1)
    if strategy == "consistency":
        # Vote shares with n=3 and Laplace smoothing: (c + 1) / (m + 2), m <= 3.
        allowed = {(c + 1) / (m + 2) for m in range(1, 4) for c in range(m + 1)}
        assert all(min(abs(p - a) for a in allowed | {0.5}) < 1e-9
                   for p in proba[:, 1])


@pytest.mark.slow
def test_real_model_consistency_composes_with_calibrated_cv(tmp_path):
    from sklearn.calibration import CalibratedClassifierCV

    X_test, y_test, _, _ = short_sms(18, seed=1)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    base = LLMClassifier(backend=_real_backend(),
                         strategy=SelfConsistency(n_samples=2, max_new_tokens=4),
                         n_shots=4, on_error="warn", cache=cache,
                         random_state=0, calibration=None)
    cal = CalibratedClassifierCV(base, method="sigmoid", cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cal.fit(X_test[:15], y_test[:15])
        proba = cal.predict_proba(X_test[15:])
    assert proba.shape == (3, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert len(cal.calibrated_classifiers_) == 3
    # Every fold draws its own demonstrations from its training texts, so the
    # prompts differ per fold: 15 held-out texts plus 3 texts for each of the
    # three copies are at most 24 distinct prompts, each generated for once
    # (rows whose samples named no label are not cached, hence <=).
    demos = [tuple(c.estimator.demos_) for c in cal.calibrated_classifiers_]
    assert len(set(demos)) == 3
    assert len(cache) <= 15 + 3 * 3


@pytest.mark.slow
def test_real_model_soft_voting_over_three_prompts(tmp_path):
    # 8 texts: the claims (the mean of the members, one cache) hold for any n
    X_test, y_test, X_pool, y_pool = short_sms(8, seed=2)
    backend, cache = _real_backend(), ResponseCache(tmp_path / "cache.sqlite")
    members = [
        (f"p{i}", FrozenEstimator(LLMClassifier(p, backend=backend, cache=cache,
                                                n_shots=4, calibration=None)
                                  .fit(X_pool, y_pool)))
        for i, p in enumerate(PROMPTS)
    ]
    vote = VotingClassifier(members, voting="soft").fit(X_pool, y_pool)
    proba = vote.predict_proba(X_test)
    assert proba.shape == (8, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    expected = np.mean([m.predict_proba(X_test) for _, m in members], axis=0)
    np.testing.assert_allclose(proba, expected)  # second pass: from the cache
    assert len(cache) == 3 * 8
