"""
=====================================================
Scoring through an OpenAI-compatible server
=====================================================

:class:`~sklearn_llmconf.backends.OpenAIBackend` sends the prompts to any
server that speaks the OpenAI API with log-probabilities: OpenAI itself, vLLM,
SGLang, Ollama, or the llama.cpp server. This example starts a llama.cpp
server with the embedded SmolLM2 model on 127.0.0.1, classifies SMS messages
through it, and stops it; nothing leaves the machine.
"""

# %%
# Start a local server
# --------------------
# ``llama-cpp-python[server]`` provides an OpenAI-compatible server. We pick a
# free port, start it with ``--logits_all true`` (needed for log-probabilities
# on ``/v1/completions``) and wait until ``/v1/models`` answers.
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from sklearn_llmconf import LLMClassifier, SelfConsistency
from sklearn_llmconf.backends import OpenAIBackend, default_model_path
from sklearn_llmconf.datasets import load_sms_spam

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen(
    [sys.executable, "-m", "sklearn_llmconf.backends.llama_server",
     "--model", str(default_model_path()),
     "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
     "--n_ctx", "2048", "--n_threads", "2", "--logits_all", "true"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
base_url = f"http://127.0.0.1:{port}/v1"
start = time.monotonic()
while True:
    if server.poll() is not None:
        raise RuntimeError(f"the server exited with code {server.returncode}")
    try:
        with urllib.request.urlopen(base_url + "/models", timeout=2):
            break
    except OSError:
        if time.monotonic() - start > 120:
            server.kill()
            raise RuntimeError("the server did not answer within 120 s") from None
        time.sleep(0.5)
print(f"server ready at {base_url} after {time.monotonic() - start:.1f} s")

# %%
# Classify through the server
# ---------------------------
# The llama.cpp server returns the top alternatives of each generated token,
# not the probability of a given continuation, so the backend reads each
# label's *first token* among the ``top_logprobs`` alternatives (``scoring=
# "auto"`` probes the server once and finds that it cannot echo prompt
# log-probabilities). ``endpoint="completions"`` continues the raw prompt; the
# default cloze prompt ends with ``Answer:``, so the next token is the label.
# The backend also sends an equal ``logit_bias`` on the label tokens (found
# through the server's tokenizer), but the llama-cpp-python server applies it
# to sampling only and reports unbiased log-probabilities: a row whose labels
# are not among the top-20 alternatives is a failed row (``on_error``), never
# a coin flip.
X, y = load_sms_spam(return_X_y=True)
rng = np.random.default_rng(0)
idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 15, replace=False)
                      for c in ("ham", "spam")])
X_pool = np.delete(X, idx)
y_pool = np.delete(y, idx)
X_test, y_test = X[idx], y[idx]

backend = OpenAIBackend("smollm2", base_url=base_url, endpoint="completions",
                        api_key_env=None, max_concurrency=2, timeout=120.0)
clf = LLMClassifier(backend=backend, n_shots=4, on_error="warn",
                    calibration=None, random_state=0)
try:
    clf.fit(X_pool, y_pool)
    start = time.perf_counter()
    proba = clf.predict_proba(X_test)
    seconds = time.perf_counter() - start
    # One prompt again, straight through the backend, to see how it scored.
    demos = [({"text": d[0]}, w) for d, w in clf.demos_]
    prompt = clf.prompt_template_.render({"text": X_test[0]}, clf.label_words_,
                                         demos)
    labels = clf.prompt_template_.label_strings(clf.label_words_)
    result = backend.score_labels([prompt], labels)
    # Self-consistency: the same texts, scored without any log-probability.
    voter = LLMClassifier(backend=backend,
                          strategy=SelfConsistency(n_samples=5, temperature=0.7),
                          n_shots=4, on_error="warn",
                          calibration=None, random_state=0).fit(X_pool, y_pool)
    start = time.perf_counter()
    proba_votes = voter.predict_proba(X_test)
    seconds_votes = time.perf_counter() - start
finally:
    server.terminate()
    server.wait(timeout=30)

print(f"{len(X_test)} texts in {seconds:.0f} s; usage: {clf.usage_.as_dict()}")
print(f"scoring used: {result.extra['scoring']} ({result.extra['scoring_reason']})")
print(f"probability mass outside the two labels' first tokens, first text: "
      f"{result.extra['uncovered_mass'][0]:.3f}")
print(f"accuracy {accuracy_score(y_test, clf.classes_[proba.argmax(1)]):.3f}, "
      f"ROC AUC {roc_auc_score(y_test == 'spam', proba[:, 1]):.3f}, "
      f"log loss {log_loss(y_test, proba, labels=clf.classes_):.3f} "
      f"on {len(y_test)} balanced texts")

votes = {round(float(p), 3): int(n) for p, n in
         zip(*np.unique(proba_votes[:, 1], return_counts=True), strict=True)}
print(f"\nself-consistency, 5 samples per text: {len(X_test)} texts in "
      f"{seconds_votes:.0f} s; usage: {voter.usage_.as_dict()}")
print(f"P(spam) values and how many texts got each: {votes}")
print(f"ROC AUC {roc_auc_score(y_test == 'spam', proba_votes[:, 1]):.3f}, "
      f"log loss {log_loss(y_test, proba_votes, labels=voter.classes_):.3f}")

# %%
# These are raw first-token probabilities of a 135M-parameter model: like the
# embedded backend's, they lean towards "spam" and need the calibration shown
# in :ref:`sphx_glr_auto_examples_plot_quickstart.py` before any threshold
# means anything. ``TemperatureScaler``, ``cross_validate`` and the response
# cache work with this backend exactly as with the embedded one.
#
# The self-consistency classifier needs no log-probabilities: it samples five
# short answers per text and counts the votes: with Laplace smoothing a text
# gets (c + 1) / (m + 2), where m of the 5 answers named a label and c said
# "spam" (``unmatched_answers`` counts the others). The llama.cpp server
# ignores the ``n`` parameter of a request, so the backend asks for the four
# missing samples one request at a time (seeds ``seed + j``); ``usage_``
# counts those requests. It is the fallback for models that hide
# log-probabilities, not a better signal: see the strategy benchmark in the
# user guide.

# %%
# Pointing the same code at OpenAI, vLLM or Ollama
# ------------------------------------------------
# Only the backend changes; everything else (calibration, cross-validation,
# caching) stays as in the other examples. Not executed here::
#
#     # OpenAI: the key is read from OPENAI_API_KEY at request time and never
#     # stored on the estimator. Chat models give first-token log-probs.
#     backend = OpenAIBackend("gpt-4o-mini")
#
#     # vLLM (or SGLang): /v1/completions echoes prompt log-probabilities, so
#     # scoring="auto" scores every token of multi-token labels exactly.
#     backend = OpenAIBackend("Qwen/Qwen2.5-7B-Instruct",
#                             base_url="http://gpu-box:8000/v1",
#                             endpoint="completions", max_concurrency=32)
#
#     # Ollama's OpenAI-compatible endpoint (chat, first token).
#     backend = OpenAIBackend("llama3.1", base_url="http://localhost:11434/v1")
#
#     clf = LLMClassifier(backend=backend, cache="responses.sqlite")
#
# Reasoning models (OpenAI o-series, gpt-5) return no log-probabilities: with
# the default strategy a row then fails with "no logprobs" and follows
# ``on_error``; ``strategy="consistency"`` or ``"verbalized"`` scores them from
# generated text instead.
