"""Pooled hidden states of a GGUF model through llama.cpp (embedding mode).

A model loaded with ``Llama(..., embedding=True, pooling_type=...)`` returns,
per text, its last layer's hidden states pooled over the text's tokens (mean)
or the last token's. One loaded model per (file, settings) per process, with
a bounded memo of the texts it embedded: cross-validation refits a pipeline
on the same texts, which then costs no second forward pass.
"""

from __future__ import annotations

import hashlib
import os
import threading

import numpy as np

from ...utils._bounded import BoundedDict, memoized_rows
from ...utils._optional import import_optional
from .._checkpoints import resolve_model_file
from ._model import without_extra_buffer_types

__all__ = ["EmbeddingModel", "embedding_model"]

_POOLING = {"mean": "LLAMA_POOLING_TYPE_MEAN", "last": "LLAMA_POOLING_TYPE_LAST"}


class EmbeddingModel:
    """A llama.cpp model in embedding mode, its lock and its memo of texts."""

    def __init__(self, llama, memo_size: int):
        self.llama = llama
        self.lock = threading.Lock()
        self.memo = BoundedDict(memo_size)
        self.dim = int(llama.n_embd())

    def embed(self, texts) -> np.ndarray:
        """``(len(texts), dim)`` float64 pooled hidden states (not normalised)."""
        keys = [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]

        def compute(first):
            with self.lock:
                vectors = self.llama.embed([texts[i] or " " for i in first],
                                           normalize=False, truncate=True)
            return [np.asarray(v, dtype=float) for v in vectors]

        out = np.empty((len(texts), self.dim))
        for i, vector in enumerate(memoized_rows(keys, self.memo, compute)):
            out[i] = vector
        return out


_MODELS = BoundedDict(4)
_MODELS_LOCK = threading.Lock()


def embedding_model(model_path=None, *, pooling="mean", n_ctx=512, n_threads=1,
                    memo_size=50_000) -> EmbeddingModel:
    """The shared embedding-mode model for these settings, loaded on first use.

    Parameters
    ----------
    model_path : str, path-like or None
        A GGUF file or a checkpoint name (``"smollm2-135m"``, ``"gemma3-270m"``);
        None: the default model.
    pooling : {"mean", "last"}
    n_ctx : int
        Tokens per text (longer texts are cut at the end) and per batch.
    n_threads : int
    memo_size : int
        Texts whose vectors are kept (least recently used out).

    Returns
    -------
    model : EmbeddingModel
    """
    named = resolve_model_file(model_path)
    path = os.path.realpath(named if named is not None else model_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GGUF model file not found: {model_path}")
    if pooling not in _POOLING:
        raise ValueError(f"pooling must be one of {sorted(_POOLING)}; got {pooling!r}.")
    key = (path, pooling, int(n_ctx), int(n_threads))
    with _MODELS_LOCK:
        if key not in _MODELS:
            llama_cpp = import_optional("llama_cpp", extra="local",
                                        needed_by="LlamaEmbedder")
            with without_extra_buffer_types():
                llama = llama_cpp.Llama(
                    model_path=path, embedding=True,
                    pooling_type=getattr(llama_cpp, _POOLING[pooling]),
                    n_ctx=int(n_ctx), n_batch=int(n_ctx), n_ubatch=int(n_ctx),
                    n_threads=int(n_threads), n_threads_batch=int(n_threads),
                    verbose=False)
            _MODELS[key] = EmbeddingModel(llama, memo_size)
        return _MODELS[key]
