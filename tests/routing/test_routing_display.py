"""RoutingDisplay: curves, marked thresholds, from a router or predictions."""

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")

from sklearn_llmconf.plotting import RoutingDisplay  # noqa: E402
from sklearn_llmconf.routing import ConfidenceRouter  # noqa: E402
from tests.routing.test_routing import _ProbaColumns  # noqa: E402


def _sample(n, seed):
    rng = np.random.default_rng(seed)
    q = 1.0 - rng.uniform(size=n) ** 3 / 2.0
    y = (rng.uniform(size=n) < q).astype(int)
    return np.column_stack([1.0 - q, q]), y


def test_from_predictions_curves_match_counts():
    proba, y = _sample(3000, 0)
    disp = RoutingDisplay.from_predictions(y, proba, tiers=[("accept", 0.95)],
                                           thresholds=[0.6, 0.8, 0.9])
    np.testing.assert_array_equal(disp.thresholds, [0.9, 0.8, 0.6])
    q = proba[:, 1]
    for i, t in enumerate(disp.thresholds):
        rows = q >= t
        assert disp.share[i] == pytest.approx(rows.mean())
        assert disp.precision[i] == pytest.approx(y[rows].mean())
        assert disp.precision_lower[i] < disp.precision[i]
    assert disp.chosen_thresholds.shape == (1,)
    assert disp.ax_.get_xlabel() == "confidence threshold"
    labels = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert any(lab.startswith("accept: precision >= 0.95 at >= ") for lab in labels)


def test_from_estimator_marks_a_fitted_routers_thresholds():
    proba, y = _sample(3000, 1)
    test_proba, test_y = _sample(1000, 2)
    frozen = FrozenEstimator(_ProbaColumns().fit(proba, y))
    router = ConfidenceRouter(frozen).fit(proba, y)
    disp = RoutingDisplay.from_estimator(router, test_proba, test_y)
    np.testing.assert_array_equal(disp.chosen_thresholds, router.thresholds_)
    assert disp.tier_names == ["accept", "review"]
    assert disp.estimator_name == "ConfidenceRouter"


def test_uncertified_tier_is_labelled_and_failed_rows_never_accepted():
    proba, y = _sample(50, 3)
    proba[:5] = np.nan
    disp = RoutingDisplay.from_predictions(y, proba, tiers=[("accept", 0.999)])
    assert not np.isfinite(disp.chosen_thresholds[0])
    assert disp.share.max() == pytest.approx(45 / 50)
    labels = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert "accept: 0.999 not certified" in labels
