"""OpenAIBackend against a real llama.cpp server running SmolLM2-135M on loopback."""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

import numpy as np
import pytest
from scipy.special import softmax

from sklearn_llmconf import LLMClassifier, SelfConsistency, Verbalized
from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.utils._threads import default_n_threads
from tests._data import short_sms

pytestmark = [pytest.mark.slow, pytest.mark.server]

# Prompts after which SmolLM2 does not stop at once (an immediate end-of-text
# token makes llama.cpp return no log-probs: a NaN row with an error).
PROMPTS = [
    "Is the sky blue? Answer yes or no:",
    "Q: Is fire cold?\nA (yes or no):",
    "Do fish swim? yes or no? The answer is",
    "Is water wet? Reply with yes or no. Reply:",
]
LABELS = [" yes", " no"]
# Observed max |HTTP - embedded| = 2.9e-7 over 14 tokens (same llama.cpp code and
# logits; float32 round-off only).
TOLERANCE = 1e-4


def _gguf():
    from sklearn_llmconf.backends import default_model_path

    return default_model_path()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(
            "llama_cpp.server is not importable: pip install llama-cpp-python[server]"
        )
    try:
        import llama_cpp.server  # noqa: F401
    except Exception as exc:  # missing fastapi/uvicorn extras
        pytest.skip(f"llama_cpp.server is not importable ({type(exc).__name__})")
    gguf = _gguf()
    port = _free_port()
    cmd = [sys.executable, "-m", "sklearn_llmconf.backends.llama_server"]
    cmd += ["--model", str(gguf)]
    cmd += ["--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port)]
    # The package's own thread default (one per xdist worker, see conftest):
    # two spinning llama.cpp pools on two cores slow each other down 10x.
    threads = str(default_n_threads())
    cmd += ["--n_ctx", "2048", "--n_threads", threads, "--n_threads_batch", threads,
            "--logits_all", "true"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(base + "/v1/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not become ready in 120 s")
            time.sleep(0.3)
        yield base + "/v1"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


VARIANTS = {" yes": [" yes", "yes", " Yes", "Yes"], " no": [" no", "no", " No", "No"]}


@pytest.fixture(scope="module")
def embedded_logprobs():
    """Next-token log-softmax from llama_cpp.Llama on the raw prompts.

    Returns {prompt: (exact " yes"/" no" log-probs, variant-merged log-probs,
    {spelling: log-prob})}.
    """
    import llama_cpp

    from sklearn_llmconf.backends.llamacpp._backend import without_extra_buffer_types

    with without_extra_buffer_types():  # as the server under test loads it
        llm = llama_cpp.Llama(
            model_path=str(_gguf()), n_ctx=2048, n_threads=default_n_threads(),
            n_threads_batch=default_n_threads(), verbose=False,
        )
    out = {}
    for prompt in PROMPTS:
        llm.reset()
        tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.eval(tokens)
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        logits = logits.astype(np.float64)
        logp = logits - np.logaddexp.reduce(logits)
        exact, merged, spelled = [], [], {}
        for lab in LABELS:
            ids = [llm.tokenize(v.encode(), add_bos=False) for v in VARIANTS[lab]]
            assert all(len(i) == 1 for i in ids), ids  # single-token spellings
            exact.append(logp[ids[0][0]])
            merged.append(np.logaddexp.reduce([logp[i[0]] for i in ids]))
            spelled.update(
                {v: logp[i[0]] for v, i in zip(VARIANTS[lab], ids, strict=True)}
            )
        out[prompt] = (np.array(exact), np.array(merged), spelled)
    return out


def test_real_client_gets_logprobs(llama_server):
    import openai

    client = openai.OpenAI(base_url=llama_server, api_key="EMPTY", max_retries=0)
    chat = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": PROMPTS[0]}],
        max_tokens=1,
        logprobs=True,
        top_logprobs=5,
        temperature=0,
    )
    top = chat.choices[0].logprobs.content[0].top_logprobs
    assert len(top) >= 2 and all(t.logprob <= 0 for t in top)
    comp = client.completions.create(
        model="smollm2", prompt=PROMPTS[0], max_tokens=1, logprobs=5, temperature=0
    )
    assert len(comp.choices[0].logprobs.top_logprobs[0]) >= 2
    client.close()


def test_completions_match_embedded(llama_server, embedded_logprobs):
    import openai

    client = openai.OpenAI(base_url=llama_server, api_key="EMPTY", max_retries=0)
    diffs = []
    for prompt in PROMPTS:
        comp = client.completions.create(
            model="smollm2", prompt=prompt, max_tokens=1, logprobs=20, temperature=0
        )
        top = comp.choices[0].logprobs.top_logprobs[0]
        # Every label spelling the server shows, against the embedded value.
        for token, want in embedded_logprobs[prompt][2].items():
            if token in top:
                diffs.append(abs(top[token] - want))
    client.close()
    assert len(diffs) >= 2 * len(PROMPTS)
    print(f"{len(diffs)} tokens: max |HTTP - embedded| log-prob = {max(diffs):.2e}")
    assert max(diffs) < TOLERANCE

    # The backend merges the spellings (" Yes", "yes", ...) shown in the top-20:
    # never more than the sum over all spellings.
    backend = OpenAIBackend(
        "smollm2",
        base_url=llama_server,
        endpoint="completions",
        scoring="first_token",
        logit_bias=False,
        missing_label="nan",
        max_concurrency=2,
    )
    res = backend.score_labels(PROMPTS, LABELS)
    assert res.errors == [None] * len(PROMPTS)
    merged = np.array([embedded_logprobs[p][1] for p in PROMPTS])
    assert np.all(res.log_probs <= merged + TOLERANCE)
    assert np.all(res.log_probs > merged - 1.0)  # the main spellings are shown


def test_backend_end_to_end_on_real_server(llama_server):
    backend = OpenAIBackend("smollm2", base_url=llama_server, max_concurrency=2,
                            endpoint="chat")
    res = backend.score_labels(PROMPTS, LABELS)
    assert res.errors == [None] * len(PROMPTS)
    assert np.isfinite(res.log_probs).all() and (res.log_probs <= 0).all()
    unc = res.extra["uncovered_mass"]
    assert ((unc >= 0) & (unc <= 1)).all()
    # logit bias via /extras/tokenize: ratios between labels are unchanged.
    backend.set_params(logit_bias=False)
    plain = backend.score_labels(PROMPTS, LABELS).log_probs
    backend.set_params(logit_bias=True)
    biased = backend.score_labels(PROMPTS, LABELS).log_probs
    np.testing.assert_allclose(
        biased[:, 0] - biased[:, 1], plain[:, 0] - plain[:, 1], atol=1e-3
    )
    # Echo probe on llama.cpp: recorded reason, whatever it is.
    comp = OpenAIBackend("smollm2", base_url=llama_server, endpoint="completions")
    res = comp.score_labels(PROMPTS[:1], LABELS)
    # llama-cpp-python echoes log-probs shifted by one token: the probe says so.
    assert res.extra["scoring"] == "first_token"
    assert "disagree with next-token" in res.extra["scoring_reason"]
    assert res.errors == [None]


# -- generation: the "verbalized" and "consistency" strategies over HTTP --------------
def test_greedy_generation_matches_embedded(llama_server):
    """At temperature 0 the completions endpoint continues like the embedded model."""
    from sklearn_llmconf.backends import LlamaCppBackend, Prompt

    prompts = [Prompt((p,)) for p in PROMPTS]
    # The llama-cpp-python server applies repeat_penalty=1.1 unless told
    # otherwise (the embedded backend, like the OpenAI API, applies none); with
    # the default the first prompt's answer stops after "The answer is:".
    http = OpenAIBackend("smollm2", base_url=llama_server, endpoint="completions",
                         max_concurrency=1, extra_body={"repeat_penalty": 1.0})
    remote = http.generate(prompts, n_samples=2, max_tokens=10, temperature=0.0)
    local = LlamaCppBackend().generate(prompts, n_samples=2, max_tokens=10,
                                       temperature=0.0)
    assert remote.errors == [None] * len(PROMPTS)
    assert remote.texts == local.texts
    assert remote.usage.calls == len(PROMPTS)  # greedy: one request per prompt
    assert remote.usage.completion_tokens > 0


# Texts per generation test: each costs four sampled requests on the server.
N_GEN = 8


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_generation_strategies_on_real_server(llama_server, endpoint, tmp_path):
    from sklearn.frozen import FrozenEstimator

    from sklearn_llmconf import LLMClassifier, TemperatureScaler

    X_test, y_test, X_pool, y_pool = short_sms(N_GEN)
    backend = OpenAIBackend("smollm2", base_url=llama_server, endpoint=endpoint,
                            max_concurrency=2)
    # The sampled scores compose with TemperatureScaler. The server's sampled
    # answers are not bit-reproducible (llama-cpp-python reuses the previous
    # prompt's KV prefix, and a different split changes the logits slightly),
    # so the scaler reads them from a response cache, as a user's would: a row
    # that scored once is read back identically; a failed row is asked again.
    # The texts are sampled once (score_details, writing the cache); every
    # later call reads the rows that scored.
    cons = LLMClassifier(backend=backend,
                         strategy=SelfConsistency(n_samples=3, max_new_tokens=4),
                         n_shots=4, on_error="warn", random_state=0,
                         calibration=None, cache=str(tmp_path / "responses.sqlite"))
    cons.fit(X_pool, y_pool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        details = cons.score_details(X_test)
        # llama-cpp-python ignores n=: three seeded requests per text.
        assert cons.usage_.calls == N_GEN * 3
        proba = cons.predict_proba(X_test)
    stored = ~details.failed
    assert proba.shape == (N_GEN, 2) and list(cons.classes_) == ["ham", "spam"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # Laplace-smoothed shares of <= 3 votes, or uniform for a row with none.
    allowed = {(c + 1) / (m + 2) for m in range(1, 4) for c in range(m + 1)} | {0.5}
    assert all(min(abs(p - a) for a in allowed) < 1e-9 for p in proba[:, 1])
    # The rows that scored were read back from the cache, identically.
    np.testing.assert_array_equal(softmax(details.log_proba, axis=1)[stored],
                                  proba[stored])
    assert backend.capabilities().n_per_request is True  # stable

    # Verbalized answers are greedy (one request per text, 24 tokens each, the
    # generation's cost): half the texts show the same accounting.
    n_verb = N_GEN // 2
    verb = LLMClassifier(backend=backend, strategy=Verbalized(max_new_tokens=24),
                         n_shots=4, on_error="nan", calibration=None
                         ).fit(X_pool, y_pool)
    proba_v = verb.predict_proba(X_test[:n_verb])
    scored = ~np.isnan(proba_v).any(axis=1)
    assert verb.usage_.calls == n_verb and verb.usage_.failed_rows == (~scored).sum()
    np.testing.assert_allclose(proba_v[scored].sum(axis=1), 1.0)
    print(f"{endpoint}: verbalized parsed {scored.sum()} of {n_verb} answers")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if not stored.any():
            failed = f"All {N_GEN} calibration rows failed"
            with pytest.raises(ValueError, match=failed):
                TemperatureScaler(FrozenEstimator(cons), bias=True).fit(X_test, y_test)
            return
        ts = TemperatureScaler(FrozenEstimator(cons), bias=True).fit(X_test, y_test)
        calibrated = ts.predict_proba(X_test)
        # The stored rows, read back once more (the failed ones would only be
        # asked again, as above).
        again = cons.score_details([X_test[i] for i in np.flatnonzero(stored)])
    np.testing.assert_array_equal(again.log_proba, details.log_proba[stored])
    assert not again.failed.any()
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    assert calibrated.shape == (N_GEN, 2)
    assert not np.isnan(calibrated).any()


def test_default_settings_few_shot_never_coin_flip(llama_server):
    """Default OpenAIBackend on the llama.cpp server: 8 shots, 6 SMS (issue 21).

    llama-cpp-python applies logit_bias when sampling only and reports unbiased
    log-probs, so on its chat endpoint the labels of a few-shot SMS prompt are
    outside the top-20 and every row failed (issue 21: 40 of 40). The default
    endpoint="auto" finds that out once and scores with /v1/completions. The
    failure was the endpoint's, on every row: 6 rows (2 spam) show it as 10 did.
    """
    X_test, _, X_pool, y_pool = short_sms(6)
    # The server evaluates one ~450-token prompt at a time: on a shared 2-core
    # machine a request can wait longer than the default 30 s.
    backend = OpenAIBackend("smollm2", base_url=llama_server, api_key_env=None,
                            max_concurrency=2, timeout=180.0)
    clf = LLMClassifier(backend=backend, n_shots=8, calibration=None,
                        random_state=0).fit(X_pool, y_pool)
    proba = clf.predict_proba(X_test)  # on_error="raise": no failed row
    assert proba.shape == (6, 2)
    assert clf.usage_.failed_rows == 0
    assert not (np.abs(proba[:, 0] - 0.5) < 1e-12).any()
    endpoint, reason = backend.endpoint_
    assert endpoint == "completions"
    assert "without logit_bias" in reason
    assert backend.cache_identity()["endpoint"] == "completions"
