"""``fit --multilabel``, and ``predict`` / ``report`` on a multi-label model.

``fit`` turns the label sets into an indicator matrix
(:class:`~sklearn.preprocessing.MultiLabelBinarizer`, the labels sorted),
fits the calibrated multi-label :class:`~sklearn_llmconf.LLMClassifier` on
the training rows (every label scored from one prompt per text, a slope and
a bias per label) and certifies, on the certification rows, two thresholds
per label with :class:`~sklearn_llmconf.routing.MultiLabelRouter`: above the
first the label is decided present, below the second absent, each direction
right at least ``--target-precision`` of the time; ``--delta`` bounds the
probability that any of the ``2 k`` rules misses it (Bonferroni: each test at
``delta / (2 k)``). A row whose labels are all decided is in the ``accept``
tier, any other (or a row that could not be scored) in ``review``.

``predict`` writes, per row: ``id``; ``labels``, the labels decided present
(joined by the model's label separator); ``undecided``, the labels left to a
person; ``tier``; then ``proba_<label>`` (the calibrated probability) for
every label and ``decision_<label>`` (``1`` present, ``0`` absent, empty when
undecided or not scored) for every label; ``failure_reason`` last.
"""

from __future__ import annotations

import csv
import datetime
import sys
import warnings

import numpy as np

from ._common import (
    check_cache,
    check_output,
    data_source,
    default_cache,
    make_backend,
    open_table,
    prepare_classifiers,
    print_written,
    progress_bar,
    total_usage,
    versions,
)
from ._data import CLIError
from ._label_sets import join_labels, read_label_sets, split_label_sets

__all__ = ["CERTIFICATE_COLUMNS", "certificate_rows", "fit_multilabel",
           "measure_multilabel", "multilabel_sections", "predict_multilabel"]

SPLIT = ("certification: a seeded random --certify-fraction of the rows, unseen "
         "by the classifier (the rows of a label with one positive row, and one "
         "positive row of a label the rest would not train, go to training); "
         "the rest trains it: --n-shots demonstrations and up to --n-scale "
         "in-fit calibration rows")

CERTIFICATE_COLUMNS = ["label", "present if p >=", "absent if p <=",
                       "positives", "decided present", "decided absent"]

NOT_SCORED = "the backend could not score it (failed request or labels not observed)"


def _threshold(value, digits=4):
    return "never" if value is None else f"{value:.{digits}f}"


def _decided(P, Y, ok, present, absent):
    """Per label: (n decided present, errors), (n decided absent, errors)."""
    out = []
    for j in range(P.shape[1]):
        p, y = P[ok, j], Y[ok, j].astype(bool)
        pos = p >= (np.inf if present[j] is None else present[j])
        neg = p <= (-np.inf if absent[j] is None else absent[j])
        out.append(((int(pos.sum()), int((pos & ~y).sum())),
                    (int(neg.sum()), int((neg & y).sum()))))
    return out


def certificate_rows(description, proba=None, Y=None) -> list[list[str]]:
    """One row of strings per label: its thresholds and, with the
    certification rows, its positives and decisions there."""
    cert = description["certificate"]
    rows = []
    decided = None
    if proba is not None and len(proba):
        ok = np.isfinite(proba).all(axis=1)
        decided = _decided(proba, Y, ok, cert["present_thresholds"],
                           cert["absent_thresholds"])
    for j, label in enumerate(cert["labels"]):
        row = [label, _threshold(cert["present_thresholds"][j]),
               _threshold(cert["absent_thresholds"][j])]
        if decided is None:
            row += ["-", "-", "-"]
        else:
            (n_pos, e_pos), (n_neg, e_neg) = decided[j]
            row += [str(int(np.asarray(Y)[:, j].sum())),
                    f"{n_pos} ({e_pos} wrong)", f"{n_neg} ({e_neg} wrong)"]
        rows.append(row)
    return rows


def _guarantee(cert) -> str:
    return (f"target precision {cert['target_precision']:g} per label and "
            f"direction; delta={cert['risk_level']:g} over the "
            f"{2 * len(cert['labels'])} tests ({cert['risk_per_test']:.3g} each, "
            f"Bonferroni); {cert['n_calibration']} certification rows scored "
            f"({cert['n_failed_calibration']} failed).")


def fit_multilabel(args) -> int:
    """``fit --multilabel``: validate, fit, certify, print, save."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.preprocessing import MultiLabelBinarizer

    from .._classifier import LLMClassifier
    from .._persistence import calibration_hash, llm_classifiers, save_model
    from ..calibration import InFitCalibration
    from ..hybrid import service_candidates
    from ..prompts._multilabel import NONE_WORD
    from ..routing import MultiLabelRouter
    from ..scoring import predict_with_failures
    from ._bundled import _format_table
    from ._fit import (
        _masked,
        _sum_usage,
        _usage,
        as_X,
        check_columns,
        prompt_and_fields,
    )
    from ._label_sets import check_options

    check_options(args)
    check_columns(args.text_columns, args.label_column)
    cache = args.cache or default_cache(args.output)
    check_output(args.output, [("input data", args.data),
                               ("response cache", cache)])
    table = open_table(args.data, args.format, args.encoding)
    template, fields = prompt_and_fields(args.text_columns, args.prompt,
                                         multilabel=True)
    sep = args.label_set_separator
    values, sets = read_label_sets(
        table, [*args.text_columns, args.label_column], args.label_column, sep,
        args.allow_no_label)
    binarizer = MultiLabelBinarizer()
    Y = binarizer.fit_transform(sets).astype(np.int8)
    labels = [str(c) for c in binarizer.classes_]
    if len(labels) < 2:
        raise CLIError(
            f"the label column holds {len(labels)} label"
            f"{'' if len(labels) == 1 else 's'} ({', '.join(labels) or 'none'}) "
            f"split on {sep!r}; a multi-label model needs at least 2.")
    if NONE_WORD in labels:
        raise CLIError(f"the label {NONE_WORD!r} is the prompt's answer when no "
                       "label applies; rename it (or drop it and pass "
                       "--allow-no-label).")
    order = fields or args.text_columns
    pos = [args.text_columns.index(c) for c in order]
    rows = [tuple(r[i] for i in pos) for r in values]
    train, cert = split_label_sets(Y, args.certify_fraction, args.seed)
    backend = make_backend(args)
    check_cache(cache)
    llm = LLMClassifier(
        template, backend=backend, n_shots=args.n_shots,
        calibration=InFitCalibration(max_samples=args.n_scale), on_error="nan",
        cache=cache, progress=not args.quiet, random_state=args.seed)
    kinds = ("llm", "hybrid") if args.classifier == "auto" else (args.classifier,)
    candidates = service_candidates(llm, kinds=kinds, multilabel=True)
    X = as_X(rows, fields)
    X_tr, X_cert = [X[i] for i in train], [X[i] for i in cert]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            results = (cross_validate(candidates, X_tr, Y[train], labels,
                                      args.cv_folds, args.seed)
                       if len(candidates) > 1 else {})
            name = (min(results, key=lambda n: results[n]["log_loss"])
                    if results else candidates[0][0])
            kept = dict(candidates)[name].fit(X_tr, Y[train], classes=labels)
        except ValueError as exc:  # a label word the prompt cannot offer
            raise CLIError(f"cannot fit on these labels: {exc}") from None
        proba, failed, _ = predict_with_failures(kept, X_cert, "predict_proba")
        proba = np.asarray(proba, dtype=float)
        ok = ~np.asarray(failed, bool) & np.isfinite(proba).all(axis=1)
        if not ok.any():
            raise CLIError(f"none of the {len(cert)} certification rows could be "
                           "scored; nothing to certify.")
        # the scored rows certify (cached: nothing is scored again); a row
        # that fails at predict time is never decided, it goes to review
        router = MultiLabelRouter(
            FrozenEstimator(kept), target_precision=args.target_precision,
            risk_level=args.delta).fit([X_cert[i] for i in np.flatnonzero(ok)],
                                       Y[cert][ok])
    proba[~ok] = np.nan
    decisions = router.decisions_from_proba(proba)
    accepted = float((decisions != -1).all(axis=1).mean())
    no_positive = [lab for j, lab in enumerate(labels) if not Y[cert][ok, j].any()]
    clf = [c for c in llm_classifiers(kept) if hasattr(c, "demos_")][0]
    n_demos = len(clf.demos_)
    n_scale = (len(clf.calibration_indices_) if kept is clf else None)
    label_cells = [join_labels(s, sep) for s in sets]
    metadata = {
        "data": {
            **data_source(args, fields),
            "label_set_separator": sep,
            "allow_no_label": bool(args.allow_no_label),
            "n_rows": len(Y),
            "n_train": len(train),
            "n_demonstrations": n_demos,
            "n_in_fit_calibration": n_scale,
            "n_certification": len(cert),
            "labels_without_certification_positive": no_positive,
            "split": SPLIT,
            "seed": args.seed,
            "certification_sha256": calibration_hash(
                [rows[i] for i in cert], [label_cells[i] for i in cert]),
            "train_sha256": calibration_hash(
                [rows[i] for i in train], [label_cells[i] for i in train]),
        },
        "selection": {
            "classifier_option": args.classifier, "kept": name,
            "cv_folds": args.cv_folds if results else 0,
            "candidates": [{"name": n, **r} for n, r in results.items()]},
        "tier_shares": {"accept": accepted, "review": 1.0 - accepted},
        "usage": _usage(_sum_usage(kept)),
        "versions": versions(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    description = save_model(args.output, router, certification_proba=proba,
                             certification_y=Y[cert], metadata=metadata)
    scale = "" if n_scale is None else f"{n_scale} in-fit calibration, "
    print(f"{len(Y)} labelled rows, {len(labels)} labels: {n_demos} "
          f"demonstrations, {scale}{len(cert)} certification; "
          f"{description['identity'].get('backend')}; kept {name}.",
          file=sys.stderr)
    if no_positive:
        print(f"note: labels with no positive certification row are never "
              f"decided present: {', '.join(no_positive)}.", file=sys.stderr)
    print(_format_table(certificate_rows(description, proba, Y[cert]),
                        CERTIFICATE_COLUMNS))
    print("\n" + _guarantee(description["certificate"]))
    print(f"share of the certification rows with every label decided (accept): "
          f"{accepted:.1%}; the rest go to review.")
    if results:
        print(f"\ncandidates ({args.cv_folds}-fold cross-validation on the "
              f"{len(train)} training rows only; log loss and accuracy per "
              "(row, label)):")
        print(_format_table(
            [[n, _f(r["log_loss"], 4), _f(r["accuracy"]), str(r["n_failed"]),
              "yes" if n == name else ""] for n, r in results.items()],
            ["candidate", "CV log loss", "CV accuracy", "rows not scored",
             "kept"]))
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"note: {_masked(message, args)}", file=sys.stderr)
    print_written(args.output, cache)
    return 0


def cross_validate(candidates, X, Y, labels, n_folds, seed) -> dict:
    """Each candidate's cross-validated log loss and accuracy per (row, label).

    Seeded :class:`~sklearn.model_selection.KFold` folds of the training rows
    (label sets are too many to stratify on); a row a fold's model could not
    score counts in ``n_failed``, not in the figures.
    """
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    from ..scoring import predict_with_failures

    folds = list(KFold(n_splits=min(n_folds, len(Y)), shuffle=True,
                       random_state=seed).split(Y))
    out = {}
    for name, candidate in candidates:
        P = np.full(Y.shape, np.nan)
        for tr, te in folds:
            model = clone(candidate).fit([X[i] for i in tr], Y[tr],
                                         classes=labels)
            P[te] = predict_with_failures(model, [X[i] for i in te],
                                          "predict_proba")[0]
        ok = np.isfinite(P).all(axis=1)
        p = np.clip(P[ok], 1e-15, 1 - 1e-15)
        y = Y[ok]
        loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)) if ok.any() \
            else float("nan")
        out[name] = {"log_loss": float(loss),
                     "accuracy": float(np.mean((p > 0.5) == y)) if ok.any()
                     else float("nan"),
                     "n_failed": int((~ok).sum())}
    return out


def _score(router, X):
    """Probabilities (NaN rows failed), decisions and failure reasons."""
    from ..scoring import predict_with_failures

    proba, failed, reasons = predict_with_failures(router.estimator_, X,
                                                   "predict_proba")
    proba = np.array(proba, dtype=float)
    failed = np.asarray(failed, bool) | ~np.isfinite(proba).all(axis=1)
    proba[failed] = np.nan
    reasons = [r if r is not None or not f else NOT_SCORED
               for r, f in zip(reasons, failed)]
    return proba, router.decisions_from_proba(proba), failed, reasons


def predict_multilabel(args, router, desc, table, columns, total, output):
    """Stream a multi-label model's decisions to ``output`` (an open file).

    Returns
    -------
    n_rows, n_failed, counts : int, int, dict
        Rows written, rows not scored, rows per tier.
    """
    from ._fit import as_X

    data = desc["data"]
    order = data["field_columns"] or data["text_columns"]
    labels = [str(c) for c in router.classes_]
    sep = data.get("label_set_separator", ";")
    out = csv.writer(output)
    out.writerow(["id", "labels", "undecided", "tier",
                  *(f"proba_{c}" for c in labels),
                  *(f"decision_{c}" for c in labels), "failure_reason"])
    n_rows = n_failed = 0
    counts = {"accept": 0, "review": 0}
    bar = progress_bar(total, args.quiet)
    for chunk in table.chunks(columns, args.chunk_size):
        values = [v for _, v in chunk]
        X = as_X([v[:len(order)] for v in values], data["field_columns"])
        proba, decisions, failed, reasons = _score(router, X)
        for i, v in enumerate(values):
            n_rows += 1
            d = decisions[i]
            tier = "accept" if (d != -1).all() else "review"
            counts[tier] += 1
            out.writerow([
                v[-1] if args.id_column else str(n_rows),
                join_labels([c for c, x in zip(labels, d) if x == 1], sep),
                "" if failed[i] else join_labels(
                    [c for c, x in zip(labels, d) if x == -1], sep),
                tier,
                *("" if failed[i] else repr(float(p)) for p in proba[i]),
                *("" if x == -1 else str(int(x)) for x in d),
                reasons[i] or ""])
        n_failed += int(failed.sum())
        output.flush()
        if bar is not None:
            bar.update(len(values))
    if bar is not None:
        bar.close()
    return n_rows, n_failed, counts


def measure_multilabel(args, router, desc, table, cache, overrides):
    """Score ``report``'s labelled rows: (Y, proba, decisions, usage)."""
    from .._persistence import attach_backend
    from ._fit import as_X

    data = desc["data"]
    order = data["field_columns"] or data["text_columns"]
    labels = [str(c) for c in router.classes_]
    values, sets = read_label_sets(
        table, [*order, data["label_column"]], data["label_column"],
        data.get("label_set_separator", ";"), data.get("allow_no_label", False),
        known=labels)
    attach_backend(router, desc, overrides)  # nothing is sent unconfirmed
    check_cache(cache)
    clfs = prepare_classifiers(router, cache, progress=not args.quiet)
    index = {c: j for j, c in enumerate(labels)}
    Y = np.zeros((len(sets), len(labels)), dtype=np.int8)
    for i, s in enumerate(sets):
        Y[i, [index[c] for c in s]] = 1
    proba, decisions, _, _ = _score(router, as_X(values, data["field_columns"]))
    return Y, proba, decisions, total_usage(clfs)


def _f(v, digits=3):
    return "-" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _calibration_table(labels, Y, P):
    """Per-label calibration rows (scored rows only), with micro and macro."""
    from ..metrics import multilabel_calibration_report

    ok = np.isfinite(P).all(axis=1)
    rep = multilabel_calibration_report(Y[ok], P[ok], labels=labels,
                                        n_bootstrap=200, random_state=0)
    rows = []
    for name, r in [*rep["per_label"].items(), ("micro (all pairs)", rep["micro"])]:
        rows.append([name, str(r["n_positives"]), _f(r["ece_debiased"]),
                     f"[{_f(r['ece_ci_low'])}, {_f(r['ece_ci_high'])}]",
                     _f(r["brier"]), _f(r["log_loss"]), _f(r["accuracy"])])
    m = rep["macro"]
    rows.append(["macro (mean of labels)", "-", _f(m["ece_debiased"]), "-",
                 _f(m["brier"]), _f(m["log_loss"]), _f(m["accuracy"])])
    columns = ["label", "positives", "ECE (debiased)", "95% interval", "Brier",
               "log loss", "accuracy at 0.5"]
    text = (f"{int(ok.sum())} scored rows: Hamming loss "
            f"{rep['hamming_loss']:.3f} (share of wrong (row, label) decisions "
            f"at 0.5), subset accuracy {rep['subset_accuracy']:.3f} (rows whose "
            "whole label set is right).")
    return columns, rows, text


def _precision_rows(labels, Y, decisions, target):
    """Per label and direction: decided rows, their precision, its one-sided
    95 % lower bound and the p-value of a binomial test against the target."""
    from scipy.stats import beta, binom

    rows = []
    for j, label in enumerate(labels):
        for name, value in (("present", 1), ("absent", 0)):
            at = decisions[:, j] == value
            n, k = int(at.sum()), int((Y[at, j] == value).sum())
            if not n:
                rows.append([label, name, "0", "-", "-", "-"])
                continue
            low = float(beta.ppf(0.05, k, n - k + 1)) if k else 0.0
            p = float(binom.cdf(k, n, target))
            rows.append([label, name, str(n), _f(k / n), _f(low), f"{p:.3g}"])
    return rows


def multilabel_sections(desc, extras, measured) -> list:
    """The report's sections specific to a multi-label model."""
    cert = desc["certificate"]
    labels = cert["labels"]
    proba, Y = extras.get("certification_proba"), extras.get("certification_y")
    sections = [("Certificate (per label)", [
        ("table", (CERTIFICATE_COLUMNS, certificate_rows(desc, proba, Y))),
        ("p", f"With probability at least {1 - cert['risk_level']:g} over the "
              f"draw of the {cert['n_calibration']} certification rows, every "
              "certified rule (a label decided present above its threshold, or "
              "absent below its other one) is right at least "
              f"{cert['target_precision']:g} of the time on new rows like them: "
              + _guarantee(cert) + " A row whose labels are all decided is "
              "accepted; any other goes to review. The counts are on the "
              "certification rows."),
    ])]
    if proba is not None and len(proba):
        columns, rows, text = _calibration_table(labels, np.asarray(Y), proba)
        shares = desc.get("tier_shares") or {}
        sections.append(("Calibration per label (certification rows)", [
            ("table", (columns, rows)), ("p", text),
            ("p", "Share of the certification rows accepted (every label "
                  f"decided): {_f(shares.get('accept'))}.")]))
    if measured is not None:
        Ym, Pm, decisions, usage = measured
        columns, rows, text = _calibration_table(labels, Ym, Pm)
        accepted = (decisions != -1).all(axis=1)
        sections.append((f"Measured on {len(Ym)} labelled rows", [
            ("table", (columns, rows)), ("p", text),
            ("table", (["label", "decided", "rows", "precision", "95% lower",
                        "p-value (target)"],
                       _precision_rows(labels, Ym, decisions,
                                       cert["target_precision"]))),
            ("p", f"Accepted (every label decided): {int(accepted.sum())} of "
                  f"{len(Ym)} rows. The p-value is the probability of at most "
                  "this many right decisions if the precision were exactly the "
                  f"target {cert['target_precision']:g}: a small one (below "
                  "0.05, say) contradicts the certificate."),
            ("p", f"This run: {usage.calls} model calls, {usage.cache_hits} cache "
                  f"hits, {usage.prompt_tokens} prompt tokens.")]))
    return sections
