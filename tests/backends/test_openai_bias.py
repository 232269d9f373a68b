"""logit_bias on a server that applies it to sampling only (issue #11, item 7)."""

import numpy as np

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import OpenAIBackend
from sklearn_llmconf.testing._fault_server import next_token_logprobs

LABELS = [" ham", " spam"]
SPELLINGS = {" ham", "ham", "Ham", " spam", "spam", "Spam"}


def _labels_outside_top(prompts, k):
    out = []
    for p in prompts:
        ranked = sorted(next_token_logprobs(p).items(), key=lambda kv: -kv[1])
        if not {t for t, _ in ranked[:k]} & SPELLINGS:
            out.append(p)
    return out


def test_default_settings_fail_rows_instead_of_coin_flips(fault_server):
    """Before: exactly [0.5, 0.5] on every such row, with no error or warning.

    llama-cpp-python adds the bias to the logits it samples from, but reports
    the unbiased top-k plus the generated token. The generated token is the
    best label; the other label is absent, and the old bound (the smallest
    shown log-prob, i.e. the generated label's own) tied the two exactly.
    """
    fault_server.bias_in_logprobs = False
    prompts = _labels_outside_top([f"message {i}" for i in range(40)], 3)[:6]
    assert len(prompts) == 6
    backend = OpenAIBackend("fake-model", base_url=fault_server.base_url,
                            api_key_env=None, top_logprobs=3,
                            endpoint="chat")  # bias auto
    res = backend.score_labels(prompts, LABELS)
    assert "logit_bias" in fault_server.requests[-1]["body"]
    assert np.isnan(res.log_probs).all()
    assert all("logit_bias changed only the generated token" in e
               for e in res.errors)
    # Through the classifier: failed rows follow on_error, never a silent tie.
    clf = LLMClassifier(backend=backend, n_shots=0, on_error="nan",
                        calibration=None)
    clf.fit(["a b", "c d"], ["ham", "spam"])
    proba = clf.predict_proba(prompts)
    assert np.isnan(proba).all() and clf.usage_.failed_rows == 6


def test_server_reporting_biased_logprobs_keeps_rows(fault_server):
    prompts = _labels_outside_top([f"message {i}" for i in range(40)], 3)[:4]
    # Biased, the 6 label spellings lead the list: top-6 shows them all.
    backend = OpenAIBackend("fake-model", base_url=fault_server.base_url,
                            api_key_env=None, top_logprobs=6)
    res = backend.score_labels(prompts, LABELS)
    assert res.errors == [None] * 4 and np.isfinite(res.log_probs).all()
    # Equal bias: the ratio is the exact unbiased one.
    for p, row in zip(prompts, res.log_probs, strict=True):
        d = next_token_logprobs(p)
        want = (np.logaddexp.reduce([d[t] for t in (" ham", "ham", "Ham")])
                - np.logaddexp.reduce([d[t] for t in (" spam", "spam", "Spam")]))
        assert abs(row[0] - row[1] - want) < 1e-9
