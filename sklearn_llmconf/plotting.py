"""Reliability diagrams, following scikit-learn's Display API.

matplotlib is an optional dependency (``pip install "sklearn-llmconf[plot]"``);
it is imported only when a plot is drawn.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from sklearn_llmconf.metrics import expected_calibration_error, reliability_curve
from sklearn_llmconf.routing._display import RoutingDisplay
from sklearn_llmconf.utils._optional import check_matplotlib_support

__all__ = ["ReliabilityDisplay", "RoutingDisplay"]


class ReliabilityDisplay:
    """Top-label reliability diagram with a confidence histogram.

    For every confidence bin the diagram shows the accuracy (bars), the gap to
    the mean confidence of the bin (hatched bars), the accuracy-vs-confidence
    curve and the diagonal of perfect calibration; a histogram of the
    confidences is drawn below (or on a twin axis when ``ax`` is given). The
    legend reports the ECE. Works for binary and multiclass classifiers.

    Create it with :meth:`from_estimator` or :meth:`from_predictions`, which
    compute the curve with :func:`~sklearn_llmconf.metrics.reliability_curve`;
    all parameters are stored as attributes.

    Parameters
    ----------
    accuracy : ndarray of shape (n_bins,)
        Accuracy in each bin (NaN for empty bins).

    confidence : ndarray of shape (n_bins,)
        Mean confidence (largest predicted probability) in each bin (NaN for
        empty bins).

    counts : ndarray of shape (n_bins,)
        Number of samples in each bin.

    bin_edges : ndarray of shape (n_bins + 1,)
        Bin edges on the confidence axis.

    ece : float
        Top-label expected calibration error computed with the same bins.

    estimator_name : str, default=None
        Name shown in the legend.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the reliability diagram.

    hist_ax_ : matplotlib Axes or None
        Axes with the confidence histogram.

    figure_ : matplotlib Figure
        Figure containing the plot.

    line_ : matplotlib Line2D
        The accuracy-vs-confidence curve.

    bars_ : matplotlib BarContainer
        Accuracy bars.

    gap_bars_ : matplotlib BarContainer
        Bars spanning accuracy to mean confidence in each bin.

    See Also
    --------
    sklearn.calibration.CalibrationDisplay : reliability curve of the positive
        class of a binary classifier.
    sklearn_llmconf.metrics.reliability_curve : the binned values plotted.
    sklearn_llmconf.metrics.expected_calibration_error : the ECE in the legend.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_llmconf.plotting import ReliabilityDisplay
    >>> X, y = make_classification(n_classes=3, n_informative=4, random_state=0)
    >>> clf = LogisticRegression().fit(X, y)
    >>> disp = ReliabilityDisplay.from_estimator(clf, X, y, n_bins=10)
    >>> disp.counts.sum()
    np.int64(100)
    """

    def __init__(
        self, accuracy, confidence, counts, bin_edges, ece, *, estimator_name=None
    ):
        self.accuracy = accuracy
        self.confidence = confidence
        self.counts = counts
        self.bin_edges = bin_edges
        self.ece = ece
        self.estimator_name = estimator_name

    def plot(self, *, ax=None, name=None, ref_line=True, show_hist=True, **kwargs):
        """Plot the reliability diagram.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on. If None, a new figure with the diagram on top and
            the confidence histogram below is created. If given, the histogram
            is drawn on a twin axis of ``ax``.

        name : str, default=None
            Legend name; defaults to ``estimator_name``.

        ref_line : bool, default=True
            Draw the diagonal of perfect calibration.

        show_hist : bool, default=True
            Draw the histogram of confidences.

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for the curve.

        Returns
        -------
        display : ReliabilityDisplay
            The object, with the matplotlib artists stored as attributes.
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        self.hist_ax_ = None
        twin = ax is not None and show_hist
        if ax is None:
            if show_hist:
                fig, (ax, self.hist_ax_) = plt.subplots(
                    2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
                )
            else:
                fig, ax = plt.subplots()
        elif show_hist:
            self.hist_ax_ = ax.twinx()
        self.ax_, self.figure_ = ax, ax.figure

        name = self.estimator_name if name is None else name
        label = f"ECE = {self.ece:.3f}"
        if name is not None:
            label = f"{name} ({label})"

        edges = np.asarray(self.bin_edges)
        width = np.diff(edges)
        filled = np.asarray(self.counts) > 0
        acc = np.where(filled, self.accuracy, 0.0)
        conf = np.where(filled, self.confidence, 0.0)
        self.bars_ = ax.bar(
            edges[:-1][filled],
            acc[filled],
            width=width[filled],
            align="edge",
            edgecolor="black",
            alpha=0.6,
            label="Accuracy",
        )
        # the gap bars span from the accuracy to the mean confidence
        self.gap_bars_ = ax.bar(
            edges[:-1][filled],
            (conf - acc)[filled],
            bottom=acc[filled],
            width=width[filled],
            align="edge",
            color="tab:red",
            alpha=0.3,
            hatch="//",
            edgecolor="tab:red",
            label="Gap",
        )
        if ref_line:
            ax.plot([0, 1], [0, 1], "k:", label="Perfectly calibrated")
        line_kwargs = {"marker": "o", "linestyle": "-", "label": label}
        line_kwargs.update(kwargs)
        (self.line_,) = ax.plot(conf[filled], acc[filled], **line_kwargs)
        ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="Accuracy")
        ax.legend(loc="upper left")

        if self.hist_ax_ is not None:
            frac = np.asarray(self.counts) / max(np.sum(self.counts), 1)
            self.hist_ax_.bar(
                edges[:-1], frac, width=width, align="edge", color="gray", alpha=0.4
            )
            if twin:
                # keep the histogram in the bottom quarter of the diagram
                top = max(frac.max(), 1e-12)
                self.hist_ax_.set_ylim(0, 4 * top)
                # Ticks only where the bars are, not up to the stretched limit.
                self.hist_ax_.set_yticks(np.linspace(0, top, 3))
                self.hist_ax_.yaxis.set_major_formatter("{x:.2f}")
                self.hist_ax_.set_ylabel("Fraction of samples")
                ax.set_xlabel("Confidence")
            else:
                self.hist_ax_.set(ylabel="Fraction", xlabel="Confidence")
        else:
            ax.set_xlabel("Confidence")
        return self

    @classmethod
    def from_predictions(
        cls,
        y_true,
        y_prob,
        *,
        labels=None,
        n_bins=15,
        strategy="uniform",
        name=None,
        ax=None,
        ref_line=True,
        show_hist=True,
        **kwargs,
    ):
        """Plot a reliability diagram from labels and predicted probabilities.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            True labels.

        y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
            Predicted probabilities (1-D: probability of the greater label),
            as in :func:`~sklearn_llmconf.metrics.expected_calibration_error`.

        labels : array-like of shape (n_classes,), default=None
            All class labels; if None, ``np.unique(y_true)``.

        n_bins : int, default=15
            Number of confidence bins.

        strategy : {"uniform", "quantile"}, default="uniform"
            Equal-width bins, or bins with equal numbers of samples.

        name : str, default=None
            Legend name.

        ax : matplotlib Axes, default=None
            Axes to draw on; see :meth:`plot`.

        ref_line : bool, default=True
            Draw the diagonal of perfect calibration.

        show_hist : bool, default=True
            Draw the histogram of confidences.

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for the curve.

        Returns
        -------
        display : ReliabilityDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_predictions")
        accuracy, confidence, counts, edges = reliability_curve(
            y_true, y_prob, labels=labels, n_bins=n_bins, strategy=strategy
        )
        ece = expected_calibration_error(
            y_true, y_prob, labels=labels, n_bins=n_bins, strategy=strategy
        )
        disp = cls(accuracy, confidence, counts, edges, ece, estimator_name=name)
        return disp.plot(ax=ax, ref_line=ref_line, show_hist=show_hist, **kwargs)

    @classmethod
    def from_multilabel_predictions(
        cls,
        y_true,
        y_prob,
        *,
        labels=None,
        n_bins=15,
        strategy="uniform",
        axes=None,
        show_hist=True,
        **kwargs,
    ):
        """One reliability diagram per label, for several labels per text.

        Each label is a binary problem (its probability against its 0/1
        column), drawn with :meth:`from_predictions` on an axes of its own.

        Parameters
        ----------
        y_true : array-like of shape (n_samples, n_labels)
            0/1 indicator matrix (a DataFrame's column names name the labels).
        y_prob : array-like of shape (n_samples, n_labels)
            Probability of each label (``predict_proba`` of a multi-label
            classifier).
        labels : array-like of shape (n_labels,), default=None
            Names shown in the legends; None: a DataFrame's columns, else
            0..k-1.
        n_bins, strategy, show_hist, **kwargs
            As in :meth:`from_predictions`.
        axes : sequence of matplotlib Axes, default=None
            One per label; None makes a figure with one row of axes.

        Returns
        -------
        displays : list of ReliabilityDisplay
            One per label, in column order.
        """
        check_matplotlib_support(f"{cls.__name__}.from_multilabel_predictions")
        import matplotlib.pyplot as plt

        if labels is None and hasattr(y_true, "columns"):
            labels = [str(c) for c in y_true.columns]
        Y = np.asarray(y_true.to_numpy() if hasattr(y_true, "to_numpy") else y_true)
        P = np.asarray(y_prob, dtype=float)
        if Y.ndim != 2 or Y.shape != P.shape:
            raise ValueError(f"y_true {Y.shape} and y_prob {P.shape} must be 2-D "
                             "and of the same shape.")
        k = Y.shape[1]
        labels = list(range(k)) if labels is None else list(labels)
        if axes is None:
            _, axes = plt.subplots(1, k, figsize=(4 * k, 4), squeeze=False)
            axes = axes[0]
        if len(axes) != k:
            raise ValueError(f"axes has {len(axes)} axes for {k} labels.")
        return [
            cls.from_predictions(Y[:, j], P[:, j], labels=[0, 1], n_bins=n_bins,
                                 strategy=strategy, name=str(labels[j]),
                                 ax=axes[j], show_hist=show_hist, **kwargs)
            for j in range(k)
        ]

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        n_bins=15,
        strategy="uniform",
        name=None,
        ax=None,
        ref_line=True,
        show_hist=True,
        **kwargs,
    ):
        """Plot a reliability diagram of a fitted classifier on data.

        Parameters
        ----------
        estimator : estimator instance
            Fitted classifier with ``predict_proba`` and ``classes_``.

        X : array-like of shape (n_samples, n_features) or list of str
            Input accepted by the estimator.

        y : array-like of shape (n_samples,)
            True labels.

        n_bins : int, default=15
            Number of confidence bins.

        strategy : {"uniform", "quantile"}, default="uniform"
            Equal-width bins, or bins with equal numbers of samples.

        name : str, default=None
            Legend name; defaults to the estimator's class name.

        ax : matplotlib Axes, default=None
            Axes to draw on; see :meth:`plot`.

        ref_line : bool, default=True
            Draw the diagonal of perfect calibration.

        show_hist : bool, default=True
            Draw the histogram of confidences.

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for the curve.

        Returns
        -------
        display : ReliabilityDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        check_is_fitted(estimator)
        if not hasattr(estimator, "predict_proba"):
            raise ValueError(
                f"{type(estimator).__name__} has no predict_proba; a reliability "
                "diagram needs predicted probabilities."
            )
        y_prob = estimator.predict_proba(X)
        name = type(estimator).__name__ if name is None else name
        return cls.from_predictions(
            y,
            y_prob,
            labels=estimator.classes_,
            n_bins=n_bins,
            strategy=strategy,
            name=name,
            ax=ax,
            ref_line=ref_line,
            show_hist=show_hist,
            **kwargs,
        )
