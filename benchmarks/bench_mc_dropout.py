"""Does Monte-Carlo dropout give better probabilities than deterministic scores?

SmolLM2-135M (trained without dropout) through ``TransformersBackend``
(``dtype="auto"``: bfloat16 on a CPU with AVX512-BF16, else float32),
attention dropout at several rates, ``n`` stochastic passes averaged,
against the deterministic scores of the same prompts. For each rate
the 20 passes are drawn once; ``n = 5, 10`` use their first 5 and 10 (each
pass is an independent draw). Metrics on held-out texts, raw and after the
package's default calibration (``calibration="auto"``: a temperature and a
per-class bias fitted on a separate calibration split, the same
``fit_calibration`` the classifier uses): log loss, ECE (15 equal-width
bins, top-label) and AUC (binary; one-vs-rest averaged over the classes
present for the 30 question types). A last column: AUC of the passes'
mutual information for telling wrong predictions from right ones (raw
top-label confidence for the deterministic row).

SMS spam (2 labels, single tokens) and the 30 question types (full-sequence
scoring of multi-word names), 4-shot prompts of ``LLMClassifier``, texts
de-duplicated before the split. Run::

    python benchmarks/bench_mc_dropout.py [--n-cal 30] [--n-test 60] \\
        [--threads 1] [--dtype auto]

Results: ``benchmarks/results/bench_mc_dropout.txt``.
"""

import argparse
import os
import time

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.metrics import log_loss, roc_auc_score

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import TransformersBackend
from sklearn_llmconf.backends.transformers._dropout import combine_passes
from sklearn_llmconf.calibration._infit import apply_calibration, fit_calibration
from sklearn_llmconf.datasets import load_question_types, load_sms_spam
from sklearn_llmconf.metrics import expected_calibration_error

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RATES = (0.05, 0.1)
NS = (5, 10, 20)


def load(task, rng):
    X, y = (load_sms_spam if task == "sms" else load_question_types)(
        return_X_y=True)
    X, first = np.unique(X, return_index=True)  # duplicates leak labels
    y = y[first]
    idx = rng.permutation(len(X))
    return X[idx], y[idx]


def prompts_for(task, backend, n_cal, n_test, rng):
    X, y = load(task, rng)
    clf = LLMClassifier(backend=backend, n_shots=4, calibration=None,
                        random_state=0).fit(X[:300], y[:300])
    rows = X[300:300 + n_cal + n_test]
    prompts = clf._render([(t,) for t in rows])
    labels = clf.prompt_template_.label_strings(clf.label_words_)
    y_idx = np.searchsorted(clf.classes_, y[300:300 + n_cal + n_test])
    return prompts, labels, y_idx


def metrics(scores, y_idx, k):
    proba = softmax(scores, axis=1)
    ll = log_loss(y_idx, proba, labels=np.arange(k))
    ece = expected_calibration_error(y_idx, proba, labels=np.arange(k))
    if k == 2:
        auc = roc_auc_score(y_idx, proba[:, 1])
    else:
        present = [c for c in np.unique(y_idx) if 0 < (y_idx == c).sum() < len(y_idx)]
        auc = np.mean([roc_auc_score(y_idx == c, proba[:, c]) for c in present])
    return ll, ece, auc


def evaluate(scores, y_idx, k, n_cal, spread=None):
    cal, test = slice(0, n_cal), slice(n_cal, None)
    raw = metrics(scores[test], y_idx[test], k)
    t, b, _, matrix = fit_calibration(log_softmax(scores[cal], axis=1),
                                      y_idx[cal], k)
    calibrated = metrics(apply_calibration(scores[test], t, b, matrix),
                         y_idx[test], k)
    wrong = scores[test].argmax(axis=1) != y_idx[test]
    if spread is None:
        spread = -softmax(scores, axis=1).max(axis=1)
    detect = (roc_auc_score(wrong, spread[test])
              if 0 < wrong.sum() < len(wrong) else np.nan)
    return raw + calibrated + (detect,)


def run(task, args, out):
    rng = np.random.default_rng(0)
    kw = dict(dtype=args.dtype, device="cpu", n_threads=args.threads,
              batch_size=20)
    det = TransformersBackend(**kw)
    prompts, labels, y_idx = prompts_for(task, det, args.n_cal, args.n_test, rng)
    k = len(labels)
    start = time.perf_counter()
    base = det.score_labels(prompts, labels).log_probs
    seconds = {"deterministic": time.perf_counter() - start}
    rows = [("deterministic", "-", evaluate(base, y_idx, k, args.n_cal))]
    for rate in RATES:
        mc = TransformersBackend(**kw, mc_dropout=rate, mc_samples=max(NS))
        start = time.perf_counter()
        passes = mc.score_labels(prompts, labels).extra["mc_pass_log_probs"]
        seconds[f"p={rate}"] = time.perf_counter() - start
        for n in NS:
            mean, extra = combine_passes(passes[:, :n])
            rows.append((f"p={rate}", n, evaluate(
                mean, y_idx, k, args.n_cal, extra["mc_mutual_information"])))
    out.append(f"\n{task}: {k} labels, calibration {args.n_cal} / test "
               f"{args.n_test} texts, {det._resolved()[0]}, torch threads "
               f"{args.threads}")
    out.append(f"{'scores':<14}{'n':>3} | {'raw: logloss':>12}{'ECE':>7}{'AUC':>7}"
               f" | {'cal: logloss':>12}{'ECE':>7}{'AUC':>7} | {'err-AUC':>7}")
    for name, n, m in rows:
        out.append(f"{name:<14}{n!s:>3} | {m[0]:12.3f}{m[1]:7.3f}{m[2]:7.3f} | "
                   f"{m[3]:12.3f}{m[4]:7.3f}{m[5]:7.3f} | {m[6]:7.3f}")
    out.append("seconds: " + ", ".join(f"{n} {s:.0f}" for n, s in seconds.items()))
    print("\n".join(out[-len(rows) - 3:]), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-cal", type=int, default=30)
    parser.add_argument("--n-test", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--tasks", default="sms,qt")
    parser.add_argument("--out", default="benchmarks/results/bench_mc_dropout.txt")
    args = parser.parse_args()
    out = [__doc__.split("\n")[0]]
    for task in args.tasks.split(","):
        run(task, args, out)
        with open(args.out, "w") as f:
            f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
