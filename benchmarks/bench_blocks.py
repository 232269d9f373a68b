"""Stronger blocks for the hybrid: several LLMs, a plain-install embedding, SetFit.

For each bundled set (SMS spam, TREC coarse, Rotten Tomatoes, BBC News cut to
300 characters) the split of ``bench_hybrid.py`` (a stratified test part of
``--test`` texts, ``--labels`` labelled texts from the rest, seed 0) is given to
the estimators of the chosen ``--part``:

``embeddings`` (no LLM scoring: which embedding block a plain install gets)
    ``tfidf``: TF-IDF + ``LogisticRegressionCV``; ``minilm``: all-MiniLM-L6-v2
    (``SentenceEmbedder``, extra ``embeddings``, torch) + LR; ``smollm2-emb`` /
    ``gemma-emb``: ``LlamaEmbedder`` (mean-pooled last hidden states through
    llama.cpp, extra ``local``, no torch) + ``StandardScaler`` + LR;
    ``wordllama``: ``WordLlamaEmbedder`` (static embeddings, extra ``static``,
    no torch) + LR; ``tfidf+minilm`` / ``tfidf+wordllama`` /
    ``tfidf+smollm2-emb``: the two blocks stacked by
    ``BlockStackingClassifier`` (the hybrid without its LLM block).
``llms`` (each LLM alone, both, both + TF-IDF + embeddings)
    ``smollm2`` / ``gemma``: ``LLMClassifier()`` on that checkpoint
    (calibrated in ``fit``); ``both llms``: the two ``LLMScores`` blocks
    stacked; ``hybrid smollm2`` / ``hybrid both``:
    ``make_hybrid_classifier(llm or [smollm2, gemma])`` with TF-IDF and the
    embedding block (MiniLM when installed).
``setfit`` (a fine-tuned encoder)
    ``setfit``: ``SetFitClassifier`` (all-MiniLM-L6-v2 fine-tuned,
    ``num_iterations=5``, one epoch, logistic head); ``tfidf+minilm+setfit``:
    the stack with a ``SetFitBlock`` (cross-fitted on its own inner split of
    ``--setfit-folds`` folds, 3 by default as the block's: three
    fine-tunings on two thirds of the texts each).

Columns: accuracy, held-out log loss, and fit + predict seconds. Every LLM
uses ``LlamaCppBackend(n_threads=1)`` through one persistent ``ResponseCache``
(``--cache``), so a rerun makes no model call; torch runs ``--threads``
threads (1 by default; the header of the results says which). Times are
measured while other jobs share the machine: compare rows of one run only.

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH=. \\
        python benchmarks/bench_blocks.py --part embeddings --labels 300 \\
        --out benchmarks/results/bench_blocks_embeddings.txt
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline, make_union
from sklearn.preprocessing import StandardScaler

from sklearn_llmconf import LLMClassifier, ResponseCache, datasets
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.hybrid import (
    BlockStackingClassifier,
    LlamaEmbedder,
    LLMScores,
    SentenceEmbedder,
    WordLlamaEmbedder,
    make_hybrid_classifier,
)
from sklearn_llmconf.hybrid._embeddings import embeddings_available
from sklearn_llmconf.hybrid._static_embeddings import wordllama_available

SETFIT_FOLDS = 3  # --setfit-folds
SETS = ["sms_spam", "trec", "rotten_tomatoes", "bbc_news"]
BBC_CHARS = 300


def load(name, max_chars):
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    cut = BBC_CHARS if name == "bbc_news" else max_chars
    if cut:
        X = [x[:cut] for x in X]
    return np.asarray(X, dtype=object), np.asarray(y)


def split(name, n_train, n_test, max_chars=None, seed=0):
    X, y = load(name, max_chars)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=n_test, stratify=y, random_state=seed)
    X_train, _, y_train, _ = train_test_split(
        X_rest, y_rest, train_size=n_train, stratify=y_rest, random_state=seed)
    return X_train, y_train, X_test, y_test


def lr():
    return LogisticRegressionCV(Cs=10, cv=5, scoring="neg_log_loss", max_iter=3000)


def tfidf():
    return make_pipeline(TfidfVectorizer(sublinear_tf=True))


def emb_block(model_path):
    return make_pipeline(LlamaEmbedder(model_path, n_threads=1), StandardScaler())


def embedding_estimators(cache):
    out = {"tfidf": make_pipeline(TfidfVectorizer(sublinear_tf=True), lr())}
    if embeddings_available():
        out["minilm"] = make_pipeline(SentenceEmbedder(), lr())
    if wordllama_available():
        out["wordllama"] = make_pipeline(WordLlamaEmbedder(), lr())
        out["tfidf+wordllama"] = BlockStackingClassifier(make_union(
            tfidf(), WordLlamaEmbedder()))
    out["smollm2-emb"] = make_pipeline(emb_block("smollm2-135m"), lr())
    out["gemma-emb"] = make_pipeline(emb_block("gemma3-270m"), lr())
    if embeddings_available():
        out["tfidf+minilm"] = BlockStackingClassifier(make_union(
            tfidf(), SentenceEmbedder()))
    out["tfidf+smollm2-emb"] = BlockStackingClassifier(make_union(
        tfidf(), emb_block("smollm2-135m")))
    return out


def llm(checkpoint, cache):
    return LLMClassifier(backend=LlamaCppBackend(checkpoint, n_threads=1),
                         cache=cache, random_state=0)


def llm_estimators(cache):
    smol, gemma = llm("smollm2-135m", cache), llm("gemma3-270m", cache)
    embed = SentenceEmbedder() if embeddings_available() else "auto"
    return {
        "smollm2": smol,
        "gemma": gemma,
        "both llms": BlockStackingClassifier(make_union(
            make_pipeline(LLMScores(smol), StandardScaler()),
            make_pipeline(LLMScores(gemma), StandardScaler()))),
        "hybrid smollm2": make_hybrid_classifier(smol, embeddings=embed),
        "hybrid both": make_hybrid_classifier([smol, gemma], embeddings=embed),
    }


def setfit_estimators(cache):
    from sklearn_llmconf.hybrid import SetFitBlock, SetFitClassifier

    return {
        "setfit": SetFitClassifier(),
        "tfidf+minilm+setfit": BlockStackingClassifier(make_union(
            tfidf(), SentenceEmbedder(), SetFitBlock(n_folds=SETFIT_FOLDS))),
    }


PARTS = {"embeddings": embedding_estimators, "llms": llm_estimators,
         "setfit": setfit_estimators}


def note(est):
    if isinstance(est, BlockStackingClassifier):
        return "kept: " + "+".join(est.final_blocks_) + (
            " as is" if est.final_estimator_ is None else " stacked")
    return ""


def run_split(name, args, cache):
    X_tr, y_tr, X_te, y_te = split(name, args.labels, args.test, args.max_chars)
    classes = np.unique(y_tr)
    rows = []
    for label, est in PARTS[args.part](cache).items():
        if label in args.skip:
            continue
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X_tr, y_tr)
            fit_s = time.perf_counter() - start
            proba = est.predict_proba(X_te)
        rows.append((name, label, accuracy_score(y_te, classes[np.argmax(proba, 1)]),
                     log_loss(y_te, proba, labels=classes), fit_s,
                     time.perf_counter() - start - fit_s, note(est)))
        print(f"  {name} {label}: {rows[-1][3]:.3f} ({fit_s:.0f} s)",
              file=sys.stderr, flush=True)
    return rows


def format_rows(rows, args):
    head = (f"{'data set':<16} {'estimator':<20} {'accuracy':>8} {'log loss':>8} "
            f"{'fit s':>7} {'predict s':>9}  note")
    lines = [f"part={args.part} labels={args.labels} test={args.test} "
             f"max_chars={args.max_chars} skipped={args.skip}"
             + (f" setfit_folds={args.setfit_folds}" if args.part == "setfit"
                else ""), head,
             "-" * len(head)]
    for name, label, acc, ll, fit_s, pred_s, why in rows:
        lines.append(f"{name:<16} {label:<20} {acc:>8.3f} {ll:>8.3f} {fit_s:>7.1f} "
                     f"{pred_s:>9.1f}  {why}")
    return "\n".join(lines)


def summary(rows, part):
    by = {}
    for name, label, _, ll, *_ in rows:
        by.setdefault(name, {})[label] = ll
    lines = [""]
    pairs = {"embeddings": [("smollm2-emb", "tfidf"), ("tfidf+smollm2-emb", "tfidf"),
                            ("wordllama", "tfidf"), ("tfidf+wordllama", "tfidf"),
                            ("minilm", "tfidf"), ("smollm2-emb", "minilm"),
                            ("gemma-emb", "minilm")],
             "llms": [("gemma", "smollm2"), ("both llms", "smollm2"),
                      ("hybrid both", "hybrid smollm2")],
             "setfit": [("tfidf+minilm+setfit", "setfit")]}[part]
    for a, b in pairs:
        lines.append(f"log loss of {a} relative to {b}:")
        for name, lls in by.items():
            if a in lls and b in lls:
                lines.append(f"  {name:<16} {lls[a]:.3f} vs {lls[b]:.3f} "
                             f"({100 * (lls[a] / lls[b] - 1):+.1f} %)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), required=True)
    parser.add_argument("--datasets", nargs="+", default=SETS)
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--max-chars", type=int, default=None,
                        help="cut every text to this many characters")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="estimators (row labels) to leave out")
    parser.add_argument("--cache", default="/tmp/bench36/scores.sqlite")
    parser.add_argument("--out", default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (set OMP_NUM_THREADS to match)")
    parser.add_argument("--setfit-folds", type=int, default=3,
                        help="SetFitBlock(n_folds=...) of the setfit part")
    args = parser.parse_args(argv)
    global SETFIT_FOLDS
    SETFIT_FOLDS = args.setfit_folds
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    import os

    os.makedirs(os.path.dirname(args.cache), exist_ok=True)
    cache = ResponseCache(args.cache)
    rows = []
    start = time.perf_counter()
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    head = (f"# bench_blocks.py --part {args.part} (torch threads={args.threads}, "
            f"OMP_NUM_THREADS={omp}, LLMs on 1 llama.cpp thread; other jobs may "
            "share the machine: compare times within this file only; an LLM row "
            "after the first of its model reads the scores the earlier rows "
            "cached, so its seconds are not its cost)\n")
    for name in args.datasets:
        rows += run_split(name, args, cache)
        text = (head + format_rows(rows, args) + "\n" + summary(rows, args.part)
                + f"\n\ntotal {time.perf_counter() - start:.0f} s\n")
        if args.out:  # after each data set: a long run leaves what it measured
            with open(args.out, "w") as f:
                f.write(text)
    print(text)

if __name__ == "__main__":
    main()
