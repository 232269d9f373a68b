"""Test doubles for the backend protocol and the OpenAI-compatible API, and a
loader guard for llama.cpp.

:class:`KeywordBackend` is a deterministic in-process backend for fast tests;
:class:`FaultServer` is a deterministic OpenAI-compatible HTTP server on
127.0.0.1 that injects faults (HTTP errors, timeouts, dropped connections,
malformed bodies) on request, a fixed latency and a request quota for
benchmarks. Neither involves a language model. :class:`OpenAILikeServer` and
:class:`VLLMLikeServer` stand in for those providers on loopback, with every
log-probability computed by the embedded model (:class:`EmbeddedModel`).
:func:`without_extra_buffer_types` is the context in which code that creates
its own ``llama_cpp.Llama`` should do so (the package's backend and server
already do).

The private modules hold what the rest of the package shares: ``_warn``
(warnings attributed to the caller), ``_sklearn_compat`` (the one importer of
private scikit-learn names), ``_optional`` (optional dependencies). The public
names are imported on first use, so that importing ``sklearn_llmconf.utils._warn``
from any module does not import the backends.
"""

import importlib

__all__ = ["EmbeddedModel", "FaultServer", "KeywordBackend", "OpenAILikeServer",
           "VLLMLikeServer", "without_extra_buffer_types"]

_WHERE = {
    "EmbeddedModel": "._provider_servers",
    "OpenAILikeServer": "._provider_servers",
    "VLLMLikeServer": "._provider_servers",
    "FaultServer": "._fault_server",
    "KeywordBackend": "._testing",
    "without_extra_buffer_types": "..backends.llamacpp",
}


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)


def __dir__():
    return sorted(__all__)
