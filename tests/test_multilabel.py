"""LLMClassifier on several labels per text (an indicator matrix), KeywordBackend.

KeywordBackend scores ``"<word>: yes"`` by the count of ``word`` in the text
and ``"<word>: no"`` by nothing, so each label's log-odds grows with its word.
"""

import warnings

import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.multioutput import ClassifierChain, MultiOutputClassifier
from sklearn.utils.multiclass import type_of_target

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.calibration._multilabel import fit_label_calibration
from sklearn_llmconf.prompts._multilabel import answer_text, multilabel_demos
from sklearn_llmconf.scoring import LogProbs
from sklearn_llmconf.scoring._multilabel import label_log_odds
from sklearn_llmconf.testing import KeywordBackend

WORDS = ["sport", "money", "music"]


def _data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 3)) < [0.5, 0.3, 0.1]).astype(int)
    # a label's word is written when it applies, and sometimes when it does not
    noise = rng.random((n, 3)) < 0.15
    X = [" ".join([w for w, b in zip(WORDS, row | nz) if b] + [f"item {i}"])
         for i, (row, nz) in enumerate(zip(Y.astype(bool), noise))]
    return X, Y


def _clf(**params):
    params.setdefault("n_shots", 4)
    params.setdefault("random_state", 0)
    return LLMClassifier(backend=KeywordBackend(), **params)


def test_fit_indicator_matrix_predicts_indicator_matrix():
    X, Y = _data()
    clf = _clf().fit(X[:100], Y[:100], classes=WORDS)
    assert list(clf.classes_) == WORDS
    pred = clf.predict(X[100:])
    assert pred.shape == (60, 3) and pred.dtype == Y.dtype
    assert type_of_target(pred) == "multilabel-indicator"
    proba = clf.predict_proba(X[100:])
    assert proba.shape == (60, 3)
    assert ((proba > 0) & (proba < 1)).all()
    # independent probabilities: rows do not sum to 1
    assert not np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    np.testing.assert_allclose(expit(clf.decision_function(X[100:])), proba)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X[100:])), proba)
    assert clf.calibration_method_ == "per_label"
    assert clf.calibration_bias_.shape == (3,)
    # the words decide the labels here
    assert (pred == Y[100:]).mean() > 0.8


def test_dataframe_columns_become_classes():
    pd = pytest.importorskip("pandas")
    X, Y = _data()
    frame = pd.DataFrame(Y, columns=["b_sport", "a_money", "c_music"])
    clf = _clf(calibration=None).fit(X, frame)
    # column order, not sorted
    assert list(clf.classes_) == ["b_sport", "a_money", "c_music"]


def test_plain_array_without_names_uses_column_numbers():
    X, Y = _data()
    clf = _clf(calibration=None).fit(X, Y)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])


def test_demonstrations_show_label_sets_yes_no():
    X, Y = _data()
    clf = _clf(n_shots=3, calibration=None,
               strategy=LogProbs(multilabel="yes_no")).fit(X, Y, classes=WORDS)
    prompt = clf._render([("sport item x",)])[0].text
    assert prompt.startswith("Say for each label whether it applies to the text. "
                             "Labels: sport, money, music.")
    for _row, answer in clf.demos_:
        assert answer.splitlines()[0] in ("sport: yes", "sport: no")
        assert answer in prompt
    assert clf._scored_labels() == ["sport: yes", "sport: no", "money: yes",
                                    "money: no", "music: yes", "music: no"]


def test_label_vs_none_layout_is_the_default():
    X, Y = _data()
    clf = _clf().fit(X[:100], Y[:100], classes=WORDS)
    prompt = clf._render([("sport item x",)])[0].text
    assert prompt.startswith("List the labels that apply to the text, from: "
                             "sport, money, music; or none.")
    for _row, answer in clf.demos_:
        assert answer == "none" or set(answer.split(", ")) <= set(WORDS)
        assert f"Labels: {answer}" in prompt
    assert clf._scored_labels() == [" sport", " money", " music", " none"]
    assert clf.prompt_template_.template.endswith("Labels:")
    assert (clf.predict(X[100:]) == Y[100:]).mean() > 0.8


def test_one_backend_call_per_text_for_all_labels():
    X, Y = _data()
    backend = KeywordBackend()
    clf = LLMClassifier(backend=backend, n_shots=4, random_state=0,
                        calibration=None).fit(X[:100], Y[:100])
    clf.predict_proba(X[100:])
    assert clf.usage_.calls == 60
    assert sum(len(c) for c in backend.calls_) == 60


def test_single_label_target_is_unchanged():
    X, Y = _data()
    clf = _clf(calibration=None).fit(X, np.array(WORDS)[Y.argmax(axis=1)])
    assert clf.predict_proba(X[:5]).shape == (5, 3)
    np.testing.assert_allclose(clf.predict_proba(X[:5]).sum(axis=1), 1)


@pytest.mark.parametrize("design", ["label_vs_none", "yes_no"])
def test_both_layouts_learn_the_words(design):
    X, Y = _data()
    clf = _clf(strategy=LogProbs(multilabel=design)).fit(
        X[:100], Y[:100], classes=WORDS)
    assert (clf.predict(X[100:]) == Y[100:]).mean() > 0.8


@pytest.mark.parametrize("params, message", [
    (dict(strategy="verbalized"), "scored label by label with log-probabilities"),
    (dict(calibration="matrix"), "calibrated per label"),
    (dict(calibration="batch"), "calibrated per label"),
    (dict(demo_selection="similar"), "demo_selection='stratified' or 'random'"),
])
def test_multilabel_rejects_single_label_options(params, message):
    X, Y = _data()
    with pytest.raises(ValueError, match=message):
        _clf(**params).fit(X, Y)


def test_bad_indicator_matrices():
    X, Y = _data()
    with pytest.raises(ValueError, match="classes has 2 names but y has 3 columns"):
        _clf().fit(X, Y, classes=["a", "b"])
    with pytest.raises(ValueError, match="must be distinct"):
        _clf().fit(X, Y, classes=["a", "a", "b"])
    with pytest.raises(ValueError, match="X has 159 rows but y has 160"):
        _clf().fit(X[:-1], Y)


def test_on_error_warn_gives_half_probabilities():
    X, Y = _data()
    clf = LLMClassifier(backend=KeywordBackend(fail_on="BROKEN"), n_shots=4,
                        random_state=0, on_error="warn").fit(X, Y)
    with pytest.warns(UserWarning, match="uniform probabilities"):
        proba = clf.predict_proba(["sport BROKEN", "sport"])
    np.testing.assert_allclose(proba[0], 0.5)


def test_answer_text_and_log_odds():
    assert answer_text("yes_no", ["a", "b"], [0, 1]) == "a: no\nb: yes"
    assert answer_text("label_vs_none", ["a", "b"], [1, 1]) == "a, b"
    lp = np.log([[0.5, 0.25, 0.1, 0.4, 0.05]])
    np.testing.assert_allclose(label_log_odds("label_vs_none", lp, 4),
                               np.log([[10, 5, 2, 8]]))
    with pytest.raises(ValueError, match=r"Expected scores of shape \(n, 4\)"):
        label_log_odds("yes_no", lp, 2)


def test_stratified_demos_cover_every_label():
    rng = np.random.RandomState(0)
    Y = np.zeros((200, 4), dtype=int)
    Y[:150, 0] = 1
    Y[150:160, 1] = 1
    Y[160:163, 2] = 1  # a rare label
    idx = multilabel_demos(Y, 6, "stratified", rng)
    assert len(set(idx.tolist())) == 6
    assert Y[idx, :3].any(axis=0).all()
    # rows without a label are represented
    assert (~Y[idx].any(axis=1)).any()


def test_per_label_calibration_shrinks_rare_labels_toward_shared():
    rng = np.random.RandomState(0)
    n = 400
    s = rng.normal(size=(n, 3)) * 3
    # labels 0, 1: calibrated at slope 0.5; label 2 has 3 positives
    Y = (rng.random((n, 3)) < expit(0.5 * s)).astype(int)
    Y[:, 2] = 0
    Y[np.argsort(-s[:, 2])[:3], 2] = 1
    slope, bias, lam, n_used = fit_label_calibration(s, Y, shrinkage=10.0)
    assert n_used == n and lam == 10.0
    np.testing.assert_allclose(slope[:2], 0.5, atol=0.12)
    free, _, _, _ = fit_label_calibration(s, Y, shrinkage=1e-6)
    shared, _, _, _ = fit_label_calibration(s, Y, shrinkage=1e6)
    # with 3 positives the free slope runs away; shrinkage keeps it near the rest
    assert abs(slope[2] - slope[0]) < abs(free[2] - free[0])
    np.testing.assert_allclose(shared, shared[0], rtol=1e-3)


def test_too_few_calibration_rows_warn_and_keep_raw_scores():
    with pytest.warns(UserWarning, match="the raw log-odds are used"):
        slope, bias, lam, n = fit_label_calibration(np.ones((4, 2)),
                                                    np.ones((4, 2)))
    np.testing.assert_array_equal(slope, 1)
    assert lam is None and n == 4


def test_calibration_lowers_held_out_log_loss():
    from sklearn.metrics import log_loss
    X, Y = _data(400)
    raw = _clf(calibration=None).fit(X[:200], Y[:200], classes=WORDS)
    cal = _clf().fit(X[:200], Y[:200], classes=WORDS)
    P_raw, P_cal = raw.predict_proba(X[200:]), cal.predict_proba(X[200:])
    loss = [log_loss(Y[200:].ravel(), P.ravel()) for P in (P_raw, P_cal)]
    assert loss[1] < loss[0]


# -- composition with scikit-learn's multi-label tools -----------------------------
def test_multioutput_classifier_of_binary_llm_classifiers():
    X, Y = _data()
    labels = np.where(Y == 1, "yes", "no")
    clf = MultiOutputClassifier(_clf(calibration=None)).fit(X[:100], labels[:100])
    proba = clf.predict_proba(X[100:])
    assert len(proba) == 3 and proba[0].shape == (60, 2)
    assert clf.predict(X[100:]).shape == (60, 3)


def test_classifier_chain_on_the_label_log_odds():
    # ClassifierChain validates X as numbers (it appends earlier labels as
    # columns), so it cannot take texts; it composes on the LLM's log-odds.
    from sklearn.linear_model import LogisticRegression
    X, Y = _data(300)
    clf = _clf(calibration=None).fit(X[:100], Y[:100], classes=WORDS)
    Z = clf.decision_function(X[100:])
    chain = ClassifierChain(LogisticRegression(), order=[0, 1, 2],
                            random_state=0).fit(Z[:100], Y[100:200])
    assert chain.predict_proba(Z[100:]).shape == (100, 3)
    assert (chain.predict(Z[100:]) == Y[200:]).mean() > 0.85


def test_calibrated_classifier_cv_per_label():
    # one label of a fitted multi-label classifier as a binary problem
    from sklearn.base import BaseEstimator, ClassifierMixin

    X, Y = _data(300)
    clf = _clf(calibration=None).fit(X[:100], Y[:100], classes=WORDS)

    class Label(ClassifierMixin, BaseEstimator):
        def __init__(self, model=None, j=0):
            self.model, self.j = model, j

        def fit(self, X, y):
            self.classes_ = np.array([0, 1])
            return self

        def decision_function(self, X):
            return self.model.decision_function(X)[:, self.j]

        def predict(self, X):
            return (self.decision_function(X) > 0).astype(int)

    for j in range(2):  # the two labels with enough positives to calibrate on
        label = Label(clf, j).fit(X, Y[:, j])
        cal = CalibratedClassifierCV(FrozenEstimator(label), method="sigmoid")
        cal.fit(X[100:200], Y[100:200, j])
        p = cal.predict_proba(X[200:])[:, 1]
        assert p.shape == (100,)
        assert np.corrcoef(p, clf.predict_proba(X[200:])[:, j])[0, 1] > 0.9


def test_clone_and_pickle_keep_predictions():
    import pickle
    X, Y = _data()
    clf = _clf().fit(X[:100], Y[:100], classes=WORDS)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X[100:]),
                               clf.predict_proba(X[100:]))
    refit = clone(clf).fit(X[:100], Y[:100], classes=WORDS)
    np.testing.assert_allclose(refit.predict_proba(X[100:]),
                               clf.predict_proba(X[100:]))


def test_no_warning_on_clean_fit():
    X, Y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _clf().fit(X, Y)


def test_auto_strategy_without_logprobs_is_refused_for_multilabel():
    from sklearn_llmconf.backends import BackendCapabilities

    class NoLogprobs(KeywordBackend):
        def capabilities(self):
            return BackendCapabilities(logprobs=False)

        def _generate(self, prompts, **kwargs):  # pragma: no cover
            raise AssertionError

    X, Y = _data()
    with pytest.raises(ValueError, match="does not expose"):
        LLMClassifier(backend=NoLogprobs(), strategy="auto").fit(X, Y)
