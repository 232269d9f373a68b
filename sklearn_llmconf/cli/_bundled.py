"""``evaluate`` and ``route`` on the bundled data sets: an LLM classifier raw
and calibrated, or its predictions routed to tiers at a certified precision."""

from __future__ import annotations

import math
import sys
import time

from ._args import fraction, non_negative_int, parse_tiers, positive_int

__all__ = ["add_evaluate", "add_route", "evaluate", "route"]


def _dataset_names() -> list[str]:
    """Names of the bundled data sets: the ``load_*`` functions of ``datasets``."""
    from .. import datasets

    return [name.removeprefix("load_") for name in datasets.__all__]


def _string_options(param) -> list[str]:
    """The string values ``LLMClassifier`` accepts for ``param``, read from its
    parameter constraints so the command cannot drift from the estimator."""
    from .._classifier import LLMClassifier
    from ..utils._sklearn_compat import StrOptions

    (options,) = [
        c.options
        for c in LLMClassifier._parameter_constraints[param]
        if isinstance(c, StrOptions)
    ]
    return sorted(options)


def _split(X, y, n_train, n_test, seed):
    """Disjoint stratified labelled / test parts of sizes as asked."""
    from sklearn.model_selection import train_test_split

    if n_train + n_test > len(y):
        raise SystemExit(
            f"error: asked for {n_train + n_test} texts (labelled {n_train} + "
            f"test {n_test}) but the data set has {len(y)}."
        )
    try:
        X_rest, X_test, y_rest, y_test = train_test_split(
            X, y, test_size=n_test, stratify=y, random_state=seed
        )
        if n_train < len(y_rest):
            X_rest, _, y_rest, _ = train_test_split(
                X_rest, y_rest, train_size=n_train, stratify=y_rest,
                random_state=seed
            )
    except ValueError as exc:  # fewer texts than classes in a part
        raise SystemExit(f"error: cannot split {n_train} + {n_test} texts "
                         f"stratified by class: {exc}") from None
    return (X_rest, y_rest), (X_test, y_test)


def _format_table(rows, columns):
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(columns, widths)))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                             for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def evaluate(args) -> int:
    """Fit the default and the raw classifier, calibrate, print the metrics table.

    Both classifiers share the demonstrations (same labelled texts, same seed),
    so every prompt is scored once: the default's in-fit calibration scores
    the labelled texts that are not demonstrations (at most ``--n-calib``), and
    the explicit calibrators are fitted on exactly those texts and labels.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from .. import datasets
    from .._classifier import LLMClassifier
    from ..calibration import InFitCalibration
    from ..calibration._scaler import TemperatureScaler
    from ..metrics import calibration_report

    X, y = getattr(datasets, f"load_{args.dataset}")(return_X_y=True)
    (X_tr, y_tr), (X_te, y_te) = _split(X, y, args.n_train, args.n_test, args.seed)
    params = dict(n_shots=args.n_shots, demo_selection=args.demo_selection,
                  cache=args.cache, progress=not args.quiet,
                  random_state=args.seed)
    start = time.perf_counter()
    clf = LLMClassifier(calibration=InFitCalibration(max_samples=args.n_calib),
                        **params)
    clf.fit(X_tr, y_tr)
    fit_calls = clf.usage_.calls
    cal = clf.calibration_indices_
    print(
        f"{args.dataset}: {len(X_tr)} labelled texts ({args.n_shots}-shot "
        f"'{args.demo_selection}' prompts; {len(cal)} of them calibrate the "
        f"default), {len(X_te)} test texts, embedded model.",
        file=sys.stderr,
    )
    scores = {"default (in-fit calibration)": clf.predict_proba(X_te)}
    raw = LLMClassifier(calibration=None, **params).fit(X_tr, y_tr)
    scores["raw (calibration=None)"] = raw.predict_proba(X_te)
    frozen = FrozenEstimator(raw)
    calibrators = {
        "raw + TemperatureScaler": TemperatureScaler(frozen),
        "raw + TemperatureScaler(bias)": TemperatureScaler(frozen, bias=True),
        "raw + sklearn sigmoid": CalibratedClassifierCV(frozen, method="sigmoid"),
    }
    for name, calibrator in calibrators.items():
        calibrator.fit(X_tr[cal], y_tr[cal])
        scores[name] = calibrator.predict_proba(X_te)
    kept_note = ""
    if args.candidates:
        kept, kept_calls = _service_model(X_tr, y_tr, params)
        scores[f"service: kept {kept.best_name_} (fit --classifier auto)"] = (
            kept.predict_proba(X_te))
        kept_note = (
            " The service's model: candidates compared by 3-fold log loss on "
            "the labelled texts (" + ", ".join(
                f"{n} {r['log_loss']:.3f}" for n, r in kept.cv_results_.items())
            + f"), {kept_calls} more model calls.")
    seconds = time.perf_counter() - start

    rows = []
    for name, p in scores.items():
        r = calibration_report(y_te, p, labels=clf.classes_, n_bins=15,
                               n_bootstrap=args.n_bootstrap, random_state=args.seed)
        rows.append([
            name,
            f"{r['accuracy']:.3f}",
            f"{r['log_loss']:.3f}",
            f"{r['brier']:.3f}",
            f"{100 * r['ece']:.1f}",
            f"{100 * r['ece_debiased']:.1f} [{100 * r['ece_ci_low']:.1f}, "
            f"{100 * r['ece_ci_high']:.1f}]",
        ])
    print(_format_table(rows, ["probabilities", "accuracy", "log loss", "Brier",
                               "ECE %", "debiased ECE % [95% CI]"]))
    calls = clf.usage_.calls + raw.usage_.calls
    print(
        f"\nn_test={len(X_te)}, 15 equal-width bins. fit of the default: "
        f"{fit_calls} model calls (its calibration texts). In all: {calls} model "
        f"calls, {clf.usage_.cache_hits + raw.usage_.cache_hits} cache hits, "
        f"{seconds:.0f} s.{kept_note}"
    )
    return 0


def _service_model(X, y, params):
    """What ``sklearn-llmconf fit --classifier auto`` keeps, fitted on (X, y),
    and the prompts it had scored beyond the default's (the fold models are
    dropped after the comparison, so their calls are counted in the shared
    response cache: one new row per prompt scored)."""
    from .._classifier import LLMClassifier
    from ..cache import open_cache
    from ..hybrid import BestCandidateClassifier, service_candidates

    kept = BestCandidateClassifier(
        service_candidates(LLMClassifier(**{**params, "progress": False})), cv=3)
    with open_cache(params["cache"]) as cache:  # a file, or a PostgreSQL URL
        before = len(cache)
        kept.fit(X, y)
        return kept, len(cache) - before


def route(args) -> int:
    """Calibrate, certify tier thresholds, print shares and bounds on a test split."""
    import warnings

    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import train_test_split

    from .. import datasets
    from .._classifier import LLMClassifier
    from ..calibration import InFitCalibration
    from ..routing import ConfidenceRouter

    X, y = getattr(datasets, f"load_{args.dataset}")(return_X_y=True)
    (X_lab, y_lab), (X_te, y_te) = _split(
        X, y, args.n_train + args.n_calib, args.n_test, args.seed
    )
    try:
        X_tr, X_cal, y_tr, y_cal = train_test_split(
            X_lab, y_lab, test_size=args.n_calib, stratify=y_lab,
            random_state=args.seed
        )
    except ValueError as exc:
        raise SystemExit(f"error: cannot split --n-calib {args.n_calib} texts "
                         f"stratified by class: {exc}") from None
    # The default classifier calibrates itself in fit on up to n_scale of its
    # labelled texts; the router certifies on labels it has never seen.
    clf = LLMClassifier(
        n_shots=args.n_shots, demo_selection=args.demo_selection, cache=args.cache,
        progress=not args.quiet, random_state=args.seed,
        calibration=InFitCalibration(max_samples=args.n_scale),
    ).fit(X_tr, y_tr)
    print(
        f"{args.dataset}: in-fit calibration on at most {args.n_scale} texts, "
        f"thresholds certified on {len(X_cal)}, shares and precisions measured "
        f"on {len(X_te)} test texts; {clf.n_shots}-shot prompts.",
        file=sys.stderr,
    )
    clf.predict_proba(list(X_cal) + list(X_te))  # one scoring pass
    router = ConfidenceRouter(FrozenEstimator(clf), tiers=args.tiers,
                              delta=args.delta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        router.fit(X_cal, y_cal)
    report = router.routing_report(X_te, y_te)
    rows = []
    for t, name in enumerate(router.tier_names_):
        r = report[str(name)]
        if t < len(router.targets_):
            thr = router.thresholds_[t]
            rule = f">= {thr:.4f}" if math.isfinite(thr) else "not certified"
            target = f"{router.targets_[t]:.2f}"
            bound = (f"{router.precision_lower_bound_[t]:.3f}"
                     if math.isfinite(thr) else "-")
        else:
            rule, target, bound = "rest", "-", "-"
        rows.append([
            str(name), target, rule, bound, f"{r['share']:.3f}",
            f"{r['precision']:.3f}", f"{r['cumulative_precision']:.3f} "
            f"[{r['cumulative_precision_lower']:.3f}]",
        ])
    print(_format_table(rows, [
        "tier", "target", "confidence", "certified (cal)", "test share",
        "test precision", "at or above [95% lower]",
    ]))
    print(
        f"\ndelta={args.delta} split over {len(router.targets_)} tiers "
        f"({router.delta_per_test_:.3g} each); {router.n_calibration_} calibration "
        f"texts ({router.n_failed_calibration_} failed), n_test={len(X_te)}."
    )
    for w in caught:
        print(f"note: {w.message}")
    return 0


def add_evaluate(sub):
    """The ``evaluate`` sub-command's arguments."""
    ev = sub.add_parser("evaluate", help="held-out metrics, raw vs calibrated "
                        "(bundled data sets)")
    ev.add_argument("--dataset", choices=_dataset_names(), default="sms_spam")
    ev.add_argument("--n-train", type=positive_int, default=300,
                    help="labelled texts (demonstrations and calibration)")
    ev.add_argument("--n-calib", type=positive_int, default=200,
                    help="most labelled texts that calibrate (the default's "
                         "max_calibration_samples; the explicit calibrators "
                         "use the same texts)")
    ev.add_argument("--n-test", type=positive_int, default=300,
                    help="held-out texts")
    ev.add_argument("--n-shots", type=non_negative_int, default=None)
    ev.add_argument("--demo-selection", default=None,
                    choices=_string_options("demo_selection"))
    ev.add_argument("--cache", default=None,
                    help="SQLite response cache; a rerun then costs no model call")
    ev.add_argument("--n-bootstrap", type=positive_int, default=200)
    ev.add_argument("--no-candidates", dest="candidates", action="store_false",
                    help="leave out the model the decision service keeps "
                         "(its candidates cost about twice the default's calls)")
    ev.add_argument("--seed", type=non_negative_int, default=0)
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    return ev


def add_route(sub):
    """The ``route`` sub-command's arguments."""
    ro = sub.add_parser(
        "route", help="tiers at a certified precision: thresholds, shares, bounds "
        "(bundled data sets)")
    ro.add_argument("--dataset", choices=_dataset_names(), default="sms_spam")
    ro.add_argument("--n-train", type=positive_int, default=300,
                    help="labelled texts of the classifier (demonstrations and "
                         "in-fit calibration)")
    ro.add_argument("--n-scale", type=positive_int, default=150,
                    help="most labelled texts the in-fit calibration uses")
    ro.add_argument("--n-calib", type=positive_int, default=400,
                    help="labelled texts certifying the tier thresholds")
    ro.add_argument("--n-test", type=positive_int, default=300,
                    help="held-out texts")
    ro.add_argument("--tiers", type=parse_tiers,
                    default=[("accept", 0.99), ("review", 0.90)],
                    help="name=target precision, highest first "
                         "(default: accept=0.99,review=0.9)")
    ro.add_argument("--delta", type=fraction, default=0.05,
                    help="probability that some tier's guarantee fails")
    ro.add_argument("--n-shots", type=non_negative_int, default=None)
    ro.add_argument("--demo-selection", default=None,
                    choices=_string_options("demo_selection"))
    ro.add_argument("--cache", default=None,
                    help="SQLite response cache; a rerun then costs no model call")
    ro.add_argument("--seed", type=non_negative_int, default=0)
    ro.add_argument("--quiet", action="store_true", help="no progress bar")
    return ro
