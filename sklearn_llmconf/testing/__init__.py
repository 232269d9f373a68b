"""Test doubles for the backend protocol and the OpenAI-compatible API.

:class:`KeywordBackend` is a deterministic in-process backend for fast tests;
:class:`FaultServer` is a deterministic OpenAI-compatible HTTP server on
127.0.0.1 that injects faults (HTTP errors, timeouts, dropped connections,
malformed bodies) on request, a fixed latency and a request quota for
benchmarks. Neither involves a language model. :class:`OpenAILikeServer` and
:class:`VLLMLikeServer` stand in for those providers on loopback, with every
log-probability computed by the embedded model (:class:`EmbeddedModel`).

This subpackage sits at the top of the import graph: it imports the package
and nothing in the package imports it. The servers are imported on first use,
so that ``from sklearn_llmconf.testing import KeywordBackend`` stays light.
"""

import importlib

from ._keyword_backend import KeywordBackend

__all__ = ["EmbeddedModel", "FaultServer", "KeywordBackend", "OpenAILikeServer",
           "VLLMLikeServer"]

_WHERE = {
    "EmbeddedModel": "._provider_servers",
    "OpenAILikeServer": "._provider_servers",
    "VLLMLikeServer": "._provider_servers",
    "FaultServer": "._fault_server",
}


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)


def __dir__():
    return sorted(__all__)
