"""The embedded backend: llama-cpp-python in this process.

- ``_backend``: :class:`LlamaCppBackend`, the estimator (parameters, capabilities,
  scoring and generation entry points).
- ``_model``: loading GGUF files once per process, the default model's path.
- ``_scoring``: exact label scoring over llama.cpp's logits (binary, trie).
"""

from ._backend import LlamaCppBackend, default_model_path, without_extra_buffer_types

__all__ = ["LlamaCppBackend", "default_model_path", "without_extra_buffer_types"]
