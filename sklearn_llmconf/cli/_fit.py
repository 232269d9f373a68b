"""``sklearn-llmconf fit DATA``: fit and certify on the user's labelled rows.

The labelled rows are split once, stratified by label and seeded:

1. **certification** (``--certify-fraction``, default half of the rows): never
   seen by the classifier; the router certifies each tier's threshold on them;
2. the rest is the classifier's training part, of which ``--n-shots`` rows
   are the prompt's **demonstrations** and up to ``--n-scale`` of the others
   the **in-fit calibration** (temperature and per-class bias).

``--classifier`` picks the model (``--model`` names the server's model):
``llm`` (the calibrated LLM), ``hybrid`` (LLM scores + TF-IDF + sentence
embeddings when installed, stacked), or ``auto`` (the default): both are
cross-validated on the training part only (``--cv-folds`` folds, never the
certification rows) and the one with the lower log loss is kept and
certified. ``auto`` is the default because it decides on the user's own
labels: on four data sets never used in development (300 labels) the hybrid
halved the LLM's log loss, but a stacked model learns from the labels and
can lose where they are few per class; the comparison costs one fit of each
candidate per fold (model calls for every training row per fold: the folds'
prompts differ). ``llm`` or ``hybrid`` alone is fitted once, without
cross-validation: there is nothing to choose, and its figures are the
certification rows'. A class with one labelled row trains (it cannot be
certified); the certification part then lacks it.

``--gguf`` given more than once (files, or the model names ``smollm2-135m``
and ``gemma3-270m``) puts several LLMs in the hybrid, one block each; the
first is the ``llm`` candidate and the backend the certificate names, the
others are rebuilt from the model file by ``predict`` and ``report`` (a model
name is portable; a moved file is not).
"""

from __future__ import annotations

import datetime
import sys
import warnings

import numpy as np

from ._args import fraction, non_negative_int, parse_tiers, positive_int
from ._common import (
    add_backend_options,
    add_input_options,
    check_cache,
    check_output,
    data_source,
    default_cache,
    further_backends,
    make_backend,
    open_table,
    print_written,
    versions,
)
from ._data import CLIError
from ._label_sets import add_label_set_options, check_options

#: ``--tiers`` when not given (one label per row).
DEFAULT_TIERS = [("accept", 0.99), ("review", 0.90)]

__all__ = ["add_fit", "fit"]

SPLIT = ("certification: a stratified --certify-fraction of the rows, unseen by "
         "the classifier; the rest trains it: --n-shots demonstrations and up to "
         "--n-scale in-fit calibration rows")


def add_fit(sub):
    """The ``fit`` sub-command's arguments."""
    p = sub.add_parser(
        "fit", help="fit and certify on your labelled data; write one model file",
        description=__doc__.split("\n\n", 1)[1], formatter_class=_raw())
    p.add_argument("data", help="CSV, TSV, JSON Lines or Parquet file; - reads "
                   "standard input")
    p.add_argument("--text-column", action="append", required=True,
                   dest="text_columns", metavar="COLUMN",
                   help="column holding text to classify (repeat for several)")
    p.add_argument("--label-column", required=True, metavar="COLUMN")
    add_input_options(p)
    add_backend_options(p)
    p.add_argument("--prompt", default=None,
                   help="prompt template; its placeholders are text column names "
                        "and {labels} (default: the package's prompt)")
    p.add_argument("--tiers", type=parse_tiers, default=None,
                   help="name=target precision, highest first "
                        "(default: accept=0.99,review=0.9)")
    p.add_argument("--delta", type=fraction, default=0.05,
                   help="probability that some tier's guarantee fails")
    p.add_argument("--certify-fraction", type=fraction, default=0.5,
                   help="share of the labelled rows that certifies (default 0.5)")
    p.add_argument("--n-shots", type=non_negative_int, default=16)
    p.add_argument("--n-scale", type=positive_int, default=200,
                   help="most training rows of the in-fit calibration")
    p.add_argument("--classifier", choices=("llm", "hybrid", "auto"),
                   default="auto",
                   help="the classifier certified: llm, hybrid, or auto "
                        "(default): the lower cross-validated log loss")
    p.add_argument("--cv-folds", type=positive_int, default=3,
                   help="folds comparing the candidates on the training part "
                        "(default 3; at least 2; a single candidate is not "
                        "cross-validated)")
    p.add_argument("--cache", default=None,
                   help="SQLite response cache (default: MODEL.cache.sqlite)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", default="model.skops", metavar="MODEL",
                   help="model file to write (default model.skops)")
    add_label_set_options(p)
    return p


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def prompt_and_fields(text_columns, prompt, multilabel=False):
    """The prompt template and the columns filling its fields, in order.

    One text column and no ``prompt``: the default prompt, 1-D texts (fields
    None). Several: the default instructions (of a multi-label prompt with
    ``multilabel``) and one ``name: {cN}`` line per column. A given prompt's
    placeholders are column names.
    """
    from ..prompts import DEFAULT_TEMPLATE, PromptTemplate
    from ..prompts._multilabel import MULTILABEL_TEMPLATES

    if prompt is None:
        if len(text_columns) == 1:
            return None, None
        for c in text_columns:
            if "\n" in c or "\r" in c:
                raise CLIError(f"column name {c!r} holds a line break.")
        lines = "\n".join(
            f"{c.replace('{', '{{').replace('}', '}}')}: {{c{i}}}"
            for i, c in enumerate(text_columns)
        )
        base = (MULTILABEL_TEMPLATES["label_vs_none"] if multilabel
                else DEFAULT_TEMPLATE)
        return base.replace("Text: {text}", lines), list(text_columns)
    try:
        fields = PromptTemplate(prompt).fields
    except (ValueError, TypeError) as exc:
        raise CLIError(f"--prompt: {exc}") from None
    unknown = [f for f in fields if f not in text_columns]
    if unknown or set(text_columns) != set(fields):
        raise CLIError(
            f"--prompt has placeholders {list(fields)} but the text columns are "
            f"{list(text_columns)}; name each text column in the prompt."
        )
    return prompt, list(fields)


def as_X(rows, fields):
    """1-D texts (one column, default prompt) or 2-D rows in field order."""
    if fields is None:
        return [r[0] for r in rows]
    return [tuple(r) for r in rows]


def _split(y, fraction_, seed):
    """Training and certification row indices, stratified by label.

    A class with one labelled row cannot be in both parts: its row trains
    (a classifier cannot predict a class it never saw, and one certification
    row says nothing about a class's precision), so the certification part
    lacks that class; ``fit`` says so.
    """
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise CLIError(f"the label column holds one class only ({classes[0]!r}).")
    single = np.isin(y, classes[counts < 2])
    idx = np.flatnonzero(~single)
    try:
        train, cert = train_test_split(idx, test_size=fraction_, stratify=y[idx],
                                       random_state=seed)
    except ValueError as exc:
        raise CLIError(
            f"cannot split {len(y)} labelled rows stratified by label ({exc})."
        ) from None
    return np.concatenate([train, np.flatnonzero(single)]), cert


def fit(args) -> int:
    """Validate everything, fit, certify, print the certificate, save."""
    from sklearn.base import clone
    from sklearn.frozen import FrozenEstimator

    from .._classifier import LLMClassifier
    from .._persistence import calibration_hash, save_model
    from ..calibration import InFitCalibration
    from ..hybrid import BestCandidateClassifier, service_candidates
    from ..routing import ConfidenceRouter
    from ..scoring import predict_with_failures
    from ._audit import print_selection, tier_shares
    from ._report_text import print_certificate

    if args.cv_folds < 2:
        raise CLIError("--cv-folds must be at least 2.")
    check_options(args)  # the multi-label options need --multilabel
    if args.tiers is None:
        args.tiers = DEFAULT_TIERS
    check_columns(args.text_columns, args.label_column)
    cache = args.cache or default_cache(args.output)
    check_output(args.output, [("input data", args.data),
                               ("response cache", cache)])
    table = open_table(args.data, args.format, args.encoding)
    template, fields = prompt_and_fields(args.text_columns, args.prompt)
    columns = [*args.text_columns, args.label_column]
    data = table.read_all(columns, labels=args.label_column)
    y = np.array([r[-1] for r in data], dtype=object)
    order = fields or args.text_columns
    pos = [args.text_columns.index(c) for c in order]
    rows = [tuple(r[i] for i in pos) for r in data]
    train, cert = _split(y, args.certify_fraction, args.seed)
    backend = make_backend(args)  # may load nothing yet; checks the options
    check_cache(cache)

    llm = LLMClassifier(
        template, backend=backend, n_shots=args.n_shots,
        calibration=InFitCalibration(max_samples=args.n_scale), on_error="nan",
        cache=cache,
        progress=not args.quiet, random_state=args.seed,
    )
    kinds = (("llm", "hybrid") if args.classifier == "auto"
             else (args.classifier,))
    further = further_backends(args)
    llms = [llm] + [clone(llm).set_params(backend=b) for b in further]
    candidates = service_candidates(llms if further else llm, kinds=kinds)
    X = as_X(rows, fields)
    X_tr, X_cert = [X[i] for i in train], [X[i] for i in cert]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        if len(candidates) > 1:
            selector = BestCandidateClassifier(candidates, cv=args.cv_folds,
                                               random_state=args.seed)
            selector.fit(X_tr, y[train])
            kept, kept_name = selector.best_estimator_, selector.best_name_
            cv_folds, results = int(selector.n_splits_), selector.cv_results_
        else:
            # nothing to choose: cross-validating the one candidate would
            # cost n_folds more fits (LLM calls) for figures that the
            # certification rows measure anyway (as the multi-label fit does)
            kept_name, kept = candidates[0][0], clone(candidates[0][1])
            kept.fit(X_tr, y[train])
            cv_folds, results = 0, {}
        # cached: router.fit pays nothing more
        proba, failed, _ = predict_with_failures(kept, X_cert, "predict_proba")
        router = ConfidenceRouter(FrozenEstimator(kept), tiers=args.tiers,
                                  delta=args.delta).fit(X_cert, y[cert])
    clf = kept if isinstance(kept, LLMClassifier) else None
    n_demos = min(args.n_shots, len(train))
    singles = sorted(set(map(str, y[train])) - set(map(str, y[cert])))
    metadata = {
        "data": {
            **data_source(args, fields),
            "n_rows": len(y),
            "n_train": len(train),
            "n_demonstrations": n_demos,
            "n_in_fit_calibration": (len(clf.calibration_indices_)
                                     if clf is not None else None),
            "n_certification": len(cert),
            "classes_not_certified": singles,
            "split": SPLIT,
            "seed": args.seed,
            "certification_sha256": calibration_hash(
                [rows[i] for i in cert], y[cert]),
            "train_sha256": calibration_hash([rows[i] for i in train], y[train]),
        },
        "selection": {
            "classifier_option": args.classifier,
            "cv_folds": cv_folds,
            "kept": kept_name,
            # a list: the description's keys are sorted, the order matters
            "candidates": [
                {"name": name, **{k: (None if not np.isfinite(v) else float(v))
                                  if k != "n_failed" else int(v)
                                  for k, v in r.items()}}
                for name, r in results.items()],
        },
        "tier_shares": tier_shares(router, np.asarray(proba, float),
                                   np.asarray(failed, bool)),
        # the kept model's fit on the training part; the candidates'
        # cross-validation fits are not counted
        "usage": _usage(_sum_usage(kept)),
        "versions": versions(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    description = save_model(args.output, router, certification_proba=proba,
                             certification_y=y[cert], metadata=metadata)
    identity = description["identity"].get("backend")
    if clf is not None:
        print(f"{len(y)} labelled rows: {n_demos} demonstrations, "
              f"{len(clf.calibration_indices_)} in-fit calibration, {len(cert)} "
              f"certification; {identity}.", file=sys.stderr)
    else:
        print(f"{len(y)} labelled rows: {len(train)} training ({n_demos} "
              f"demonstrations), {len(cert)} certification; {identity}.",
              file=sys.stderr)
    if singles:
        print(f"note: classes with one labelled row train but cannot be "
              f"certified: {', '.join(singles)}.", file=sys.stderr)
    print_certificate(description)
    print_selection(description)
    # each message once: the candidates' folds repeat the same warnings
    for message in dict.fromkeys(str(w.message) for w in caught):
        if "could be certified" not in message:
            print(f"note: {_masked(message, args)}", file=sys.stderr)
    print_written(args.output, cache)
    return 0


def _masked(text, args):
    """``text`` without the passwords of ``--cache`` and ``--base-url``."""
    from urllib.parse import urlsplit

    for url in (args.cache, args.base_url):
        try:
            password = urlsplit(str(url)).password if url else None
        except ValueError:
            password = None
        if password:
            text = text.replace(password, "***")
    return text


def check_columns(text_columns, label_column):
    """Refuse a column named twice, or the label column as a text column."""
    if label_column in text_columns:
        raise CLIError(f"--label-column {label_column!r} is also a --text-column: "
                       "the label would be fed to the model as text.")
    twice = sorted({c for c in text_columns if text_columns.count(c) > 1})
    if twice:
        raise CLIError(f"--text-column {', '.join(map(repr, twice))} given twice.")


def _sum_usage(model):
    """The model calls of the kept model's fit (all its LLMs)."""
    from .._persistence import llm_classifiers
    from ..backends import Usage

    total = Usage()
    for c in llm_classifiers(model):
        if getattr(c, "usage_", None) is not None:
            total += c.usage_
    return total


def _usage(usage) -> dict:
    return {k: int(getattr(usage, k)) for k in (
        "calls", "cache_hits", "prompt_tokens", "completion_tokens", "failed_rows")}
