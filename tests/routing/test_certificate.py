"""Certificates bound to what they certify: model, prompt, labels, fitted state."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from sklearn_llmconf import LLMClassifier, PromptTemplate, TemperatureScaler
from sklearn_llmconf.prompts import DEFAULT_TEMPLATE
from sklearn_llmconf.routing import ConfidenceRouter, UncertifiedWarning
from sklearn_llmconf.routing._certificate import certificate_of
from sklearn_llmconf.testing import KeywordBackend

# Keyword texts: "spam"/"ham" words decide the class, the rest varies the score.
WORDS = ["offer", "lunch", "friend", "prize", "today", "home", "call", "soon"]


def _texts(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.choice(["ham", "spam"], size=n)
    X = [f"{label} {' '.join(rng.choice(WORDS, size=3))} {i}"
         for i, label in enumerate(y)]
    return X, y


@pytest.fixture
def router():
    X, y = _texts(200, 0)
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0, calibration=None)
    clf.fit(X[:10], y[:10])
    return ConfidenceRouter(FrozenEstimator(clf), tiers=[("accept", 0.9)]).fit(X, y)


def test_fit_records_model_prompt_labels_and_data(router):
    cert = router.certificate_
    assert cert["model"] == [{"backend": "KeywordBackend", "fail_on": None,
                              "missing_on": None, "strength": 2.0}]
    assert cert["prompt"] == ["Classify each text as one of: ham, spam.\n\n"
                              "Text: {text}\nAnswer:"]
    assert cert["labels"]["classes"] == ["ham", "spam"]
    X, y = _texts(200, 0)
    X2, y2 = _texts(200, 1)
    assert len(cert["calibration_data"]) == 32
    other = ConfidenceRouter(router.estimator_, tiers=[("accept", 0.9)]).fit(X2, y2)
    assert other.certificate_["calibration_data"] != cert["calibration_data"]
    assert router.calibration_confidence_.shape == (router.n_calibration_,)


def test_unchanged_estimator_scores_certified_without_warning(router):
    X, _ = _texts(20, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = router.decide(X)
        router.predict(X), router.route(X), router.predict_proba(X)
    assert d.certified.all() and router.check_certificate() == []
    assert d.label.shape == d.tier.shape == d.confidence.shape == (20,)


def test_another_model_marks_the_output_uncertified(router):
    X, _ = _texts(20, 2)
    router.estimator_.backend.set_params(strength=3.0)  # "another model"
    assert router.check_certificate() == ["model"]
    with pytest.warns(UncertifiedWarning, match="model differ") as record:
        d = router.decide(X)
    assert record[0].filename == __file__  # points at the caller
    assert not d.certified.any()
    assert (d.tier == "accept").any()  # on_uncertified="warn" routes as usual


def test_another_prompt_or_label_set_is_detected(router):
    X, y = _texts(10, 3)
    clf = router.estimator_.estimator
    clf.set_params(prompt="Spam or ham? {text}\nIt is").fit(X, y)
    assert router.check_certificate() == ["prompt"]
    words = PromptTemplate(DEFAULT_TEMPLATE, verbalizer={"ham": "good", "spam": "bad"})
    clf.set_params(prompt=words).fit(X, y)
    assert "labels" in router.check_certificate()


def test_escalate_and_raise_policies(router):
    X, _ = _texts(20, 2)
    router.estimator_.backend.set_params(strength=3.0)
    router.set_params(on_uncertified="escalate")
    with pytest.warns(UncertifiedWarning):
        tiers = router.route(X)
    assert (tiers == "escalate").all()
    router.set_params(on_uncertified="raise")
    with pytest.raises(ValueError, match="Re-certify"):
        router.predict(X)


def test_recertify_on_fresh_labels_is_one_call(router):
    X, y = _texts(200, 4)
    router.estimator_.backend.set_params(strength=3.0)
    before = router.certificate_
    assert router.recertify(X, y) is router
    assert router.check_certificate() == []
    assert router.certificate_["model"][0]["strength"] == 3.0
    assert router.certificate_["calibration_data"] != before["calibration_data"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert router.decide(X[:5]).certified.all()


def test_wrappers_and_plain_estimators_are_covered():
    X, y = _texts(60, 5)
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=0, calibration=None)
    scaler = TemperatureScaler(FrozenEstimator(clf.fit(X[:10], y[:10])))
    scaler.fit(X[10:], y[10:])
    cert = certificate_of(scaler)
    assert cert["model"][0]["backend"] == "KeywordBackend"
    scaler.fit(X[10:30], y[10:30])  # another calibration: the state changes
    assert certificate_of(scaler)["state"] != cert["state"]
    assert certificate_of(scaler)["model"] == cert["model"]
    rng = np.random.default_rng(0)
    Z, t = rng.normal(size=(200, 3)), rng.integers(0, 2, size=200)
    lr = LogisticRegression().fit(Z, t)
    first = certificate_of(lr)
    assert first["model"] == [] and first == certificate_of(lr)
    lr.fit(Z[:100], t[:100])
    assert certificate_of(lr)["state"] != first["state"]


def test_checking_an_unchanged_estimator_hashes_nothing_again(monkeypatch):
    # The certificate is checked before every prediction: its fitted-state
    # hashes are computed at fit, and again only for values a refit replaced.
    from sklearn_llmconf.routing import _certificate

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(400, 3))
    t = (Z[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(int)
    lr = LogisticRegression().fit(Z[:200], t[:200])
    scaler = TemperatureScaler(FrozenEstimator(lr)).fit(Z[200:300], t[200:300])
    router = ConfidenceRouter(FrozenEstimator(scaler), tiers=[("accept", 0.6)])
    router.fit(Z[300:], t[300:])
    hashed = []
    real_hash = _certificate._leaf_hash
    monkeypatch.setattr(_certificate, "_leaf_hash",
                        lambda value: hashed.append(value) or real_hash(value))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            router.predict(Z[:5]), router.decide(Z[:5])
    assert hashed == []
    assert router.check_certificate() == []
    # a refit of the calibration: only the replaced values are hashed, and seen
    scaler.fit(Z[200:260], t[200:260])
    assert router.check_certificate() == ["state"]
    assert 0 < len(hashed) < 20
    # the memo gives the same certificate as hashing everything
    assert certificate_of(router.estimator_) == certificate_of(
        router.estimator_, router._state_hashes)
    restored = pickle.loads(pickle.dumps(router))
    assert "_state_hashes" not in router.__getstate__()
    assert restored.check_certificate() == ["state"]
