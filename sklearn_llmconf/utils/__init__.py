"""Test doubles for the backend protocol and the OpenAI-compatible API.

:class:`KeywordBackend` is a deterministic in-process backend for fast tests;
:class:`FaultServer` is a deterministic OpenAI-compatible HTTP server on
127.0.0.1 that injects faults (HTTP errors, timeouts, dropped connections,
malformed bodies) on request, and a fixed latency for benchmarks. Neither
involves a language model.
"""

from ._fault_server import FaultServer
from ._testing import KeywordBackend

__all__ = ["FaultServer", "KeywordBackend"]
