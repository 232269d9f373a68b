"""Tests for sklearn_llmconf.metrics.reliability_curve."""

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.calibration import calibration_curve

from sklearn_llmconf.metrics import expected_calibration_error, reliability_curve
from sklearn_llmconf.utils._sklearn_compat import InvalidParameterError


@pytest.fixture
def three_class():
    rng = np.random.default_rng(0)
    proba = softmax(rng.normal(scale=2.0, size=(300, 3)), axis=1)
    y = np.array([rng.choice(3, p=p) for p in proba])
    return y, proba


def _ece_from_curve(accuracy, confidence, counts):
    filled = counts > 0
    gaps = np.abs(accuracy[filled] - confidence[filled])
    return float(np.dot(counts[filled] / counts.sum(), gaps))


def test_top_label_bins_by_brute_force(three_class):
    y, proba = three_class
    accuracy, confidence, counts, edges = reliability_curve(y, proba, n_bins=10)
    assert accuracy.shape == confidence.shape == counts.shape == (10,)
    np.testing.assert_allclose(edges, np.linspace(0, 1, 11))
    assert counts.dtype.kind == "i" and counts.sum() == len(y)
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    for b in range(10):
        lo, hi = edges[b], edges[b + 1]
        in_bin = (conf > lo) & (conf <= hi) if b > 0 else (conf <= hi)
        assert counts[b] == in_bin.sum()
        if in_bin.any():
            assert accuracy[b] == pytest.approx(correct[in_bin].mean())
            assert confidence[b] == pytest.approx(conf[in_bin].mean())
        else:
            assert np.isnan(accuracy[b]) and np.isnan(confidence[b])
    # confidences of 3 classes are >= 1/3: the first three bins are empty
    assert (counts[:3] == 0).all()


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("kind", ["top_label", "classwise"])
def test_ece_is_the_count_weighted_gap_of_the_curve(three_class, strategy, kind):
    y, proba = three_class
    curves = reliability_curve(y, proba, n_bins=8, strategy=strategy, kind=kind)
    expected = expected_calibration_error(
        y, proba, n_bins=8, strategy=strategy, kind=kind
    )
    if kind == "top_label":
        assert _ece_from_curve(*curves[:3]) == pytest.approx(expected, abs=1e-12)
    else:
        per_class = [_ece_from_curve(*(c[j] for c in curves[:3])) for j in range(3)]
        assert np.mean(per_class) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_classwise_curves_match_sklearn_calibration_curve(three_class, strategy):
    y, proba = three_class
    accuracy, confidence, counts, edges = reliability_curve(
        y, proba, n_bins=6, strategy=strategy, kind="classwise"
    )
    assert accuracy.shape == confidence.shape == counts.shape == (3, 6)
    assert edges.shape == (3, 7)
    assert (counts.sum(axis=1) == len(y)).all()
    for j in range(3):
        prob_true, prob_pred = calibration_curve(
            y == j, proba[:, j], n_bins=6, strategy=strategy
        )
        filled = counts[j] > 0
        np.testing.assert_allclose(accuracy[j][filled], prob_true)
        np.testing.assert_allclose(confidence[j][filled], prob_pred)
    if strategy == "quantile":
        np.testing.assert_allclose(
            edges[1], np.percentile(proba[:, 1], np.linspace(0, 100, 7))
        )


def test_binary_1d_input_equals_two_columns():
    y = np.array(["neg", "pos", "pos", "neg", "pos"])
    p = np.array([0.1, 0.8, 0.45, 0.7, 0.95])
    one_d = reliability_curve(y, p, n_bins=4)
    two_d = reliability_curve(y, np.column_stack([1 - p, p]), n_bins=4)
    for a, b in zip(one_d, two_d):
        np.testing.assert_array_equal(a, b)
    accuracy, confidence, counts, _ = one_d
    # confidences 0.9, 0.8, 0.55, 0.7, 0.95; the two in (0.5, 0.75] are wrong
    # (0.55 says "neg" for a "pos", 0.7 says "pos" for a "neg")
    np.testing.assert_array_equal(counts, [0, 0, 2, 3])
    np.testing.assert_allclose(accuracy[2:], [0.0, 1.0])
    np.testing.assert_allclose(
        confidence[2:], [(0.55 + 0.7) / 2, (0.9 + 0.8 + 0.95) / 3]
    )


def test_sample_weight_weights_the_means_not_the_counts():
    y = np.array([0, 1, 1, 1])
    p = np.array([0.8, 0.8, 0.9, 0.3])  # top-label confidences 0.8, 0.8, 0.9, 0.7
    accuracy, confidence, counts, _ = reliability_curve(
        y, p, n_bins=2, sample_weight=[1.0, 3.0, 1.0, 1.0]
    )
    np.testing.assert_array_equal(counts, [0, 4])
    # rows 1 (weight 3) and 2 are right; rows 0 and 3 are wrong
    assert accuracy[1] == pytest.approx(4 / 6)
    assert confidence[1] == pytest.approx((0.8 + 3 * 0.8 + 0.9 + 0.7) / 6)
    uniform = reliability_curve(y, p, n_bins=2, sample_weight=[2.0] * 4)
    plain = reliability_curve(y, p, n_bins=2)
    for a, b in zip(uniform, plain):
        np.testing.assert_allclose(a, b)


def test_errors():
    with pytest.raises(ValueError, match="0 sample"):
        reliability_curve([], np.empty((0, 2)), labels=[0, 1])
    with pytest.raises(InvalidParameterError, match="kind"):
        reliability_curve([0, 1], [0.2, 0.8], kind="per_class")
    with pytest.raises(InvalidParameterError, match="n_bins"):
        reliability_curve([0, 1], [0.2, 0.8], n_bins=0)
    with pytest.raises(ValueError, match="sum to 1"):
        reliability_curve([0, 1, 2], np.full((3, 3), 0.5))
