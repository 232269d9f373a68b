"""Several labels per text: how to score each label, its calibration and its cost.

On :func:`~sklearn_llmconf.datasets.load_movie_genres` (IMDb titles, five
genres, any number per title), the embedded SmolLM2-135M, 16 stratified
demonstrations showing each title's label set, one seeded split:

- the two per-label scoring layouts of ``LogProbs(multilabel=...)``:
  ``"yes_no"`` (``"<genre>: yes"`` / ``"<genre>: no"`` after the text, every
  genre in one prompt through the label tree) and ``"label_vs_none"`` (each
  genre word against ``"none"``): micro / macro F1, subset accuracy, Hamming
  loss, macro AUC, micro debiased ECE, on held-out titles; and, as the
  baseline, one generated label set per title (greedy decoding after the
  ``"label_vs_none"`` prompt, the genres it names);
- raw (``calibration=None``) against the in-fit per-label calibration
  (slope and bias per genre, shrunk toward shared ones): held-out log loss;
- cost: seconds and backend calls to score the test titles with k = 5 genres
  against one label per title (a binary LLMClassifier, "drama" or "other"),
  timed side by side in this run (no cache hit in any timed call);
- the share of (title, genre) decisions that
  :class:`~sklearn_llmconf.routing.MultiLabelRouter` certifies at 90 %
  precision (family-wise error 10 % over the genres, Bonferroni), fitted on a
  separate calibration split, evaluated on the test titles;
- the multi-label hybrid (``make_hybrid_classifier(llm, multilabel=True)``:
  TF-IDF, sentence embeddings when installed and the ``"yes_no"``
  classifier's per-label log-odds, stacked per label) on the same training
  and test titles, with the same metrics and router; its LLM shares the
  response cache, so the prompts the LLM rows paid are read back (its fit
  and predict seconds say how many).

``--data emotions`` runs the same on
:func:`~sklearn_llmconf.datasets.load_word_emotions` (single words, eight
emotions; results in ``bench_multilabel_emotions.txt``), where the model has
more to read than a title.

Usage::

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_multilabel.py \\
        [--data movies|emotions] [--no-hybrid] [--n-cal 150] [--n-route 200] \\
        [--n-test 200]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score, hamming_loss, roc_auc_score

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.calibration import InFitCalibration
from sklearn_llmconf.datasets import load_movie_genres, load_word_emotions
from sklearn_llmconf.hybrid import make_hybrid_classifier
from sklearn_llmconf.metrics import multilabel_calibration_report
from sklearn_llmconf.scoring import LogProbs

try:  # the router arrives with step 4 of issue 35
    from sklearn_llmconf.routing import MultiLabelRouter
except ImportError:  # pragma: no cover
    MultiLabelRouter = None

RESULTS = Path(__file__).parent / "results"
DATA = {"movies": load_movie_genres, "emotions": load_word_emotions}
#: the single-label baseline of the cost ratio: one column, named
BASELINE = {"movies": (3, "drama"), "emotions": (3, "fear")}


def _split(data, n_cal, n_route, n_test, seed=0):
    movies = DATA[data]()
    rng = np.random.RandomState(seed)
    idx = rng.permutation(len(movies.data))
    a, b = n_cal + 16 * 4, n_cal + 16 * 4 + n_route
    parts = idx[:a], idx[a:b], idx[b:b + n_test]
    return movies, [(movies.data[p], movies.target[p]) for p in parts]


def _scores(Y, P):
    rep = multilabel_calibration_report(Y, P, n_bootstrap=200)
    pred = (P > 0.5).astype(int)
    return {
        "micro_f1": f1_score(Y, pred, average="micro", zero_division=0),
        "macro_f1": f1_score(Y, pred, average="macro", zero_division=0),
        "subset_acc": rep["subset_accuracy"],
        "hamming": hamming_loss(Y, pred),
        "ece": rep["micro"]["ece_debiased"],
        "ece_ci": (rep["micro"]["ece_ci_low"], rep["micro"]["ece_ci_high"]),
        "log_loss": rep["micro"]["log_loss"],
        "auc": roc_auc_score(Y, P, average="macro"),
    }


def _certified(model, Xr, Yr, Xte, Yte):
    """MultiLabelRouter at 90 % precision on the fitted ``model``: certified
    on ``(Xr, Yr)``, its decisions on the test texts."""
    router = MultiLabelRouter(model, target_precision=0.9, risk_level=0.1)
    decided = router.fit(Xr, Yr).decide(Xte)
    ok = decided != -1
    return {
        "decided": float(np.mean(ok)),
        "texts_all_decided": float(np.mean(ok.all(1))),
        "decided_precision": (float(np.mean(Yte[decided == 1] == 1))
                              if (decided == 1).any() else float("nan")),
        "decided_acc": (float(np.mean(decided[ok] == Yte[ok]))
                        if ok.any() else float("nan")),
        "thresholds": router.thresholds_,
        "negative": router.negative_thresholds_,
    }


def _hybrid(llm, Xtr, Ytr, Xte, Yte, Xr, Yr):
    """The multi-label hybrid on ``llm`` (TF-IDF, sentence embeddings when
    installed, the LLM's per-label log-odds), fitted, timed and certified.

    Its LLM is a clone of the ``"yes_no"`` classifier, same demonstrations
    and response cache: the prompts the LLM rows already paid (calibration,
    router and test titles) are read back from the cache.
    """
    model = make_hybrid_classifier(clone(llm), multilabel=True)
    t0 = time.perf_counter()
    model.fit(Xtr, Ytr)
    t_fit = time.perf_counter() - t0
    scores = dict(model.transformers_)["llm"][0]  # the LLMScores block
    used = [e.usage_ for e in (scores.estimator_, scores.swap_estimator_)
            if e is not None]
    fit_calls = sum(u.calls for u in used)
    fit_hits = sum(u.cache_hits for u in used)
    usage = scores.estimator_.usage_
    calls0, hits0 = usage.calls, usage.cache_hits
    t0 = time.perf_counter()
    P = model.predict_proba(Xte)
    t_pred = time.perf_counter() - t0
    res = {"cal": _scores(Yte, P), "t_fit": t_fit, "t_pred": t_pred,
           "blocks": [name for name, _ in model.transformers_],
           "fit_calls": fit_calls, "fit_hits": fit_hits,
           "calls": usage.calls - calls0, "hits": usage.cache_hits - hits0}
    if MultiLabelRouter is not None:
        res.update(_certified(model, Xr, Yr, Xte, Yte))
    return res


def _generated_label_sets(clf, X, backend):
    """One generated label set per text (greedy), parsed: the baseline.

    The prompt is the ``"label_vs_none"`` classifier's own (same
    demonstrations, which list each title's genres); the model writes the
    list and each genre it names is predicted present.
    """
    template, words = clf.prompt_template_, list(clf.label_words_)
    demos = [({"text": d[0]}, w) for d, w in clf.demos_]
    prompts = [template.render({"text": x}, words, demos) for x in X]
    t0 = time.perf_counter()
    result = backend.generate(prompts, max_tokens=16, stop=["\n"])
    seconds = time.perf_counter() - t0
    pred = np.zeros((len(X), len(words)), dtype=int)
    for i, texts in enumerate(result.texts):
        named = {t.strip().lower() for t in (texts[0] if texts else "").split(",")}
        pred[i] = [w.lower() in named for w in words]
    return pred, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-cal", type=int, default=150)
    parser.add_argument("--n-route", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--designs", nargs="+", default=["yes_no", "label_vs_none"])
    parser.add_argument("--no-hybrid", dest="hybrid", action="store_false",
                        help="leave out the multi-label hybrid")
    parser.add_argument("--data", choices=sorted(DATA), default="movies")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", UserWarning)
    if args.out is None:
        args.out = RESULTS / ("bench_multilabel.txt" if args.data == "movies"
                              else f"bench_multilabel_{args.data}.txt")
    movies, [(Xtr, Ytr), (Xr, Yr), (Xte, Yte)] = _split(
        args.data, args.n_cal, args.n_route, args.n_test + 2)
    col, name = BASELINE[args.data]
    Xwarm, Xte, Yte = Xte[:2], Xte[2:], Yte[2:]
    # the label names go with Y (a plain array would name them "0", "1", ...)
    Ytr_named = pd.DataFrame(Ytr, columns=movies.target_names)
    backend = LlamaCppBackend(n_threads=1, n_threads_batch=1)
    lines = [
        f"# PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_multilabel.py "
        f"--data {args.data} --n-cal {args.n_cal} --n-route {args.n_route} "
        f"--n-test {args.n_test}",
        f"# {datetime.date.today()}, embedded SmolLM2-135M (1 thread), "
        f"{DATA[args.data].__name__}: {len(Xtr)} training texts (16 demonstrations, "
        f"up to {args.n_cal} calibrate), {len(Xr)} router-calibration texts, "
        f"{len(Xte)} test texts; {len(movies.target_names)} labels "
        f"{list(movies.target_names)}",
    ]
    out, clfs, hybrid = {}, {}, None
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "scores.sqlite")
        # one label per text, for the cost ratio: e.g. drama or other
        single = LLMClassifier(backend=backend, n_shots=16, random_state=0,
                               calibration=None, cache=cache)
        single.fit(Xtr, np.where(Ytr[:, col] == 1, name, "other"))
        # a warm-up text pays the model load and the shared demonstrations
        single.predict_proba(Xwarm)
        calls0 = single.usage_.calls
        t0 = time.perf_counter()
        single.predict_proba(Xte)
        t_single = time.perf_counter() - t0
        calls_single = single.usage_.calls - calls0
        for design in args.designs:
            clf = LLMClassifier(
                backend=backend, n_shots=16, random_state=0, cache=cache,
                strategy=LogProbs(multilabel=design),
                calibration=InFitCalibration(max_samples=args.n_cal))
            clf.fit(Xtr, Ytr_named)
            clf.predict_proba(Xwarm)
            calls0 = clf.usage_.calls
            t0 = time.perf_counter()
            P = clf.predict_proba(Xte)
            t_pred = time.perf_counter() - t0
            calls = clf.usage_.calls - calls0
            raw = clone(clf).set_params(calibration=None).fit(Xtr, Ytr_named)
            P_raw = raw.predict_proba(Xte)  # from the cache
            res = {"cal": _scores(Yte, P), "raw": _scores(Yte, P_raw),
                   "t_pred": t_pred, "calls": calls,
                   "slope": 1 / clf.calibration_temperature_,
                   "bias": clf.calibration_bias_}
            if MultiLabelRouter is not None:
                res.update(_certified(clf, Xr, Yr, Xte, Yte))
            out[design] = res
            clfs[design] = clf
            if design == "label_vs_none":
                gen_pred, t_gen = _generated_label_sets(clf, Xte, backend)
        if args.hybrid and "yes_no" in clfs:
            hybrid = _hybrid(clfs["yes_no"], Xtr, Ytr_named, Xte, Yte, Xr, Yr)
    lines.append("")
    lines.append(f"{'design':<15}{'calib':<6}{'micro-F1':>9}{'macro-F1':>9}"
                 f"{'subset':>8}{'Hamming':>9}{'AUC':>7}{'log loss':>9}"
                 f"{'ECE (debiased, 95% CI)':>28}")
    for design, res in out.items():
        for kind in ("raw", "cal"):
            r = res[kind]
            lines.append(
                f"{design:<15}{kind:<6}{r['micro_f1']:9.3f}{r['macro_f1']:9.3f}"
                f"{r['subset_acc']:8.3f}{r['hamming']:9.3f}{r['auc']:7.3f}"
                f"{r['log_loss']:9.3f}"
                f"{r['ece']:12.3f} [{r['ece_ci'][0]:.3f}, {r['ece_ci'][1]:.3f}]")
    if hybrid is not None:
        r = hybrid["cal"]
        lines.append(
            f"{'hybrid':<15}{'stack':<6}{r['micro_f1']:9.3f}{r['macro_f1']:9.3f}"
            f"{r['subset_acc']:8.3f}{r['hamming']:9.3f}{r['auc']:7.3f}"
            f"{r['log_loss']:9.3f}"
            f"{r['ece']:12.3f} [{r['ece_ci'][0]:.3f}, {r['ece_ci'][1]:.3f}]")
    if "label_vs_none" in out:
        g = gen_pred
        lines.append(
            f"{'generated set':<15}{'-':<6}"
            f"{f1_score(Yte, g, average='micro', zero_division=0):9.3f}"
            f"{f1_score(Yte, g, average='macro', zero_division=0):9.3f}"
            f"{np.mean((g == Yte).all(axis=1)):8.3f}{hamming_loss(Yte, g):9.3f}"
            f"{'-':>7}{'-':>9}{'- (no probability)':>28}")
    lines.append("AUC: macro over genres, of the probabilities (the raw scores' "
                 "ranking survives calibration only where the slope is > 0)")
    lines.append("")
    lines.append(f"cost of scoring {len(Xte)} test texts (no cache hit), "
                 "side by side:")
    lines.append(f"  one label per text (binary, {name}/other): {t_single:7.1f} s, "
                 f"{calls_single} backend calls")
    for design, res in out.items():
        lines.append(
            f"  {len(movies.target_names)} labels, {design:<14}: "
            f"{res['t_pred']:7.1f} s, "
            f"{res['calls']} backend calls; time ratio to one label "
            f"{res['t_pred'] / t_single:.2f}x")
    if "label_vs_none" in out:
        lines.append(f"  one generated label set per text (greedy, <= 16 tokens): "
                     f"{t_gen:7.1f} s; time ratio to one label "
                     f"{t_gen / t_single:.2f}x")
    if hybrid is not None:
        lines.append(
            f"  hybrid ({' + '.join(hybrid['blocks'])}, stacked per label, "
            f"LLM = yes_no sharing its response cache): fit {hybrid['t_fit']:.1f} s "
            f"({hybrid['fit_calls']} LLM calls, {hybrid['fit_hits']} prompts "
            f"cache-read), predict {hybrid['t_pred']:.1f} s ({hybrid['calls']} "
            f"LLM calls, {hybrid['hits']} prompts cache-read: its seconds are the "
            f"other blocks and the cache reads, not the LLM's forward passes)")
    for design, res in out.items():
        lines.append(f"per-label calibration ({design}): slope "
                     f"{np.round(res['slope'], 2).tolist()}, bias "
                     f"{np.round(res['bias'], 2).tolist()}")
    if MultiLabelRouter is not None:
        lines.append("")
        lines.append("certified 90 % precision per label (learn-then-test, "
                     "family-wise error 10 % over the labels, Bonferroni):")
        routed = dict(out) if hybrid is None else {**out, "hybrid": hybrid}
        for design, res in routed.items():
            lines.append(
                f"  {design:<14}: {100 * res['decided']:.1f} % of (text, label) "
                f"decisions certified, {100 * res['texts_all_decided']:.1f} % "
                f"of texts "
                f"with every label decided; precision of the certified positives "
                f"{res['decided_precision']:.3f}, accuracy of all certified "
                f"decisions {res['decided_acc']:.3f}; positive thresholds "
                f"{np.round(res['thresholds'], 3).tolist()}, negative "
                f"{np.round(res['negative'], 3).tolist()}")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
