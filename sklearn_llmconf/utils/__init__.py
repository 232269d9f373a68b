"""Test doubles for the backend protocol and the OpenAI-compatible API, and a
loader guard for llama.cpp.

:class:`KeywordBackend` is a deterministic in-process backend for fast tests;
:class:`FaultServer` is a deterministic OpenAI-compatible HTTP server on
127.0.0.1 that injects faults (HTTP errors, timeouts, dropped connections,
malformed bodies) on request, and a fixed latency for benchmarks. Neither
involves a language model. :func:`without_extra_buffer_types` is the context
in which code that creates its own ``llama_cpp.Llama`` should do so (the
package's backend and server already do).
"""

from ..backends._llamacpp import without_extra_buffer_types
from ._fault_server import FaultServer
from ._testing import KeywordBackend

__all__ = ["FaultServer", "KeywordBackend", "without_extra_buffer_types"]
