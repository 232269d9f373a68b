"""Backend for any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp, Ollama).

One job per private module:

- ``_backend``: :class:`OpenAIBackend`, the estimator (parameters, capabilities,
  the scoring and generation entry points).
- ``_state``: what the backend learns from its server on first use, in one
  thread-safe object.
- ``_client``: API keys, the HTTP client's lifetime, secret-free error
  descriptions, running coroutines from synchronous code.
- ``_tokenizer``: the server's tokenize endpoints and the per-label
  specification (first-token keys, logit-bias token ids).
- ``_matching``: pure first-token matching and bound arithmetic over plain
  lists of ``(token, logprob)`` alternatives (no network).
- ``_echo``: the echo probe and full-sequence scoring from echoed prompt
  log-probabilities.
- ``_generation``: text generation (``n=`` samples, seeded fill-up requests).
"""

from ._backend import OpenAIBackend

__all__ = ["OpenAIBackend"]
