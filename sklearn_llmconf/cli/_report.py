"""``sklearn-llmconf report MODEL [LABELLED] -o report.html``: the audit page.

Without LABELLED no model is called: the page is built from the model file
(certificate, the certification rows' probabilities, identity, prompt, cost).
With LABELLED (rows not used in ``fit``, same text and label columns) it also
routes them and shows each tier's measured precision with its one-sided
95 % Clopper-Pearson lower bound. For a multi-label model (``fit
--multilabel``) the page shows each label's certified thresholds, its
calibration (debiased ECE with its interval, Brier score, log loss) and the
Hamming loss, on the certification rows and on LABELLED, and there each
label's measured precision per direction; a label LABELLED holds that the
model does not know is refused.

The page holds no script and may run none: every value from the model file
is escaped, and its Content-Security-Policy forbids scripts. It is written
beside the output under a temporary name and renamed when complete; an
output that is the model file, the labelled rows or the cache is refused.
"""

from __future__ import annotations

import datetime
import json
import sys

import numpy as np

from ._common import (
    add_backend_options,
    add_input_options,
    backend_overrides,
    check_cache,
    check_description,
    check_output,
    default_cache,
    open_table,
    strip_password,
    versions,
)
from ._data import CLIError

__all__ = ["add_report", "report"]


def add_report(sub):
    """The ``report`` sub-command's arguments."""
    import argparse

    p = sub.add_parser("report", help="one self-contained HTML audit page",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model file written by fit")
    p.add_argument("labelled", nargs="?", default=None,
                   help="labelled rows not used in fit (optional)")
    p.add_argument("-o", "--output", default="report.html", metavar="HTML")
    add_input_options(p)
    add_backend_options(p, override=True)
    p.add_argument("--cache", default=None,
                   help="SQLite response cache (default: MODEL.cache.sqlite)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _tiers_of(proba, thresholds):
    """Tier index of each row from its probabilities (failed rows: NaN)."""
    ok = np.isfinite(proba).all(axis=1)
    conf = np.where(ok, np.nanmax(np.where(ok[:, None], proba, 0), axis=1), -np.inf)
    tier = np.full(len(proba), len(thresholds))
    for t in range(len(thresholds))[::-1]:
        thr = np.inf if thresholds[t] is None else thresholds[t]
        tier[conf >= thr] = t
    return tier, conf, ok


def _measured(args, router, desc):
    """Route the labelled rows: (y, labels, tiers) and the usage of the run."""
    from .._persistence import attach_backend
    from ._fit import as_X
    from ._predict import prepare_classifiers, score_chunk, total_usage

    data = desc["data"]
    order = data["field_columns"] or data["text_columns"]
    overrides = backend_overrides(args, desc)
    table = open_table(args.labelled, args.format, args.encoding)
    columns = [*order, data["label_column"]]
    table.count(columns, labels=data["label_column"])
    attach_backend(router, desc, overrides)  # nothing is sent unconfirmed
    cache = args.cache or default_cache(args.model)
    check_cache(cache)
    clfs = prepare_classifiers(router, cache, progress=not args.quiet)
    ys, labels, tiers = [], [], []
    names = router.tier_names_
    for chunk in table.chunks(columns, 1000, labels=data["label_column"]):
        values = [v for _, v in chunk]
        X = as_X([v[:-1] for v in values], data["field_columns"])
        _, tier, pred, ok, _ = score_chunk(router, X)
        ys += [v[-1] for v in values]
        labels += [str(router.classes_[p]) if o else None for p, o in zip(pred, ok)]
        tiers += [str(names[t]) for t in tier]
    return ys, labels, tiers, total_usage(clfs)


def _sections(desc, extras, measured):
    """The page's sections: (heading, blocks), every value escaped later."""
    from .._persistence import is_multilabel
    from ._multilabel import multilabel_sections

    head = (multilabel_sections if is_multilabel(desc) else _certificate_sections)
    return head(desc, extras, measured) + _model_sections(desc, extras)


def _certificate_sections(desc, extras, measured):
    """The first sections of a model of one label per row."""
    from ..routing import routing_report
    from . import _html
    from ._audit import extra_sections
    from ._report_text import COLUMNS, certificate_rows

    cert = desc["certificate"]
    sections = [("Certificate", [
        ("table", (COLUMNS, certificate_rows(desc))),
        ("p", f"With probability at least {1 - cert['delta']:g} over the draw "
              f"of the {cert['n_calibration']} certification rows, every "
              "certified tier's precision on new rows like them is at least its "
              f"target (delta {cert['delta']:g}, {cert['delta_per_test']:.3g} "
              f"per tier, method {cert['method']}; "
              f"{cert['n_failed_calibration']} rows failed).")])]
    proba, y = extras.get("certification_proba"), extras.get("certification_y")
    if proba is not None and len(proba):
        classes = np.array(desc["classes"])
        tier, conf, ok = _tiers_of(proba, cert["thresholds"])
        pred = classes[np.argmax(np.where(ok[:, None], proba, 0), axis=1)]
        correct = (pred == y) & ok
        level = 1 - cert["delta_per_test"]
        names = [*cert["tiers"], cert["fallback_tier"]]
        rep = routing_report(y, np.where(ok, pred, None), np.array(names)[tier],
                             tier_names=names)
        rows = [[n, str(rep[n]["n"]), f"{rep[n]['share']:.3f}",
                 _fmt(rep[n]["precision"])] for n in names]
        sections.append(("Routing on the certification rows", [
            ("figure", _html.reliability_svg(
                conf[ok], correct[ok], title="Reliability (certification rows)")),
            ("figure", _html.routing_svg(conf[ok], correct[ok], cert["targets"],
                                         cert["thresholds"], level)),
            ("table", (["tier", "rows", "share", "precision"], rows))]))
    if measured is not None:
        ys, labels, tiers, usage = measured
        names = [*cert["tiers"], cert["fallback_tier"]]
        rep = routing_report(ys, labels, tiers, tier_names=names)
        rows = [[n, str(rep[n]["n"]), f"{rep[n]['share']:.3f}",
                 _fmt(rep[n]["precision"]), _fmt(rep[n]["precision_lower"]),
                 _fmt(rep[n]["cumulative_precision"]),
                 _fmt(rep[n]["cumulative_precision_lower"])] for n in names]
        sections.append((f"Measured on {len(ys)} labelled rows", [
            ("table", (["tier", "rows", "share", "precision", "95% lower",
                        "at or above", "95% lower (at or above)"], rows)),
            ("p", f"This run: {usage.calls} model calls, {usage.cache_hits} cache "
                  f"hits, {usage.prompt_tokens} prompt tokens.")]))
    return sections + extra_sections(desc, extras, measured)


def _model_sections(desc, extras) -> list:
    """The sections of every model file: cost, identity, prompt, data, versions."""
    data, ident = desc["data"], desc["identity"]
    sections = []
    u = desc.get("usage", {})
    sections.append(("Cost of fit", [("table", (
        ["model calls", "cache hits", "prompt tokens", "completion tokens",
         "failed rows"],
        [[str(u.get(k, "-")) for k in ("calls", "cache_hits", "prompt_tokens",
                                       "completion_tokens", "failed_rows")]]))]))
    if ident.get("backend") == "LlamaCppBackend":
        model = f"GGUF {ident.get('model')} SHA-256 {ident.get('model_sha256')}"
    elif ident.get("backend") == "OpenAIBackend":
        url = desc["backend"]["params"].get("base_url")
        model = (f"server {strip_password(str(url)) if url else 'default'} "
                 f"model {ident.get('model')}")
    else:
        model = json.dumps(ident, sort_keys=True)
    sections.append(("Model identity", [
        ("table", (["backend", "model"], [[str(ident.get("backend")), model]])),
        ("pre", json.dumps(ident, indent=1, sort_keys=True))]))
    sections.append(("Prompt and labels", [
        ("pre", desc["prompt"]["template"]),
        ("table", (["class", "label word"],
                   list(zip(desc["classes"], desc["label_words"])))),
        ("p", f"Labels joined by {desc['prompt']['label_separator']!r}."
              + (f" (in the prompt; in the data file, the labels of a row are "
                 f"separated by {data['label_set_separator']!r})"
                 if "label_set_separator" in data else ""))]))
    sections.append(("Data", [("table", (["field", "value"], [
        [k, v if isinstance(v, str) else json.dumps(v)] for k, v in data.items()]))]))
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    sections.append(("Versions and dates", [("table", (
        ["name", "value"], [*([str(k), str(v)] for k, v in desc["versions"].items()),
                            ["model file written", desc["created"]],
                            ["model file signature",
                             extras.get("signature", "not checked")],
                            ["report written", now],
                            ["report versions", json.dumps(versions())]]))]))
    return sections


def _fmt(v):
    return "-" if v is None or not np.isfinite(v) else f"{v:.3f}"


def _multilabel_measured(args, router, desc):
    """Score the labelled rows of a multi-label model."""
    from ._multilabel import measure_multilabel

    overrides = backend_overrides(args, desc)
    table = open_table(args.labelled, args.format, args.encoding)
    return measure_multilabel(args, router, desc, table,
                              args.cache or default_cache(args.model), overrides)


def report(args) -> int:
    """Write the HTML report."""
    from .._archive import atomic_path
    from .._persistence import is_multilabel, load_model
    from ._html import page

    if args.labelled is None and (args.gguf or args.base_url or args.api_key_env
                                  or args.no_api_key):
        raise CLIError("--gguf / --base-url / --api-key-env / --no-api-key matter "
                       "only with LABELLED rows.")
    cache = args.cache or default_cache(args.model)
    check_output(args.output, [("model file", args.model),
                               ("labelled data", args.labelled),
                               ("response cache", cache)])
    router, desc, extras = load_model(args.model, check=False)
    check_description(desc)
    measure = _multilabel_measured if is_multilabel(desc) else _measured
    measured = measure(args, router, desc) if args.labelled else None
    html = page(f"sklearn-llmconf model report: {desc['data'].get('source')}",
                _sections(desc, extras, measured))
    try:
        with atomic_path(args.output) as tmp, \
                open(tmp, "w", encoding="utf-8") as f:
            f.write(html)
    except OSError as exc:
        raise CLIError(f"-o {args.output}: {exc.strerror}.") from None
    print(f"wrote {args.output}. Model file signature: {extras['signature']}.",
          file=sys.stderr)
    return 0
