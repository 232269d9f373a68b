"""First use of an OpenAIBackend from several threads at once (issue #11, item 3)."""

import threading
import time

import numpy as np

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import OpenAIBackend

X_FIT = np.array(["cheap pills now", "see you at lunch"])
Y_FIT = np.array(["spam", "ham"])


def _hammer(clf, n_threads, n_calls):
    """``n_calls`` predict_proba calls on each of ``n_threads`` threads."""
    errors, shapes = [], []

    def work(t):
        time.sleep(0.01 * t)  # staggered, as requests arrive at a web service
        for i in range(n_calls):
            try:
                shapes.append(clf.predict_proba([f"thread {t} call {i}"]).shape)
            except Exception as exc:  # collected, asserted by the caller
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return errors, shapes


def test_threads_on_a_fresh_backend(fault_server):
    """8 threads x 10 calls on a fresh classifier: no exception, no lost row.

    The tokenizer and the label specification (logit_bias="auto" on a server
    with tokenize endpoints) are learned on first use. Before the fix the
    shared tokenizer was re-pointed at each call's client, so a thread could
    use another thread's client on its own event loop: "bound to a different
    event loop" / "Event loop is closed" (about 2 fresh backends in 3 raised
    on this serial server); a second fresh backend makes that likelier, and
    the old code always failed the learned-once check.
    """
    fault_server.serial = True  # one request at a time, like llama.cpp
    fault_server.latency = 0.005
    for n_calls in (10, 3):
        backend = OpenAIBackend("fake-model", base_url=fault_server.base_url,
                                api_key_env=None, max_retries=0, timeout=30.0)
        clf = LLMClassifier(backend=backend, n_shots=0, on_error="nan",
                            calibration=None)
        clf.fit(X_FIT, Y_FIT)
        fault_server.requests.clear()
        errors, shapes = _hammer(clf, 8, n_calls)
        assert errors == []
        assert shapes == [(1, 2)] * (8 * n_calls)
        # Learned once: a single empty-string tokenize request (BOS discovery).
        empties = [r for r in fault_server.requests
                   if r["path"] == "/extras/tokenize" and r["body"]["input"] == ""]
        assert len(empties) == 1
