"""Tests for ReliabilityDisplay (Agg backend)."""

import sys

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from sklearn_llmconf.metrics import expected_calibration_error, reliability_curve
from sklearn_llmconf.plotting import ReliabilityDisplay

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def fitted():
    X, y = make_classification(
        n_samples=400, n_classes=3, n_informative=4, random_state=0
    )
    return LogisticRegression().fit(X[:200], y[:200]), X[200:], y[200:]


def test_from_estimator_multiclass(fitted):
    clf, X, y = fitted
    disp = ReliabilityDisplay.from_estimator(clf, X, y, n_bins=10)
    proba = clf.predict_proba(X)
    assert disp.ece == pytest.approx(expected_calibration_error(y, proba, n_bins=10))
    assert disp.counts.sum() == len(y)
    # bins hold the top-label accuracy and mean confidence of their samples
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    b = int(np.argmax(disp.counts))
    in_bin = (conf > disp.bin_edges[b]) & (conf <= disp.bin_edges[b + 1])
    assert disp.accuracy[b] == pytest.approx(correct[in_bin].mean())
    assert disp.confidence[b] == pytest.approx(conf[in_bin].mean())
    assert np.isnan(disp.accuracy[disp.counts == 0]).all()
    # the display plots exactly what the public metric returns
    curve = reliability_curve(y, proba, labels=clf.classes_, n_bins=10)
    for got, expected in zip(
        (disp.accuracy, disp.confidence, disp.counts, disp.bin_edges), curve
    ):
        np.testing.assert_array_equal(got, expected)
    # artists and legend
    assert disp.hist_ax_ is not None and disp.figure_ is disp.ax_.figure
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert f"LogisticRegression (ECE = {disp.ece:.3f})" in legend
    assert "Perfectly calibrated" in legend
    assert len(disp.bars_) == np.count_nonzero(disp.counts)
    np.testing.assert_allclose(disp.line_.get_ydata(), disp.accuracy[disp.counts > 0])


def test_from_predictions_binary_on_given_ax_quantile():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    y = np.where(rng.uniform(size=500) < p, "pos", "neg")
    fig, ax = plt.subplots()
    disp = ReliabilityDisplay.from_predictions(
        y, p, n_bins=5, strategy="quantile", name="model", ax=ax, color="tab:green"
    )
    assert disp.ax_ is ax and disp.figure_ is fig
    assert disp.hist_ax_ is not None and disp.hist_ax_ is not ax  # twin axis
    # The bars fill the bottom quarter; the tick labels stop at the tallest bar.
    top = disp.counts.max() / disp.counts.sum()
    assert disp.hist_ax_.get_ylim()[1] == pytest.approx(4 * top)
    np.testing.assert_allclose(disp.hist_ax_.get_yticks(), [0, top / 2, top])
    assert disp.line_.get_color() == "tab:green"
    # quantile bins on the confidence hold about equal counts
    assert disp.counts.max() - disp.counts.min() <= 2
    assert disp.ece == pytest.approx(
        expected_calibration_error(y, p, n_bins=5, strategy="quantile")
    )


def test_plot_without_histogram_and_replot(fitted):
    clf, X, y = fitted
    disp = ReliabilityDisplay.from_estimator(clf, X, y, show_hist=False, name="lr")
    assert disp.hist_ax_ is None
    fig, ax = plt.subplots()
    disp.plot(ax=ax, name="again", ref_line=False, show_hist=False)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("again (ECE") for t in legend)
    assert "Perfectly calibrated" not in legend


def test_errors(fitted):
    clf, X, y = fitted
    with pytest.raises(ValueError, match="not fitted"):
        ReliabilityDisplay.from_estimator(LogisticRegression(), X, y)
    with pytest.raises(ValueError, match="sum to 1"):
        ReliabilityDisplay.from_predictions(y, np.full((len(y), 3), 0.5))


def test_missing_matplotlib_names_the_extra(monkeypatch):
    # None in sys.modules makes the import fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"sklearn-llmconf\[plot\]"):
        ReliabilityDisplay.from_predictions([0, 1], [0.2, 0.8])


def test_reliability_display_per_label():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklearn_llmconf.plotting import ReliabilityDisplay

    rng = np.random.RandomState(0)
    P = rng.random_sample((300, 3))
    Y = (rng.random_sample(P.shape) < P).astype(int)
    displays = ReliabilityDisplay.from_multilabel_predictions(
        Y, P, labels=["a", "b", "c"], n_bins=10)
    assert len(displays) == 3
    assert [d.estimator_name for d in displays] == ["a", "b", "c"]
    assert len({id(d.ax_) for d in displays}) == 3
    with pytest.raises(ValueError, match="axes has 1 axes for 3 labels"):
        ReliabilityDisplay.from_multilabel_predictions(Y, P, axes=[displays[0].ax_])
    plt.close("all")
