"""``sklearn-llmconf predict MODEL DATA -o decisions.csv``: one decision per row.

The input is read and scored in chunks of ``--chunk-size`` rows, each chunk's
decisions written before the next is read, so memory does not grow with the
file. Every scored prompt goes to the response cache (``MODEL.cache.sqlite``
by default) as soon as its batch returns: after a kill, the same command
pays only for the rows not yet cached and writes the same file. The file is
written as ``OUTPUT.partial`` beside it and renamed when complete, so a
decisions file that exists is whole (and an older one stays until then). An
output that is the input, the model file or the cache (symlinks followed) is
refused.

A model file whose backend is a server names its address and key variable;
they are used only when you name them too (``--base-url``, ``--api-key-env``
or ``--no-api-key``, or the environment variables SKLEARN_LLMCONF_BASE_URL
and SKLEARN_LLMCONF_API_KEY_ENV): otherwise the command stops, showing what
the file asks for, before any request.

Columns: ``id`` (``--id-column``, else the row's 1-based number), ``label``
(empty for a failed row), ``probability`` (of that label), one
``proba_<class>`` column per class with ``--all-probabilities``, ``tier``,
``failure_reason`` (empty for a scored row). A multi-label model (``fit
--multilabel``) writes ``id``, ``labels`` (those decided present, joined by
its label separator), ``undecided`` (those left to a person), ``tier``
(``accept`` when every label is decided, else ``review``), ``proba_<label>``
for every label, ``decision_<label>`` for every label (``1`` present, ``0``
absent, empty when undecided) and ``failure_reason``. Exit status 0 when
every row was scored, 1 when some failed (their tier is the fallback), 2 for
a usage error.
"""

from __future__ import annotations

import csv
import sys

from ._args import positive_int
from ._common import (
    add_backend_options,
    add_input_options,
    backend_overrides,
    check_cache,
    check_description,
    check_output,
    default_cache,
    open_table,
    prepare_classifiers,
    progress_bar,
    total_usage,
)

__all__ = ["add_predict", "predict", "prepare_classifiers", "score_chunk",
           "total_usage"]

NOT_SCORED = "the backend could not score it (failed request or labels not observed)"


def add_predict(sub):
    """The ``predict`` sub-command's arguments."""
    import argparse

    p = sub.add_parser("predict", help="decisions for new rows: label, "
                       "probability, tier, failure reason",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model file written by fit")
    p.add_argument("data", help="CSV, TSV, JSON Lines or Parquet; - reads stdin")
    p.add_argument("-o", "--output", required=True, metavar="CSV",
                   help="decisions file to write")
    p.add_argument("--id-column", default=None, metavar="COLUMN",
                   help="column copied to the id column (default: row number)")
    p.add_argument("--all-probabilities", action="store_true",
                   help="one proba_<class> column per class")
    add_input_options(p)
    add_backend_options(p, override=True)
    p.add_argument("--chunk-size", type=positive_int, default=1000,
                   help="rows read, scored and written at a time (default 1000)")
    p.add_argument("--cache", default=None,
                   help="SQLite response cache (default: MODEL.cache.sqlite)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def score_chunk(router, X):
    """Probabilities, tier index, predicted class index and failure reasons.

    The reasons come with the scores
    (:func:`~sklearn_llmconf.scoring.predict_with_failures`); a failed row
    without one gets :data:`NOT_SCORED`.
    """
    from ..scoring._failures import finite_rows, predict_with_failures

    proba, failed, reasons = predict_with_failures(router.estimator_, X,
                                                   "predict_proba")
    failed = failed | ~finite_rows(proba)
    tier, pred, ok = router.tiers_from_proba(proba, failed)
    reasons = [r if r is not None or not f else NOT_SCORED
               for r, f in zip(reasons, failed)]
    return proba, tier, pred, ok, reasons


def predict(args) -> int:
    """Check the model file and the input, then stream the decisions."""
    from .._archive import atomic_path
    from .._persistence import attach_backend, is_multilabel, load_model

    cache = args.cache or default_cache(args.model)
    partial = args.output + ".partial"
    inputs = [("input data", args.data), ("model file", args.model),
              ("response cache", cache)]
    check_output(args.output, inputs)
    check_output(partial, inputs)
    router, desc, extras = load_model(args.model, check=False)
    check_description(desc)
    overrides = backend_overrides(args, desc)
    data = desc["data"]
    order = data["field_columns"] or data["text_columns"]
    columns = list(order) + ([args.id_column] if args.id_column else [])
    table = open_table(args.data, args.format, args.encoding)
    total = table.count(columns)  # every line decoded and checked first
    attach_backend(router, desc, overrides)  # nothing is sent unconfirmed
    check_cache(cache)
    clfs = prepare_classifiers(router, cache, progress=False)
    if is_multilabel(desc):  # one probability and decision per label
        from ._multilabel import predict_multilabel as write
    else:
        write = _write_decisions
    with atomic_path(args.output, partial) as tmp, \
            open(tmp, "w", newline="", encoding="utf-8") as f:
        n_rows, n_failed, counts = write(args, router, desc, table, columns,
                                         total, f)
    shares = ", ".join(f"{t} {n}" for t, n in counts.items())
    u = total_usage(clfs)
    print(f"{n_rows} rows: {shares}; {n_failed} failed. {u.calls} model calls, "
          f"{u.cache_hits} cache hits. Wrote {args.output}. Model file "
          f"signature: {extras['signature']}.", file=sys.stderr)
    return 1 if n_failed else 0


def _write_decisions(args, router, desc, table, columns, total, f):
    """Stream one label per row: label, probability, tier; the counts."""
    from ._fit import as_X

    data = desc["data"]
    order = data["field_columns"] or data["text_columns"]
    classes = [str(c) for c in router.classes_]
    tiers = [str(t) for t in router.tier_names_]
    header = ["id", "label", "probability"]
    header += [f"proba_{c}" for c in classes] if args.all_probabilities else []
    header += ["tier", "failure_reason"]
    n_rows = n_failed = 0
    counts = dict.fromkeys(tiers, 0)
    bar = progress_bar(total, args.quiet)
    out = csv.writer(f)
    out.writerow(header)
    for chunk in table.chunks(columns, args.chunk_size):
        values = [v for _, v in chunk]
        X = as_X([v[:len(order)] for v in values], data["field_columns"])
        proba, tier, pred, ok, reasons = score_chunk(router, X)
        for i, v in enumerate(values):
            n_rows += 1
            rid = v[-1] if args.id_column else str(n_rows)
            row = [rid, classes[pred[i]] if ok[i] else "",
                   repr(float(proba[i, pred[i]])) if ok[i] else ""]
            if args.all_probabilities:
                row += [repr(float(p)) if ok[i] else "" for p in proba[i]]
            row += [tiers[tier[i]], reasons[i] or ""]
            out.writerow(row)
            counts[tiers[tier[i]]] += 1
        n_failed += int((~ok).sum())
        f.flush()
        if bar is not None:
            bar.update(len(values))
    if bar is not None:
        bar.close()
    return n_rows, n_failed, counts
