"""RoutingDisplay: precision and share accepted against the confidence threshold."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..utils._optional import check_matplotlib_support
from ._stats import (
    accepted_counts,
    default_thresholds,
    ltt_threshold,
    precision_lower_bound,
)

__all__ = ["RoutingDisplay"]


class RoutingDisplay:
    """Precision of the accepted predictions and share accepted, per threshold.

    The precision curve comes with its pointwise one-sided Clopper-Pearson
    lower bound (shaded); horizontal lines mark the tier targets, vertical ones
    the chosen thresholds, and the region at or above each certified threshold
    is shaded. Create it with :meth:`from_estimator` or
    :meth:`from_predictions`; the parameters are stored as attributes.

    Parameters
    ----------
    thresholds : ndarray of shape (n_thresholds,)
        Confidence thresholds, decreasing.

    precision : ndarray of shape (n_thresholds,)
        Precision of the predictions at or above each threshold (NaN when none).

    precision_lower : ndarray of shape (n_thresholds,)
        Its one-sided lower confidence bound.

    share : ndarray of shape (n_thresholds,)
        Share of rows at or above each threshold.

    targets : ndarray of shape (n_tiers,)
        Target precision of each tier.

    chosen_thresholds : ndarray of shape (n_tiers,)
        Threshold of each tier (``inf``: the tier accepts nothing).

    tier_names : list of str
        Tier names, same order as ``targets``.

    estimator_name : str, default=None
        Name shown in the title.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    precision_line_ : matplotlib Line2D
    share_line_ : matplotlib Line2D

    See Also
    --------
    sklearn_llmconf.routing.ConfidenceRouter : certifies the thresholds.
    sklearn.calibration.CalibrationDisplay : the Display API this follows.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_llmconf.plotting import RoutingDisplay
    >>> rng = np.random.default_rng(0)
    >>> q = rng.uniform(0.5, 1, size=2000)
    >>> y = (rng.uniform(size=2000) < q).astype(int)
    >>> disp = RoutingDisplay.from_predictions(
    ...     y, np.column_stack([1 - q, q]), tiers=[("accept", 0.9)])
    >>> disp.share[-1]
    np.float64(1.0)
    """

    def __init__(self, thresholds, precision, precision_lower, share, targets,
                 chosen_thresholds, tier_names, *, estimator_name=None):
        self.thresholds = thresholds
        self.precision = precision
        self.precision_lower = precision_lower
        self.share = share
        self.targets = targets
        self.chosen_thresholds = chosen_thresholds
        self.tier_names = tier_names
        self.estimator_name = estimator_name

    def plot(self, *, ax=None, name=None):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure if None.
        name : str, default=None
            Title; defaults to ``estimator_name``.

        Returns
        -------
        display : RoutingDisplay
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        t = self.thresholds
        (self.precision_line_,) = ax.plot(t, self.precision, color="C0",
                                          label="precision of accepted")
        ax.fill_between(t, self.precision_lower, self.precision, color="C0",
                        alpha=0.2, lw=0, label="lower confidence bound")
        (self.share_line_,) = ax.plot(t, self.share, "--", color="C1",
                                      label="share accepted")
        for i, (name_i, target, thr) in enumerate(
            zip(self.tier_names, self.targets, self.chosen_thresholds)
        ):
            color = f"C{i + 2}"
            ax.axhline(target, color=color, lw=0.8, ls=":")
            if np.isfinite(thr):
                ax.axvline(thr, color=color, lw=1.2,
                           label=f"{name_i}: precision >= {target:g} at >= {thr:.4g}")
                ax.axvspan(thr, 1.0, color=color, alpha=0.08)
            else:
                ax.plot([], [], color=color,
                        label=f"{name_i}: {target:g} not certified")
        ax.set(xlabel="confidence threshold", ylabel="precision / share",
               xlim=(t.min(), 1.0), ylim=(0, 1.02))
        title = name if name is not None else self.estimator_name
        if title:
            ax.set_title(title)
        ax.legend(loc="lower left", fontsize="small")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_predictions(cls, y_true, y_prob, *, tiers=(("accept", 0.99),
                         ("review", 0.90)), delta=0.05, labels=None,
                         thresholds=None, chosen_thresholds=None, name=None,
                         ax=None):
        """Plot the routing curves from labels and predicted probabilities.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
        y_prob : array-like of shape (n_samples, n_classes)
            Rows with a NaN are failed rows: counted, never accepted.
        tiers : sequence of (str, float), default=(("accept", 0.99), ("review", 0.90))
        delta : float, default=0.05
            Split over the tiers (Bonferroni) as in
            :class:`~sklearn_llmconf.routing.ConfidenceRouter`; also the level
            of the shaded lower bounds.
        labels : array-like of shape (n_classes,), default=None
            Class of each column; ``np.unique(y_true)`` if None.
        thresholds : array-like, default=None
            Thresholds on the curve; the router's default grid if None.
        chosen_thresholds : array-like of shape (n_tiers,), default=None
            Thresholds to mark (e.g. a fitted router's, on test data); if None
            they are certified on these rows.
        name : str, default=None
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : RoutingDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_predictions")
        y_true = np.asarray(y_true)
        proba = np.asarray(y_prob, dtype=float)
        labels = np.unique(y_true) if labels is None else np.asarray(labels)
        ok = np.isfinite(proba).all(axis=1)
        pred = np.argmax(np.where(ok[:, None], proba, 0.0), axis=1)
        conf = np.where(ok, proba[np.arange(len(pred)), pred], -np.inf)
        correct = ok & (labels[pred] == y_true)
        grid = (default_thresholds() if thresholds is None
                else np.sort(np.asarray(thresholds, dtype=float))[::-1])
        n_acc, n_err = accepted_counts(conf, correct, grid)
        d = delta / len(tiers)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(n_acc > 0, (n_acc - n_err) / n_acc, np.nan)
        lower = precision_lower_bound(n_acc - n_err, n_acc, 1.0 - d)
        targets = np.array([float(t) for _, t in tiers])
        if chosen_thresholds is None:
            chosen_thresholds = [ltt_threshold(conf[ok], correct[ok], t, d, grid)
                                 for t in targets]
        disp = cls(grid, precision, lower, n_acc / max(len(y_true), 1), targets,
                   np.asarray(chosen_thresholds, dtype=float),
                   [str(n) for n, _ in tiers], estimator_name=name)
        return disp.plot(ax=ax)

    @classmethod
    def from_estimator(cls, estimator, X, y, *, tiers=(("accept", 0.99),
                       ("review", 0.90)), delta=0.05, name=None, ax=None):
        """Plot the routing curves of a classifier or a fitted router on data.

        Parameters
        ----------
        estimator : estimator instance
            A fitted :class:`~sklearn_llmconf.routing.ConfidenceRouter` (its
            tiers, delta, grid and thresholds are marked: pass held-out rows to
            see how they hold) or any fitted classifier with ``predict_proba``
            (the thresholds are then certified on ``X, y``).
        X : array-like or list of str
        y : array-like of shape (n_samples,)
        tiers : sequence of (str, float), default=(("accept", 0.99), ("review", 0.90))
            Ignored for a router.
        delta : float, default=0.05
            Ignored for a router.
        name : str, default=None
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : RoutingDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        check_is_fitted(estimator)
        chosen, thresholds = None, None
        if hasattr(estimator, "thresholds_") and hasattr(estimator, "targets_"):
            if np.ndim(estimator.thresholds_) != 1:
                raise ValueError("RoutingDisplay shows global thresholds; this "
                                 "router has per-class thresholds.")
            tiers = list(zip(estimator.tier_names_[:-1], estimator.targets_))
            delta, chosen = estimator.delta, estimator.thresholds_
            thresholds = estimator.thresholds
        name = type(estimator).__name__ if name is None else name
        return cls.from_predictions(
            y, estimator.predict_proba(X), tiers=tiers, delta=delta,
            labels=estimator.classes_, thresholds=thresholds,
            chosen_thresholds=chosen, name=name, ax=ax,
        )
