"""What an auditor asks after the certificate, as text rows and HTML sections.

- which candidates ``fit`` compared (cross-validated log loss and accuracy
  on the training part) and which one it kept;
- per tier, the share of the certification rows it decides;
- per class, precision and recall of the kept model, and a confusion table,
  on the certification rows;
- with labelled rows given to ``report``: per certified tier, whether the
  measured precision contradicts the certificate (a one-sided binomial test).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "candidate_rows",
    "contradiction_rows",
    "extra_sections",
    "print_selection",
    "tier_shares",
]

CANDIDATE_COLUMNS = ["candidate", "CV log loss", "CV accuracy", "rows not scored",
                     "kept"]


def _f(v, digits=3):
    return "-" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _shares(description) -> list[tuple[str, float]]:
    """(tier, share) in tier order (the description's keys are sorted)."""
    shares = description.get("tier_shares") or {}
    cert = description["certificate"]
    return [(t, shares[t]) for t in [*cert["tiers"], cert["fallback_tier"]]
            if t in shares]


def tier_shares(router, proba, failed) -> dict:
    """Share of the rows each tier decides (fallback tier included)."""
    tier, _, _ = router.tiers_from_proba(proba, failed)
    names = [str(t) for t in router.tier_names_]
    n = max(len(tier), 1)
    return {name: float(np.sum(tier == t)) / n for t, name in enumerate(names)}


def candidate_rows(description) -> list[list[str]]:
    """One row per candidate: its cross-validated figures and whether kept."""
    selection = description.get("selection") or {}
    kept = selection.get("kept")
    return [[r["name"], _f(r["log_loss"], 4), _f(r["accuracy"]),
             str(r["n_failed"]), "yes" if r["name"] == kept else ""]
            for r in selection.get("candidates", [])]


def print_selection(description) -> None:
    """Print the candidates table and the tiers' shares."""
    from ._bundled import _format_table

    selection = description.get("selection") or {}
    if not selection:
        return
    if selection.get("candidates"):
        print(f"\ncandidates ({selection['cv_folds']}-fold cross-validation on "
              f"the {description['data']['n_train']} training rows only):")
        print(_format_table(candidate_rows(description), CANDIDATE_COLUMNS))
    else:
        print(f"\none candidate (--classifier {selection['classifier_option']}):"
              " fitted once on the training rows, not cross-validated.")
    print("kept: " + selection["kept"] + "; share of the certification rows "
          "decided per tier: "
          + ", ".join(f"{t} {s:.1%}" for t, s in _shares(description)))


def _per_class(classes, y, pred):
    rows = []
    for c in classes:
        tp = int(np.sum((pred == c) & (y == c)))
        n_pred, n_true = int(np.sum(pred == c)), int(np.sum(y == c))
        rows.append([c, _f(tp / n_pred if n_pred else np.nan),
                     _f(tp / n_true if n_true else np.nan), str(n_true), str(n_pred)])
    return rows


def _confusion(classes, y, pred):
    index = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(y, pred):
        if t in index and p in index:
            m[index[t], index[p]] += 1
    return [[c, *map(str, m[i])] for i, c in enumerate(classes)]


def contradiction_rows(cert, ys, labels, tiers) -> list[list[str]]:
    """Per certified tier: rows at or above it, their precision, the p-value.

    The certificate says the precision of the predictions at or above a
    tier's threshold is at least its target. The p-value is
    ``P(Binomial(n, target) <= correct)``: how likely so few correct
    predictions are if the precision were exactly the target (the least
    favourable case of the certificate). A small p-value (below 0.05, say)
    contradicts it; a large one does not confirm it.
    """
    from scipy.stats import binom

    names = list(cert["tiers"])
    rank = {n: i for i, n in enumerate([*names, cert["fallback_tier"]])}
    tier_idx = np.array([rank[t] for t in tiers])
    correct = np.array([lab is not None and str(lab) == str(y)
                        for y, lab in zip(ys, labels)])
    rows = []
    for t, name in enumerate(names):
        target = cert["targets"][t]
        if not cert["certified"][t]:
            rows.append([name, f"{target:g}", "-", "-", "-", "not certified"])
            continue
        at = tier_idx <= t
        n, k = int(at.sum()), int(correct[at].sum())
        if not n:
            rows.append([name, f"{target:g}", "0", "-", "-", "no rows"])
            continue
        p = float(binom.cdf(k, n, target))
        verdict = ("contradicts the certificate (p < 0.05)" if p < 0.05
                   else "no contradiction at the 5 % level")
        rows.append([name, f"{target:g}", str(n), _f(k / n), f"{p:.3g}", verdict])
    return rows


def extra_sections(desc, extras, measured) -> list:
    """The candidates, per-class and confusion sections, and the test.

    Sections as :func:`~sklearn_llmconf.cli._html.page` takes them:
    ``(heading, blocks)`` with ``("table", (columns, rows))`` and
    ``("p", text)`` blocks, every value escaped by the page's template.
    """
    sections = []
    selection = desc.get("selection")
    if selection:
        compared = [
            ("table", (CANDIDATE_COLUMNS, candidate_rows(desc))),
            ("p", f"Each candidate was cross-validated ({selection['cv_folds']} "
                  "stratified folds) on the training rows only, never on the "
                  "certification rows; the one with the lowest log loss was "
                  "kept, refitted on all training rows and certified: "
                  f"{selection['kept']}."),
        ] if selection.get("candidates") else [
            ("p", f"One candidate (--classifier {selection['classifier_option']}"
                  "), so nothing to compare: fitted once on the training rows, "
                  "not cross-validated (its figures are the certification "
                  f"rows' below), and certified: {selection['kept']}."),
        ]
        sections.append(("Candidates and the kept model", [
            *compared,
            ("table", (["tier", "share of certification rows decided"],
                       [[t, f"{s:.3f}"] for t, s in _shares(desc)])),
        ]))
    proba, y = extras.get("certification_proba"), extras.get("certification_y")
    if proba is not None and len(proba):
        classes = [str(c) for c in desc["classes"]]
        ok = np.isfinite(proba).all(axis=1)
        pred = np.array(classes, dtype=object)[np.argmax(np.where(
            ok[:, None], proba, 0), axis=1)]
        y_ok, pred_ok = np.asarray(y, dtype=object)[ok], pred[ok]
        sections.append(("Per class (certification rows)", [
            ("table", (["class", "precision", "recall", "rows", "predicted"],
                       _per_class(classes, y_ok, pred_ok))),
            ("p", f"The kept model's predictions on the {int(ok.sum())} scored "
                  "certification rows (not used to fit it); a class of one "
                  "labelled row trains and has no certification row."),
        ]))
        sections.append(("Where the errors go (certification rows)", [
            ("table", (["true \\ predicted", *classes],
                       _confusion(classes, y_ok, pred_ok))),
        ]))
    if measured is not None:
        ys, labels, tiers, _ = measured
        sections.append(("Does the measured precision contradict the certificate?", [
            ("table", (["tier", "target", "rows at or above", "precision",
                        "p-value", "verdict"],
                       contradiction_rows(desc["certificate"], ys, labels, tiers))),
            ("p", "One-sided binomial test per certified tier: the p-value is the "
                  "probability of at most this many correct predictions among "
                  "the rows at or above the tier if its precision were exactly "
                  "the target."),
        ]))
    return sections
