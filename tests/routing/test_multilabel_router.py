"""MultiLabelRouter: per-label certified thresholds, family-wise error over labels."""

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.routing import MultiLabelRouter
from sklearn_llmconf.routing._multilabel import (
    certify_label_thresholds,
    label_probabilities,
)
from sklearn_llmconf.testing import KeywordBackend

TARGET, RISK = 0.9, 0.1
# three labels of different prevalence and sharpness (Beta-distributed
# calibrated probabilities: y ~ Bernoulli(p))
BETAS = [(0.6, 0.6), (0.4, 1.2), (2.0, 2.0)]


def _true_precisions(pos, neg, big):
    """Exact-enough precision of each certified rule, from a large sample of p."""
    out = []
    for j, p in enumerate(big.T):
        if np.isfinite(pos[j]) and (p >= pos[j]).any():
            out.append(p[p >= pos[j]].mean())
        if np.isfinite(neg[j]) and (p <= neg[j]).any():
            out.append(1 - p[p <= neg[j]].mean())
    return np.array(out)


def test_misses_stay_within_the_risk_level_over_1000_runs():
    rng = np.random.RandomState(0)
    big = np.column_stack([rng.beta(a, b, 400_000) for a, b in BETAS])
    n_runs, n_cal = 1000, 300
    misses, certified = 0, 0
    for _ in range(n_runs):
        P = np.column_stack([rng.beta(a, b, n_cal) for a, b in BETAS])
        Y = (rng.random(P.shape) < P).astype(int)
        pos, neg = certify_label_thresholds(P, Y, TARGET, RISK)
        prec = _true_precisions(pos, neg, big)
        certified += len(prec)
        # a run misses when any certified rule of any label is below target
        misses += bool((prec < TARGET).any())
    # most runs certify rules: the test has power
    assert certified / n_runs > 1
    # binomial upper 99.9 % bound of 1000 draws at 10 %: 0.10 + 3.1 sd ~ 0.13
    assert misses / n_runs <= RISK + 3.1 * np.sqrt(RISK * (1 - RISK) / n_runs)


def test_without_bonferroni_the_family_would_miss_more():
    # the same rules tested at the full level per label miss more often:
    # the correction is what keeps the family-wise error down
    rng = np.random.RandomState(1)
    big = np.column_stack([rng.beta(a, b, 200_000) for a, b in BETAS])
    loose, tight = 0, 0
    for _ in range(300):
        P = np.column_stack([rng.beta(a, b, 300) for a, b in BETAS])
        Y = (rng.random(P.shape) < P).astype(int)
        for level, count in ((RISK * 2 * len(BETAS), "loose"), (RISK, "tight")):
            pos, neg = certify_label_thresholds(P, Y, TARGET, level)
            miss = bool((_true_precisions(pos, neg, big) < TARGET).any())
            if count == "loose":
                loose += miss
            else:
                tight += miss
    assert tight <= loose


def _texts(n, seed):
    rng = np.random.default_rng(seed)
    words = np.array(["sport", "money"])
    Y = (rng.random((n, 2)) < 0.4).astype(int)
    X = [" ".join(list(words[row.astype(bool)]) + [f"item{i}"])
         for i, row in enumerate(Y)]
    return X, Y


def test_router_over_llm_classifier_routes_and_decides():
    X, Y = _texts(400, 0)
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0).fit(
        X[:100], Y[:100], classes=["sport", "money"])
    router = MultiLabelRouter(FrozenEstimator(clf)).fit(X[100:300], Y[100:300])
    assert router.n_calibration_ == 200
    np.testing.assert_array_equal(router.classes_, ["sport", "money"])
    decided = router.decide(X[300:])
    assert decided.shape == (100, 2)
    assert set(np.unique(decided)) <= {-1, 0, 1}
    ok = decided != -1
    # the words decide the labels: most decisions are certified and right
    assert ok.mean() > 0.5
    assert (decided[ok] == Y[300:][ok]).mean() >= 0.9
    tiers = router.route(X[300:])
    np.testing.assert_array_equal(tiers == "accept", ok.all(axis=1))


def test_unfitted_estimator_is_fitted_on_half():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 2))
    Y = (X + rng.normal(scale=0.3, size=X.shape) > 0).astype(int)
    router = MultiLabelRouter(MultiOutputClassifier(LogisticRegression())).fit(X, Y)
    assert router.n_calibration_ == 300
    assert np.isfinite(router.thresholds_).all()
    assert router.predict_proba(X[:5]).shape == (5, 2)


def test_label_probabilities_shapes():
    lst = [np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([[0.9, 0.1], [0.3, 0.7]])]
    np.testing.assert_allclose(label_probabilities(lst), [[0.8, 0.1], [0.4, 0.7]])
    np.testing.assert_allclose(label_probabilities(np.stack(lst, axis=1)),
                               [[0.8, 0.1], [0.4, 0.7]])
    with pytest.raises(ValueError, match="shape \\(n, k\\)"):
        label_probabilities(np.ones(3))


def test_bad_targets():
    with pytest.raises(ValueError, match="0/1 indicator matrix"):
        MultiLabelRouter(MultiOutputClassifier(LogisticRegression())).fit(
            np.ones((4, 2)), np.array([0, 1, 0, 1]))


def test_interoperates_with_mapie_multilabel_controller():
    risk_control = pytest.importorskip("mapie.risk_control")
    X, Y = _texts(1600, 1)
    # MAPIE needs at least one label per text
    keep = Y.any(axis=1)
    X, Y = [x for x, k in zip(X, keep) if k][:900], Y[keep][:900]
    clf = LLMClassifier(backend=KeywordBackend(), n_shots=4, random_state=0).fit(
        X[:100], Y[:100], classes=["sport", "money"])
    # MAPIE's precision control (learn-then-test over one threshold shared by
    # the labels) reads the LLM's (n, k) probabilities as they are
    mapie = risk_control.MultiLabelClassificationController(
        predict_function=clf.predict_proba, risk="precision",
        target_level=TARGET, confidence_level=1 - RISK)
    mapie.calibrate(X[100:500], Y[100:500])
    sets = np.asarray(mapie.predict(X[500:]))
    sets = sets.reshape(len(X) - 500, 2, -1)[..., 0] if sets.ndim == 3 else sets
    assert sets.shape == (400, 2)
    # our router on the same calibration texts; each certifies >= 90 %
    # precision of the labels it predicts present
    router = MultiLabelRouter(FrozenEstimator(clf), target_precision=TARGET,
                              risk_level=RISK).fit(X[100:500], Y[100:500])
    ours = router.decide(X[500:]) == 1
    Yt = Y[500:].astype(bool)
    for predicted in (sets.astype(bool), ours):
        assert predicted.any()
        assert Yt[predicted].mean() >= TARGET
