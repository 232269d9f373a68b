"""``sklearn-llmconf`` command: evaluate an LLM classifier raw and calibrated."""

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
    if args.cache is None:
        # Without a cache file the calibrators would score every text again.
        with tempfile.TemporaryDirectory() as tmp:
            args.cache = os.path.join(tmp, "responses.sqlite")
            return evaluate(args)
    return evaluate(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
