"""How fast is LLMClassifier.predict_proba on the embedded model?

Two measurements, side by side in one run (timings on shared machines are noisy:
compare the ratios, not the seconds):

1. ``predict_proba`` on n SMS texts with the default 8-shot stratified prompt,
   against raw llama-cpp-python (a second ``Llama`` with the same settings)
   evaluating the same full prompts from an empty context (``llama.eval`` on
   every prompt, then the next-token logits): the speed-up comes from
   evaluating the shared instructions and demonstrations once. The prompts are
   those the classifier sends its backend, recorded by running the same
   classifier on :class:`~sklearn_llmconf.testing.KeywordBackend`.
2. The cost of scoring k labels (multi-token words included) relative to one
   label, on the same prompts: labels reuse the prompt's evaluation.

No response cache is used. Run::

    python benchmarks/bench_speed.py [--n 500] [--n-threads N]
"""

import argparse
import os
import time

import numpy as np

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import LlamaCppBackend, default_model_path
from sklearn_llmconf.backends.llamacpp import without_extra_buffer_types
from sklearn_llmconf.datasets import load_sms_spam
from sklearn_llmconf.testing import KeywordBackend

LABEL_SETS = {
    1: ["spam"],
    2: ["ham", "spam"],
    6: ["abbreviation", "description", "entity", "human", "location", "number"],
    20: ["business", "entertainment", "politics", "sport", "technology", "health",
         "science", "travel", "food", "music", "weather", "finance", "education",
         "crime", "religion", "fashion", "gaming", "history", "law", "nature"],
}


def rendered_prompts(X_train, y_train, X_eval, n_shots):
    """The prompt texts ``LLMClassifier`` sends its backend for ``X_eval``.

    Prompts do not depend on the backend, so a classifier with the same
    parameters on the recording :class:`KeywordBackend` renders them in
    milliseconds.
    """
    recorder = KeywordBackend()
    clf = LLMClassifier(backend=recorder, n_shots=n_shots, calibration=None,
                        random_state=0)
    clf.fit(X_train, y_train).predict_proba(X_eval)
    prompts = [text for call in recorder.calls_ for text in call]
    assert len(prompts) == len(set(X_eval))
    return prompts


def raw_llama(n_threads):
    """A plain ``llama_cpp.Llama`` with the backend's default settings."""
    from llama_cpp import Llama

    with without_extra_buffer_types():
        return Llama(
            model_path=str(default_model_path()),
            n_ctx=2048,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_batch=512,
            seed=0,
            logits_all=False,
            verbose=False,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--n-shots", type=int, default=16)
    args = parser.parse_args()

    X, y = load_sms_spam(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))
    X_train, y_train = X[idx[1000:]], y[idx[1000:]]
    X_eval = list(X[idx[: args.n]])

    threads = args.n_threads or len(os.sched_getaffinity(0))
    backend = LlamaCppBackend(n_threads=threads)
    # Scoring speed only: calibration=None, so fit makes no model call.
    clf = LLMClassifier(backend=backend, n_shots=args.n_shots, calibration=None,
                        random_state=0)
    clf.fit(X_train, y_train)
    llama = raw_llama(threads)
    for ctx in (llama, backend._get_model().llama):  # the settings in effect
        assert ctx.context_params.n_threads == threads
        assert ctx.context_params.n_threads_batch == threads
    prompts = rendered_prompts(X_train, y_train, X_eval, args.n_shots)
    tokens = [backend.tokenize(p) for p in prompts]
    mean_tokens = np.mean([len(t) for t in tokens])

    # Warm-up: model loading and first-call allocations are not what we measure.
    clf.predict_proba(X_eval[:2])

    start = time.perf_counter()
    for toks in tokens:
        llama.n_tokens = 0
        llama.eval(toks)
        np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).copy()
    naive = time.perf_counter() - start

    start = time.perf_counter()
    proba = clf.predict_proba(X_eval)
    ours = time.perf_counter() - start
    assert proba.shape == (len(X_eval), 2)

    print(f"{len(X_eval)} SMS texts, {args.n_shots}-shot stratified prompt, "
          f"{mean_tokens:.0f} tokens per prompt on average, {threads} threads.")
    print(f"\n{'method':52s} {'texts/s':>8s} {'ratio':>6s}")
    print("-" * 68)
    print(f"{'raw llama-cpp-python, full prompt each time':52s} "
          f"{len(X_eval) / naive:8.2f} {1.0:6.2f}")
    print(f"{'LLMClassifier.predict_proba (prefix reuse, 2 labels)':52s} "
          f"{len(X_eval) / ours:8.2f} {naive / ours:6.2f}")

    n_label_texts = min(50, len(prompts))
    print(f"\nCost of k labels, {n_label_texts} prompts "
          "(relative to one label; prefix reuse on):")
    print(f"{'k':>3s} {'label tokens':>12s} {'seconds':>8s} {'relative':>8s}")
    base = None
    for k, words in LABEL_SETS.items():
        labels = [" " + w for w in words]
        n_tok = sum(len(backend.tokenize(lab, add_bos=False)) for lab in labels)
        backend.score_labels(prompts[:1], labels)  # same starting state for each k
        start = time.perf_counter()
        backend.score_labels(prompts[:n_label_texts], labels)
        seconds = time.perf_counter() - start
        base = base or seconds
        print(f"{k:3d} {n_tok:12d} {seconds:8.2f} {seconds / base:8.2f}")


if __name__ == "__main__":
    main()
