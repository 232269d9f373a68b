"""Log-probs vs verbalized confidence vs self-consistency, and a prompt ensemble.

For one data set and the embedded model (SmolLM2-135M-Instruct, llama.cpp), each
signal scores a calibration split and a test split; the table reports held-out
ROC AUC, accuracy, ECE and log loss on the test split, raw and after a
calibrator fitted on the calibration split only, and what each signal cost.

Run::

    PYTHONPATH=. python benchmarks/bench_strategies.py            # SMS spam
    PYTHONPATH=. python benchmarks/bench_strategies.py --dataset trec

About 8 minutes per data set on 2 idle cores (200 calibration + 300 test
texts); results of the last run are in ``benchmarks/results/``.

Choices (stated, not tuned):

- Every classifier uses the same 4 stratified demonstrations from a separate
  pool (``n_shots=4``, ``random_state=0``) and the default prompt; the
  ensemble adds two other prompts (soft voting, equal weights).
- Rows a strategy cannot score (unparseable verbalized answer, no sampled
  answer naming a label) get uniform probabilities, the ``on_error="warn"``
  policy; the ``failed`` column counts them.
- Calibration: binary, Platt scaling on the log-odds (what
  ``CalibratedClassifierCV(method="sigmoid")`` does); multiclass, a
  multinomial logistic regression on the log-probabilities.
- ECE: :func:`sklearn_llmconf.metrics.expected_calibration_error`, top-label,
  15 equal-width bins, plug-in (at n = 300 even a perfectly calibrated model
  shows about 3 points of ECE).
- Self-consistency with n = 5 reuses the first 5 of the n = 10 seeded samples
  (sample j uses seed + j); its cost columns count those 5 samples' calls and
  tokens, and its wall time is not measured separately.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from sklearn_llmconf import (
    LLMClassifier,
    PromptTemplate,
    ResponseCache,
    SelfConsistency,
)
from sklearn_llmconf.backends import (
    BaseBackend,
    GenerationResult,
    LlamaCppBackend,
    Usage,
)
from sklearn_llmconf.metrics import expected_calibration_error

DATASETS = {
    "sms": dict(
        prompts=[
            None,  # DEFAULT_TEMPLATE
            "Is this SMS message spam or ham (a normal message)? Options: {labels}."
            "\n\nSMS: {text}\nLabel:",
            "Message: {text}\nCategory ({labels}):",
        ],
        verbalizer=None,
    ),
    "trec": dict(
        prompts=[
            None,
            "What does the question ask for? Options: {labels}."
            "\n\nQuestion: {text}\nType:",
            "Question: {text}\nAnswer type ({labels}):",
        ],
        verbalizer={"ABBR": "abbreviation", "DESC": "description",
                    "ENTY": "entity", "HUM": "person", "LOC": "location",
                    "NUM": "number"},
    ),
}


class SampleMemo(BaseBackend):
    """Wraps a backend; keeps each seeded sample so that n=5 reuses n=10's first 5.

    Each sample is generated alone (seed + j), so its exact cost is known and is
    reported again, as its cost, whenever the sample is reused.
    """

    def __init__(self, inner=None):
        self.inner = inner

    def capabilities(self):
        return self.inner.capabilities()

    def cache_identity(self):
        return self.inner.cache_identity()

    def score_labels(self, prompts, labels):
        return self.inner.score_labels(prompts, labels)

    def generate(self, prompts, *, n_samples=1, temperature=0.0, max_tokens=16,
                 seed=None, stop=None):
        memo = self.__dict__.setdefault("memo_", {})
        texts, usage = [], Usage()
        for prompt in prompts:
            key = (prompt.text, temperature, max_tokens, seed, tuple(stop or ()))
            samples = memo.setdefault(key, [])
            draws = 1 if temperature == 0 else n_samples
            while len(samples) < draws:
                out = self.inner.generate(
                    [prompt], n_samples=1, temperature=temperature,
                    max_tokens=max_tokens, seed=seed + len(samples), stop=stop)
                samples.append((out.texts[0][0], out.usage))
            for _, u in samples[:draws]:
                usage += u
            got = [t for t, _ in samples[:draws]]
            texts.append(got * n_samples if draws == 1 else got)
        return GenerationResult(texts, usage=usage)


def metrics(y_idx, proba, k):
    auc = (roc_auc_score(y_idx, proba[:, 1]) if k == 2 else
           roc_auc_score(y_idx, proba, multi_class="ovr", labels=range(k)))
    return dict(auc=auc, acc=accuracy_score(y_idx, proba.argmax(axis=1)),
                ece=expected_calibration_error(y_idx, proba, labels=range(k)),
                nll=log_loss(y_idx, np.clip(proba, 1e-12, 1), labels=range(k)))


def calibrate(p_cal, y_cal, p_test, k):
    """Fit on the calibration split only; return calibrated test probabilities."""
    def features(p):
        logp = np.log(np.clip(p, 1e-12, 1))
        if k == 2:
            return (logp[:, 1] - logp[:, 0])[:, None]
        # Centred per row (softmax ignores a shift): lbfgs converges on these.
        return logp - logp.mean(axis=1, keepdims=True)

    model = LogisticRegression(C=100.0, max_iter=10000)
    model.fit(features(p_cal), y_cal)
    out = np.zeros((len(p_test), k))
    out[:, model.classes_] = model.predict_proba(features(p_test))
    return out


def score(clf, X, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        proba = clf.predict_proba(X)
    failed = np.isnan(proba).any(axis=1)
    proba[failed] = 1.0 / k  # the on_error="warn" policy, but counted here
    return proba, int(failed.sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="sms")
    parser.add_argument("--n-cal", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--n-threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache", default=None,
        help="persistent response cache file; rows found there cost nothing, so "
        "the cost columns of a resumed run are partial (default: a fresh "
        "temporary cache, complete costs)")
    args = parser.parse_args(argv)

    from sklearn_llmconf.datasets import load_sms_spam, load_trec

    loader = load_sms_spam if args.dataset == "sms" else load_trec
    X, y = loader(return_X_y=True)
    spec = DATASETS[args.dataset]
    classes = np.unique(y)
    k = len(classes)
    rng = np.random.RandomState(args.seed)
    order = rng.permutation(len(X))
    n_cal, n_test = args.n_cal, args.n_test
    cal, test, pool = (order[:n_cal], order[n_cal:n_cal + n_test],
                       order[n_cal + n_test:n_cal + n_test + 500])
    y_cal = np.searchsorted(classes, y[cal])
    y_test = np.searchsorted(classes, y[test])
    print(f"{args.dataset}: {k} classes, calibration n={n_cal}, test n={n_test} "
          f"(test prevalence of {classes[-1]}: {np.mean(y_test == k - 1):.2f}); "
          "SmolLM2-135M-Instruct Q4_1, 4-shot, "
          f"{args.n_threads} threads\n")

    backend = SampleMemo(LlamaCppBackend(n_threads=args.n_threads))
    tmp = tempfile.TemporaryDirectory()
    cache = ResponseCache(args.cache or Path(tmp.name) / "responses.sqlite")

    def make(prompt=None, **params):
        clf = LLMClassifier(PromptTemplate(prompt, verbalizer=spec["verbalizer"]),
                            backend=backend,
                            n_shots=4, on_error="nan", cache=cache,
                            calibration=None, random_state=0, **params)
        return clf.fit(X[pool], y[pool])

    runs = [
        ("log-probs", dict()),
        ("verbalized", dict(strategy="verbalized")),
        ("consistency n=10", dict(strategy=SelfConsistency(n_samples=10))),
        ("consistency n=5", dict(strategy=SelfConsistency(n_samples=5))),
    ]
    rows, fitted = [], {}
    for name, params in runs:
        clf = make(spec["prompts"][0], **params)
        t0 = time.perf_counter()
        p_cal, f_cal = score(clf, X[cal], k)
        p_test, f_test = score(clf, X[test], k)
        wall = time.perf_counter() - t0
        fitted[name] = clf
        rows.append((name, p_cal, p_test, f_cal + f_test, clf.usage_, wall))
        print(f"  done {name} in {wall:.0f}s", flush=True)

    # Soft voting over three prompts; the first member is the log-probs run,
    # whose scores come back from the shared cache (its calls are counted once).
    members = [("p0", FrozenEstimator(fitted["log-probs"]))] + [
        (f"p{i}", FrozenEstimator(make(p)))
        for i, p in enumerate(spec["prompts"][1:], 1)
    ]
    vote = VotingClassifier(members, voting="soft").fit(X[pool], y[pool])
    t0 = time.perf_counter()
    p_cal, f_cal = score(vote, X[cal], k)
    p_test, f_test = score(vote, X[test], k)
    wall = time.perf_counter() - t0 + rows[0][5]
    usage = Usage()
    for _, m in members:
        usage += m.estimator.usage_
    rows.append(("3-prompt soft vote", p_cal, p_test, f_cal + f_test, usage, wall))

    n_texts = n_cal + n_test
    head = (f"{'signal':<20} {'calib':<6} {'AUC':>6} {'acc':>6} {'ECE':>6} "
            f"{'logloss':>8} {'failed':>6} {'calls/t':>8} {'ptok/t':>7} "
            f"{'ctok/t':>7} {'s/text':>7}")
    print("\n" + head + "\n" + "-" * len(head))
    for name, p_cal, p_test, failed, usage, wall in rows:
        cost = (f"{failed:>6} {usage.calls / n_texts:>8.1f} "
                f"{usage.prompt_tokens / n_texts:>7.1f} "
                f"{usage.completion_tokens / n_texts:>7.1f} "
                + (f"{wall / n_texts:>7.2f}" if name != "consistency n=5"
                   else f"{'(reuse)':>7}"))
        for label, p in (("raw", p_test),
                         ("platt" if k == 2 else "multinom",
                          calibrate(p_cal, y_cal, p_test, k))):
            m = metrics(y_test, p, k)
            print(f"{name:<20} {label:<6} {m['auc']:>6.3f} {m['acc']:>6.3f} "
                  f"{m['ece']:>6.3f} {m['nll']:>8.3f} " + cost)
            name, cost = "", ""
    majority = np.bincount(y_test).max() / n_test
    print(f"\nmajority-class accuracy on test: {majority:.3f};"
          " costs per text over calibration + test texts (ptok: prompt tokens "
          "evaluated, after KV-prefix reuse; ctok: generated or scored label tokens).")


if __name__ == "__main__":
    main()
