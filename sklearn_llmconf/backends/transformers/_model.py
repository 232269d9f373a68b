"""Loading a Hugging Face causal LM once per process, threads, fingerprints."""

from __future__ import annotations

import copy
import hashlib
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from ...utils._bounded import BoundedDict
from ...utils._threads import ThreadChooser
from .._checkpoints import file_fingerprint

__all__ = ["resolve_device", "resolve_dtype", "torch_threads", "weights_fingerprint"]

_INSTALL_HINT = 'pip install "sklearn-llmconf[transformers]"'
# Files whose bytes decide what a model folder computes.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".json", ".model", ".txt",
                    ".jinja", ".py")


def import_torch_transformers():
    """Import torch and transformers, naming the extra when they are missing."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError(
            "TransformersBackend needs torch and transformers (and accelerate and "
            f"gguf for GGUF files), which are not installed. Install them with: "
            f"{_INSTALL_HINT}"
        ) from exc
    return torch, transformers


def _cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_device(device: str) -> str:
    """``"auto"``: ``"cuda"`` when a CUDA device is visible, else ``"cpu"``."""
    torch, _ = import_torch_transformers()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA device.")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """``"auto"``: bfloat16 on CUDA and on CPUs with native bfloat16, else float32."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        torch, _ = import_torch_transformers()
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if _cpu_has_bf16() else "float32"


_THREADS_LOCK = threading.RLock()


@contextmanager
def torch_threads(n_threads: int):
    """Run torch's intra-op pool with ``n_threads`` threads, then restore it.

    ``torch.set_num_threads`` is process-wide; the previous value is restored
    on exit, so a backend's setting holds while it computes and leaks nowhere.
    Calls are serialised (re-entrant for the same thread).
    """
    torch, _ = import_torch_transformers()
    with _THREADS_LOCK:
        previous = torch.get_num_threads()
        torch.set_num_threads(int(n_threads))
        try:
            yield
        finally:
            torch.set_num_threads(previous)


def split_source(source) -> tuple[str, str | None, bool]:
    """``(folder or hub id, gguf file name or None, is local)`` of a model source."""
    path = Path(source)
    if path.is_file():
        if path.suffix != ".gguf":
            raise ValueError(f"A model file must be a GGUF file, got {path}.")
        return str(path.parent.resolve()), path.name, True
    if path.is_dir():
        return str(path.resolve()), None, True
    text = str(source)
    if text.endswith(".gguf") or os.path.isabs(text) or text.startswith("."):
        raise FileNotFoundError(f"Model file or folder not found: {path}")
    return str(source), None, False


def _file_digest(path: str) -> str:
    return file_fingerprint(path)


def weights_fingerprint(folder: str, gguf_file: str | None) -> str:
    """SHA-256 over the bytes of the files that define a model.

    A GGUF file is hashed alone; a folder's weight, configuration and
    tokenizer files are hashed by name and content, in sorted order. Each file
    is hashed once per process and file version (path, size, mtime).

    Parameters
    ----------
    folder : str
    gguf_file : str or None

    Returns
    -------
    digest : str
    """
    if gguf_file is not None:
        return _file_digest(os.path.realpath(os.path.join(folder, gguf_file)))
    h = hashlib.sha256()
    files = sorted(p for p in Path(folder).rglob("*")
                   if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
                   and ".cache" not in p.parts)
    if not files:
        raise FileNotFoundError(f"No model files found in {folder}.")
    for p in files:
        h.update(str(p.relative_to(folder)).encode() + b"\0")
        h.update(_file_digest(os.path.realpath(p)).encode())
    return h.hexdigest()


def hub_folder(repo_id: str) -> str:
    """Local snapshot folder of a hub model (downloaded when not cached)."""
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id)


class LoadedModel:
    """A model and its tokenizer, with a lock serialising their use."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.lock = threading.RLock()
        self.attention_modules = [
            m for m in model.modules() if hasattr(m, "attention_dropout")
        ]
        self._choosers = {}

    def thread_chooser(self, max_threads: int) -> ThreadChooser:
        """The :class:`ThreadChooser` of torch's threads for this model, one per
        cap (``max_threads``); it sets them with ``torch.set_num_threads``,
        which :func:`torch_threads` restores after each call."""
        chooser = self._choosers.get(max_threads)
        if chooser is None:
            torch, _ = import_torch_transformers()
            chooser = ThreadChooser(max_threads, torch.set_num_threads)
            self._choosers[max_threads] = chooser
        return chooser

    @contextmanager
    def dropout(self, rate: float):
        """Attention dropout at ``rate`` in training mode, restored on exit."""
        if rate <= 0:
            yield
            return
        saved = [m.attention_dropout for m in self.attention_modules]
        if not saved:
            raise ValueError(
                f"{type(self.model).__name__} has no attention module with an "
                "attention_dropout attribute: mc_dropout cannot be applied."
            )
        for m in self.attention_modules:
            m.attention_dropout = float(rate)
        self.model.train()
        try:
            yield
        finally:
            self.model.eval()
            for m, value in zip(self.attention_modules, saved):
                m.attention_dropout = value


# One loaded model per (source, dtype, device) per process, shared by every
# clone of every estimator: cross-validation clones estimators, and reloading
# weights (15-28 s for the embedded model) would dominate the run time.
# At most MAX_LOADED_MODELS are kept (least recently used out): a long-running
# process cycling through model files does not keep every one in memory.
MAX_LOADED_MODELS = 8
_MODELS = BoundedDict(MAX_LOADED_MODELS)
_MODELS_LOCK = threading.Lock()


def load_model(folder: str, gguf_file: str | None, local: bool, dtype: str,
               device: str) -> LoadedModel:
    """Load (once per process) a causal LM and its tokenizer."""
    key = (folder, gguf_file, dtype, device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            torch, transformers = import_torch_transformers()
            same_weights = next((v for k, v in _MODELS.items()
                                 if k[:2] == key[:2]), None)
            if same_weights is not None:
                # Another dtype or device of loaded weights: a cast copy, the
                # same tensors a fresh load would give, without the slow load
                # (dequantizing a GGUF file).
                model = copy.deepcopy(same_weights.model).to(
                    device=device, dtype=getattr(torch, dtype))
                _MODELS[key] = LoadedModel(model.eval(), same_weights.tokenizer)
                return _MODELS[key]
            kwargs = {"local_files_only": local}
            if gguf_file is not None:
                kwargs["gguf_file"] = gguf_file
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                folder, dtype=getattr(torch, dtype), **kwargs
            )
            model.to(device)
            model.eval()
            model.requires_grad_(False)
            _MODELS[key] = LoadedModel(model, tokenizer)
        return _MODELS[key]
