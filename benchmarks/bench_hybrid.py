"""The labels and the LLM together: hybrid vs its parts, and the richer calibrator.

For each bundled set (SMS spam, TREC coarse, Rotten Tomatoes, BBC News; and
the 30 question types for the calibrators) and each number of labelled texts
(``--labels``, default 100 200 500), the same stratified split as
``bench_defaults.py`` (300 test texts, the labelled texts drawn from the rest,
seed 0) is given to:

- ``majority``: ``DummyClassifier(strategy="prior")``;
- ``tfidf+lr`` / ``emb+lr``: ``TfidfVectorizer(sublinear_tf=True)`` /
  ``SentenceEmbedder()`` (all-MiniLM-L6-v2) + ``LogisticRegressionCV``
  (C by 5-fold log loss);
- ``llm temperature`` / ``llm matrix`` / ``llm auto``: ``LLMClassifier()``
  with ``calibration="temperature"`` (the default before issue 25),
  ``"matrix"`` and ``"auto"`` (the default: the matrix is a candidate, chosen
  by cross-validated log loss);
- ``llmscores+lr``: ``LLMScores`` -> ``StandardScaler`` -> ``LogisticRegressionCV``;
- ``hybrid tfidf+llm`` / ``hybrid``: ``make_hybrid_classifier`` without / with
  the embeddings block (a logistic regression per block and a joint one,
  stacked on their out-of-fold log-probabilities: ``BlockStackingClassifier``);
  the note says which candidate its cross-validation kept.

Columns: accuracy, log loss, debiased ECE (top-label, 15 bins) with a 95 %
bootstrap interval (200 resamples), ``fit calls`` (texts ``fit`` scored) and
``calls/text`` (model calls per test text). A last table compares the two
similarities of ``demo_selection="similar"`` without a model call: of the 8
training texts nearest to each test text, the share with the test text's
label, and the accuracy of their majority vote.

Every LLM estimator uses ``LLMClassifier(backend=LlamaCppBackend(n_threads=1),
random_state=0)`` (one thread per llama.cpp context; ``n_threads_batch``
follows ``n_threads``) through one persistent ``ResponseCache`` (``--cache``):
each text is scored once per prompt, and all the estimators of a split share
the prompt of its 16 demonstrations, so the LLM rows cost one call per test
text and per training text together. ``--max-new-calls`` bounds the model
calls a split may make: a split whose scores are not yet cached is reported
as not run (warm the cache first, e.g. with a run without the bound).

Usage (one BLAS thread: on a shared 2-core machine a multi-threaded BLAS
made each logistic regression ~10 times slower)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH=. \\
        python benchmarks/bench_hybrid.py --labels 100 200 500 \\
        --cache /tmp/bench25/scores.sqlite --out benchmarks/results/bench_hybrid.txt

A split where ``LLMScores`` cannot fit (TREC at 100 labels: one text of
``ABBR``, shown as a demonstration, leaves none to score it by another
prompt) reports its LLMScores rows as not run.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_llmconf import LLMClassifier, ResponseCache, datasets
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.hybrid import (
    BlockStackingClassifier,
    LLMScores,
    SentenceEmbedder,
    make_hybrid_classifier,
)
from sklearn_llmconf.metrics import expected_calibration_error
from sklearn_llmconf.prompts._demos import DemoPool

BBC_CHARS = 300  # as bench_defaults.py: headline and lead
N_TEST = 300
SETS = ["sms_spam", "trec", "rotten_tomatoes", "bbc_news", "question_types"]
# the question types only serve the calibrators (the many-class case)
CALIBRATOR_ONLY = {"question_types"}


class BudgetExceeded(RuntimeError):
    pass


class GuardedBackend(LlamaCppBackend):
    """LlamaCppBackend sharing its cache keys, with a bound on new calls."""

    budget = [np.inf]

    def cache_identity(self):
        identity = super().cache_identity()
        identity["backend"] = "LlamaCppBackend"
        return identity

    def _score_labels(self, prompts, labels):
        GuardedBackend.budget[0] -= len(prompts)
        if GuardedBackend.budget[0] < 0:
            raise BudgetExceeded(f"{len(prompts)} prompts not cached")
        return super()._score_labels(prompts, labels)


def load(name):
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    if name == "bbc_news":
        X = np.array([x[:BBC_CHARS] for x in X], dtype=object)
    return np.asarray(X, dtype=object), np.asarray(y)


def split(name, n_train, n_test=N_TEST, seed=0):
    """bench_defaults.py's split: the test texts do not depend on n_train."""
    X, y = load(name)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=n_test, stratify=y, random_state=seed)
    X_train, _, y_train, _ = train_test_split(
        X_rest, y_rest, train_size=n_train, stratify=y_rest, random_state=seed)
    return X_train, y_train, X_test, y_test


def lr():
    return LogisticRegressionCV(Cs=10, cv=5, scoring="neg_log_loss", max_iter=3000)


def estimators(name, cache):
    def llm(**params):
        return LLMClassifier(backend=GuardedBackend(n_threads=1), cache=cache,
                             random_state=0, **params)

    out = {"majority": DummyClassifier(strategy="prior"),
           "tfidf+lr": make_pipeline(TfidfVectorizer(sublinear_tf=True), lr()),
           "emb+lr": make_pipeline(SentenceEmbedder(), lr())}
    for method in ("temperature", "matrix", "auto"):
        out[f"llm {method}"] = llm(calibration=method)
    if name not in CALIBRATOR_ONLY:
        out["llmscores+lr"] = make_pipeline(LLMScores(llm()), StandardScaler(), lr())
        out["hybrid tfidf+llm"] = make_hybrid_classifier(llm(), embeddings=False)
        out["hybrid"] = make_hybrid_classifier(llm(), embeddings=SentenceEmbedder())
    return out


def _llm_usage(est):
    """(texts fit scored, model calls per test text) of an estimator."""
    from sklearn.pipeline import Pipeline

    if isinstance(est, LLMClassifier):
        return len(est.calibration_indices_), 1
    if isinstance(est, BlockStackingClassifier):
        est = Pipeline(est.transformers_)  # the blocks, for the walk below
    if isinstance(est, Pipeline):
        for step in est.named_steps.values():
            inner = getattr(step, "transformer_list", None)
            steps = ([s for _, s in inner] if inner else
                     [s for _, s in step.steps] if isinstance(step, Pipeline)
                     else [step])
            for s in steps:
                s = s.steps[0][1] if isinstance(s, Pipeline) else s
                if isinstance(s, LLMScores):
                    return len(s.demo_mask_), 1
    return 0, 0


def run_split(name, n_labels, cache, args):
    X_tr, y_tr, X_te, y_te = split(name, n_labels)
    classes = np.unique(y_tr)
    rows = []
    for label, est in estimators(name, cache).items():
        GuardedBackend.budget[0] = args.max_new_calls
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                proba = est.fit(X_tr, y_tr).predict_proba(X_te)
        except BudgetExceeded as exc:
            rows.append((name, n_labels, label, None, str(exc)))
            continue
        except ValueError as exc:  # e.g. LLMScores: a class with one text
            rows.append((name, n_labels, label, None, str(exc).split(";")[0]))
            continue
        ece = expected_calibration_error(
            y_te, proba, labels=classes, debias=True, n_bootstrap=200,
            random_state=0)
        fit_calls, per_text = _llm_usage(est)
        extra = getattr(est, "calibration_method_", "")
        if isinstance(est, BlockStackingClassifier):
            extra = "+".join(est.final_blocks_) + (
                " as is" if est.final_estimator_ is None else " stacked")
        rows.append((name, n_labels, label, dict(
            acc=accuracy_score(y_te, classes[np.argmax(proba, axis=1)]),
            ll=log_loss(y_te, proba, labels=classes), ece=ece,
            fit_calls=fit_calls, per_text=per_text, note=extra,
            seconds=time.perf_counter() - start), ""))
    return rows


def similarity_rows(name, n_labels, k=8):
    """Label agreement of the k nearest training texts: TF-IDF vs embeddings."""
    X_tr, y_tr, X_te, y_te = split(name, n_labels)
    classes, y_idx = np.unique(y_tr, return_inverse=True)
    out = []
    for label, embedder in (("tfidf", None), ("embeddings", SentenceEmbedder())):
        pool = DemoPool([(x,) for x in X_tr], y_idx, len(classes), embedder=embedder)
        picks = pool.nearest([(x,) for x in X_te], k, stratified=False)
        labels = classes[np.array([pool.y_index[p] for p in picks])]
        agree = np.mean(labels == y_te[:, None])
        vote = [max(set(row), key=list(row).count) for row in labels]
        out.append((name, n_labels, label, agree, np.mean(np.array(vote) == y_te)))
    return out


def format_rows(rows):
    head = (f"{'data set':<16} {'labels':>6} {'estimator':<18} {'accuracy':>8} "
            f"{'log loss':>8} {'debiased ECE [95% CI]':>23} {'fit calls':>9} "
            f"{'calls/text':>10}  note")
    lines = [head, "-" * len(head)]
    for name, n, label, m, why in rows:
        if m is None:
            lines.append(f"{name:<16} {n:>6} {label:<18} not run: {why}")
            continue
        ece = m["ece"]
        ci = f"{100 * ece.ece:5.1f} [{100 * ece.ci_low:4.1f}, {100 * ece.ci_high:4.1f}]"
        lines.append(
            f"{name:<16} {n:>6} {label:<18} {m['acc']:>8.3f} {m['ll']:>8.3f} "
            f"{ci:>23} {m['fit_calls']:>9} {m['per_text']:>10}  {m['note']}")
    return "\n".join(lines)


def summary(rows):
    """Hybrid vs the best of its parts, per split."""
    by = {}
    for name, n, label, m, _ in rows:
        if m is not None:
            by.setdefault((name, n), {})[label] = m["ll"]
    lines = ["", "hybrid vs the best of its parts (tfidf+lr, emb+lr, llm auto), "
             "log loss:"]
    ratios = {}
    for (name, n), lls in by.items():
        parts = {k: lls[k] for k in ("tfidf+lr", "emb+lr", "llm auto") if k in lls}
        if "hybrid" not in lls or len(parts) < 3:
            continue
        best = min(parts, key=parts.get)
        ratio = lls["hybrid"] / parts[best]
        ratios.setdefault(n, []).append(ratio)
        lines.append(f"  {name:<16} {n:>4}: hybrid {lls['hybrid']:.3f}, best part "
                     f"{best} {parts[best]:.3f} ({100 * (ratio - 1):+.1f} %)")
    for n, r in ratios.items():
        r = np.array(r)
        lines.append(f"  {n} labels: hybrid <= best part on {np.sum(r <= 1)} of "
                     f"{len(r)} sets, at most {100 * (r.max() - 1):+.1f} % above it")
    lines.append("")
    lines.append("in-fit calibrators, log loss (auto - temperature):")
    for (name, n), lls in by.items():
        if "llm auto" in lls and "llm temperature" in lls:
            lines.append(f"  {name:<16} {n:>4}: temperature "
                         f"{lls['llm temperature']:.3f}, matrix "
                         f"{lls.get('llm matrix', np.nan):.3f}, auto "
                         f"{lls['llm auto']:.3f} "
                         f"({lls['llm auto'] - lls['llm temperature']:+.3f})")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=SETS)
    parser.add_argument("--labels", nargs="+", type=int, default=[200, 100, 500])
    parser.add_argument("--cache", default="/tmp/bench25/scores.sqlite")
    parser.add_argument("--max-new-calls", type=float, default=np.inf)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - the embeddings extra is required
        pass
    cache = ResponseCache(args.cache)
    rows, sims = [], []
    for n in args.labels:
        for name in args.datasets:
            start = time.perf_counter()
            rows += run_split(name, n, cache, args)
            if n == 200 and name not in CALIBRATOR_ONLY:
                sims += similarity_rows(name, n)
            print(f"  {name} {n}: {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
            print(format_rows(rows[-12:]), flush=True)
    text = format_rows(rows) + "\n" + summary(rows) + "\n\n"
    text += (f"{'data set':<16} {'labels':>6} {'similarity':<12} "
             f"{'8-NN label agreement':>20} {'8-NN vote accuracy':>18}\n")
    for name, n, label, agree, acc in sims:
        text += f"{name:<16} {n:>6} {label:<12} {agree:>20.3f} {acc:>18.3f}\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            command = "HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/bench_hybrid.py"
            f.write(f"# {command} {' '.join(argv or sys.argv[1:])}\n")
            f.write("# embedded SmolLM2-135M, LlamaCppBackend(n_threads=1) "
                    "(n_threads_batch=1), torch.set_num_threads(1); 300 test "
                    "texts per set; BBC texts cut to 300 characters.\n")
            f.write(text)
    cache.close()


if __name__ == "__main__":
    main()
