"""``sklearn-llmconf`` command: evaluate an LLM classifier raw and calibrated,
or route its predictions to tiers at a certified precision."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

__all__ = ["main"]


def _dataset_names() -> list[str]:
    """Names of the bundled data sets: the ``load_*`` functions of ``datasets``."""
    from . import datasets

    return [name.removeprefix("load_") for name in datasets.__all__]


def _string_options(param) -> list[str]:
    """The string values ``LLMClassifier`` accepts for ``param``, read from its
    parameter constraints so the command cannot drift from the estimator."""
    from ._classifier import LLMClassifier
    from ._sklearn_compat import StrOptions

    (options,) = [
        c.options
        for c in LLMClassifier._parameter_constraints[param]
        if isinstance(c, StrOptions)
    ]
    return sorted(options)


def _split(X, y, n_train, n_calib, n_test, seed):
    """Disjoint stratified train / calibration / test parts of sizes as asked."""
    from sklearn.model_selection import train_test_split

    need = n_train + n_calib + n_test
    if need > len(y):
        raise SystemExit(
            f"error: asked for {need} texts (train {n_train} + calibration "
            f"{n_calib} + test {n_test}) but the data set has {len(y)}."
        )
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=n_test, stratify=y, random_state=seed
    )
    X_rest, X_cal, y_rest, y_cal = train_test_split(
        X_rest, y_rest, test_size=n_calib, stratify=y_rest, random_state=seed
    )
    if n_train < len(y_rest):
        X_rest, _, y_rest, _ = train_test_split(
            X_rest, y_rest, train_size=n_train, stratify=y_rest, random_state=seed
        )
    return (X_rest, y_rest), (X_cal, y_cal), (X_test, y_test)


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
    """Score a held-out split, calibrate on another, print the metrics table."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from . import datasets
    from ._calibration import TemperatureScaler
    from ._classifier import LLMClassifier
    from .metrics import calibration_report

    X, y = getattr(datasets, f"load_{args.dataset}")(return_X_y=True)
    (X_tr, y_tr), (X_cal, y_cal), (X_te, y_te) = _split(
        X, y, args.n_train, args.n_calib, args.n_test, args.seed
    )
    clf = LLMClassifier(
        n_shots=args.n_shots,
        demo_selection=args.demo_selection,
        cache=args.cache,
        progress=not args.quiet,
        random_state=args.seed,
    ).fit(X_tr, y_tr)
    print(
        f"{args.dataset}: {len(X_tr)} demonstration candidates, {len(X_cal)} "
        f"calibration and {len(X_te)} test texts; {args.n_shots}-shot "
        f"'{args.demo_selection}' prompts, embedded model.",
        file=sys.stderr,
    )
    start = time.perf_counter()
    # One call scores both parts; the calibrators below get the same scores
    # back from the response cache.
    proba = clf.predict_proba(np.concatenate([X_cal, X_te]))
    seconds = time.perf_counter() - start
    scores = {"raw": proba[len(X_cal):]}

    frozen = FrozenEstimator(clf)
    calibrators = {
        "temperature": TemperatureScaler(frozen),
        "temperature + bias": TemperatureScaler(frozen, bias=True),
        "sklearn sigmoid": CalibratedClassifierCV(frozen, method="sigmoid"),
    }
    for name, calibrator in calibrators.items():
        calibrator.fit(X_cal, y_cal)
        scores[name] = calibrator.predict_proba(X_te)

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
    usage = clf.usage_
    print(
        f"\nn_test={len(X_te)}, 15 equal-width bins. Scoring: {usage.calls} model "
        f"calls, {usage.cache_hits} cache hits, {usage.prompt_tokens} prompt tokens "
        f"evaluated, {len(proba) / seconds:.1f} texts/s."
    )
    return 0


def _parse_tiers(text):
    """``"accept=0.99,review=0.9"`` -> ``[("accept", 0.99), ("review", 0.9)]``."""
    try:
        return [(name.strip(), float(target)) for name, target in
                (part.split("=") for part in text.split(","))]
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"tiers must read like accept=0.99,review=0.9; got {text!r}") from e


def route(args) -> int:
    """Calibrate, certify tier thresholds, print shares and bounds on a test split."""
    import warnings

    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import train_test_split

    from . import datasets
    from ._calibration import TemperatureScaler
    from ._classifier import LLMClassifier
    from .routing import ConfidenceRouter

    X, y = getattr(datasets, f"load_{args.dataset}")(return_X_y=True)
    (X_tr, y_tr), (X_cal, y_cal), (X_te, y_te) = _split(
        X, y, args.n_train, args.n_scale + args.n_calib, args.n_test, args.seed
    )
    X_sc, X_cal, y_sc, y_cal = train_test_split(
        X_cal, y_cal, train_size=args.n_scale, stratify=y_cal, random_state=args.seed
    )
    clf = LLMClassifier(
        n_shots=args.n_shots, demo_selection=args.demo_selection, cache=args.cache,
        progress=not args.quiet, random_state=args.seed,
    ).fit(X_tr, y_tr)
    print(
        f"{args.dataset}: temperature scaling on {len(X_sc)} texts, thresholds "
        f"certified on {len(X_cal)}, shares and precisions measured on "
        f"{len(X_te)} test texts; {args.n_shots}-shot prompts, embedded model.",
        file=sys.stderr,
    )
    clf.predict_proba(np.concatenate([X_sc, X_cal, X_te]))  # one scoring pass
    scaler = TemperatureScaler(FrozenEstimator(clf), bias=True).fit(X_sc, y_sc)
    router = ConfidenceRouter(FrozenEstimator(scaler), tiers=args.tiers,
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
            rule = f">= {thr:.4f}" if np.isfinite(thr) else "not certified"
            target = f"{router.targets_[t]:.2f}"
            bound = (f"{router.precision_lower_bound_[t]:.3f}"
                     if np.isfinite(thr) else "-")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sklearn-llmconf",
        description=(
            "Evaluate a language model as a calibrated classifier. With no "
            "arguments: the embedded model on SMS spam, raw vs calibrated."
        ),
    )
    sub = parser.add_subparsers(dest="command")
    ev = sub.add_parser("evaluate", help="held-out metrics, raw vs calibrated")
    ev.add_argument("--dataset", choices=_dataset_names(), default="sms_spam")
    ev.add_argument("--n-train", type=int, default=2000,
                    help="labelled texts demonstrations are drawn from")
    ev.add_argument("--n-calib", type=int, default=300,
                    help="labelled texts the calibrators are fitted on")
    ev.add_argument("--n-test", type=int, default=300, help="held-out texts")
    ev.add_argument("--n-shots", type=int, default=None)
    ev.add_argument("--demo-selection", default=None,
                    choices=_string_options("demo_selection"))
    ev.add_argument("--cache", default=None,
                    help="SQLite response cache; a rerun then costs no model call")
    ev.add_argument("--n-bootstrap", type=int, default=200)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ro = sub.add_parser(
        "route", help="tiers at a certified precision: thresholds, shares, bounds")
    ro.add_argument("--dataset", choices=_dataset_names(), default="sms_spam")
    ro.add_argument("--n-train", type=int, default=2000,
                    help="labelled texts demonstrations are drawn from")
    ro.add_argument("--n-scale", type=int, default=150,
                    help="labelled texts the temperature scaler is fitted on")
    ro.add_argument("--n-calib", type=int, default=400,
                    help="labelled texts certifying the tier thresholds")
    ro.add_argument("--n-test", type=int, default=300, help="held-out texts")
    ro.add_argument("--tiers", type=_parse_tiers,
                    default=[("accept", 0.99), ("review", 0.90)],
                    help="name=target precision, highest first "
                         "(default: accept=0.99,review=0.9)")
    ro.add_argument("--delta", type=float, default=0.05,
                    help="probability that some tier's guarantee fails")
    ro.add_argument("--n-shots", type=int, default=None)
    ro.add_argument("--demo-selection", default=None,
                    choices=_string_options("demo_selection"))
    ro.add_argument("--cache", default=None,
                    help="SQLite response cache; a rerun then costs no model call")
    ro.add_argument("--seed", type=int, default=0)
    ro.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    """Entry point of the ``sklearn-llmconf`` command."""
    from ._classifier import LLMClassifier

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["evaluate", *argv]
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    defaults = LLMClassifier().get_params()
    if args.n_shots is None:
        args.n_shots = defaults["n_shots"]
    if args.demo_selection is None:
        args.demo_selection = defaults["demo_selection"]
    run = route if args.command == "route" else evaluate
    if args.cache is None:
        # Without a cache file the calibrators would score every text again.
        with tempfile.TemporaryDirectory() as tmp:
            args.cache = os.path.join(tmp, "responses.sqlite")
            return run(args)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
