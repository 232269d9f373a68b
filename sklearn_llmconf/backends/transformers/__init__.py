"""Hugging Face causal LMs in-process (torch and transformers imported lazily)."""

from ._backend import TransformersBackend

__all__ = ["TransformersBackend"]
