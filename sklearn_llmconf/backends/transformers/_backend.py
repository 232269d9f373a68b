"""A Hugging Face causal LM in-process: exact label scoring, MC-dropout, generation."""

from __future__ import annotations

import os
import random
import time
from contextlib import ExitStack
from numbers import Integral, Real

import numpy as np

from ...utils._sklearn_compat import Interval, StrOptions
from ...utils._threads import default_n_threads
from ...utils._warn import warn_external
from .._base import (
    BackendCapabilities,
    BaseBackend,
    GenerationResult,
    ScoreResult,
    Usage,
)
from .._checkpoints import resolve_model_file
from .._local import first_token_ids, fit_to_context
from ._dropout import combine_passes
from ._model import (
    hub_folder,
    import_torch_transformers,
    load_model,
    resolve_device,
    resolve_dtype,
    split_source,
    torch_threads,
    weights_fingerprint,
)
from ._scoring import LabelTree, common_prefix_length, eval_prefix, score_rows

__all__ = ["TransformersBackend"]


def _seed(stack, torch, device, seed):
    """Seed torch's generator for ``device``; the caller's state comes back on exit."""
    if not getattr(stack, "_rng_forked", False):
        cuda = [device.index or 0] if device.type == "cuda" else []
        stack.enter_context(torch.random.fork_rng(devices=cuda,
                                                  device_type=device.type))
        stack._rng_forked = True
    torch.manual_seed(seed)


class TransformersBackend(BaseBackend):
    """Score labels exactly with a Hugging Face causal language model.

    For each prompt the log-probability of every label is the sum of its
    tokens' log-probabilities given the prompt (multi-token labels scored
    exactly). All labels of a prompt are evaluated in the prompt's own forward
    pass, as a token tree after the prompt (a 4-D attention mask lets each
    label token see the prompt and its own earlier tokens only), and several
    prompts share one forward pass, padded. The token prefix shared by all
    prompts of a call (instructions, fixed demonstrations) is evaluated once
    and its key/value cache reused by every prompt.

    Parameters
    ----------
    model : str or path-like, default=None
        A model folder (``save_pretrained`` layout), a GGUF file (loaded
        dequantized; needs ``gguf``), a model-hub id, or the name of a
        checkpoint this package obtains itself, ``"smollm2-135m"`` or
        ``"gemma3-270m"`` (see
        :func:`~sklearn_llmconf.backends.checkpoint_path`). None uses
        SmolLM2-135M-Instruct, the GGUF file
        :class:`~sklearn_llmconf.backends.LlamaCppBackend` uses by default
        (see :func:`~sklearn_llmconf.backends.default_model_path`).
    dtype : {"auto", "float32", "float64", "bfloat16", "float16"}, \
            default="auto"
        Weights and activations. ``"auto"``: bfloat16 on a CUDA device (float16
        where it lacks bfloat16), bfloat16 on a CPU that computes it natively
        (AVX512-BF16 or AMX), float32 otherwise. ``"float64"`` makes the
        batched scores equal to the one-prefix-at-a-time evaluation to about
        1e-12 (a check, 3-4x slower than float32).
    device : str, default="auto"
        A torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``). ``"auto"``: the
        CUDA device when torch sees one, else the CPU.
    n_threads : int, default=None
        torch's CPU threads while this backend computes (set and restored
        around each call: ``torch.set_num_threads`` is process-wide). An
        integer is used as given. None chooses the count by timing, between 1
        and all available cores capped by ``OMP_NUM_THREADS`` where it is set,
        as :class:`~sklearn_llmconf.backends.LlamaCppBackend` does: torch's
        OpenMP threads spin at barriers too, and on 2 cores beside one busy
        process 2 threads were about 1.6x slower than 1, where idle they were
        1.7x faster (``benchmarks/bench_shared_cpu.py --backend
        transformers``). The forward passes are timed with all, half and one
        of the cores, the fastest is kept and measured again as the machine
        changes (:class:`~sklearn_llmconf.utils._threads.ThreadChooser`).
    n_ctx : int, default=2048
        Most tokens of a prompt and its labels. A longer prompt is shortened by
        truncating the user's text fields at the end, with a warning.
    batch_size : int, default=8
        Rows per forward pass: prompts, or prompts times ``mc_samples``.
    scoring : {"full_sequence", "first_token"}, default="full_sequence"
        As in :class:`~sklearn_llmconf.backends.LlamaCppBackend`.
    mc_dropout : float, default=0.0
        Monte-Carlo dropout rate on the attention weights. 0 scores
        deterministically. Above 0 every prompt is scored in ``mc_samples``
        stochastic passes (all in one forward pass where ``batch_size``
        allows), the label probabilities averaged, and the passes' spread
        returned per row in the result's ``extra`` (``"mc_mutual_information"``
        and ``"mc_variance"``, of shape (n_prompts,), which reach
        ``LLMClassifier.score_details(X).extra``; ``"mc_pass_log_probs"``, of shape
        (n_prompts, mc_samples, n_labels), holds every pass). See the
        probabilities guide (``benchmarks/bench_mc_dropout.py``) for whether
        it helps.
    mc_samples : int, default=10
        Stochastic passes per prompt when ``mc_dropout > 0``.
    random_state : int, default=0
        Seed of the dropout masks: the same prompts in the same order and
        batches give the same scores.

    Notes
    -----
    The model is loaded lazily, once per process, source, dtype and device,
    and shared by all estimators using it; it is never pickled. The response
    cache identifies it by a SHA-256 of the weight files' bytes.

    With ``mc_dropout > 0`` the shared prefix is evaluated once per pass
    (each pass has its own dropout noise there too), so each prompt's passes
    are independent draws.
    """

    _live_attributes = ("_loaded",)

    _parameter_constraints: dict = {
        "model": [str, os.PathLike, None],
        "dtype": [StrOptions({"auto", "float32", "float64", "bfloat16", "float16"})],
        "device": [str],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "n_ctx": [Interval(Integral, 16, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "scoring": [StrOptions({"full_sequence", "first_token"})],
        "mc_dropout": [Interval(Real, 0, 1, closed="left")],
        "mc_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, model=None, *, dtype="auto", device="auto", n_threads=None,
                 n_ctx=2048, batch_size=8, scoring="full_sequence", mc_dropout=0.0,
                 mc_samples=10, random_state=0):
        self.model = model
        self.dtype = dtype
        self.device = device
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.batch_size = batch_size
        self.scoring = scoring
        self.mc_dropout = mc_dropout
        self.mc_samples = mc_samples
        self.random_state = random_state

    # -- configuration -------------------------------------------------------
    def _source(self) -> tuple[str, str | None, bool]:
        named = resolve_model_file(self.model)
        return split_source(self.model if named is None else named)

    def _resolved(self) -> tuple[str, str]:
        device = resolve_device(str(self.device))
        return resolve_dtype(self.dtype, device), device

    def _get_loaded(self):
        loaded = getattr(self, "_loaded", None)
        if loaded is None:
            folder, gguf_file, local = self._source()
            dtype, device = self._resolved()
            loaded = load_model(folder, gguf_file, local, dtype, device)
            self._loaded = loaded
        return loaded

    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            logprobs=True, full_sequence=self.scoring == "full_sequence",
            max_top_logprobs=None, sampling=True, n_per_request=True,
        )

    def cache_identity(self) -> dict:
        folder, gguf_file, local = self._source()
        if not local:
            folder = hub_folder(folder)
        dtype, device = self._resolved()
        identity = {
            "backend": type(self).__name__,
            "model": gguf_file or os.path.basename(folder.rstrip("/")),
            # The bytes, not the name: a fine-tuned copy must not reuse scores.
            "weights_sha256": weights_fingerprint(folder, gguf_file),
            "dtype": dtype,
            "device": device.split(":")[0],
            "n_ctx": int(self.n_ctx),
            "scoring": self.scoring,
        }
        if self.mc_dropout > 0:
            identity.update(mc_dropout=float(self.mc_dropout),
                            mc_samples=int(self.mc_samples),
                            random_state=int(self.random_state))
        return identity

    def _runtime(self, stack: ExitStack, loaded, *, dropout=0.0):
        """Enter the lock, thread setting, inference mode and dropout.

        Returns torch and the :class:`~sklearn_llmconf.utils._threads.ThreadChooser`
        that sets torch's threads (None when ``n_threads`` is given or the
        model is not on the CPU).
        """
        torch, _ = import_torch_transformers()
        stack.enter_context(loaded.lock)
        chooser = None
        if self.n_threads is None and loaded.model.device.type == "cpu":
            chooser = loaded.thread_chooser(default_n_threads())
            n_threads = chooser.begin()
        else:
            n_threads = self.n_threads or default_n_threads()
        stack.enter_context(torch_threads(n_threads))
        stack.enter_context(torch.inference_mode())
        stack.enter_context(loaded.dropout(dropout))
        return torch, chooser

    # -- tokens --------------------------------------------------------------
    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Tokenize ``text`` with the model's tokenizer."""
        tokenizer = self._get_loaded().tokenizer
        return list(tokenizer(text, add_special_tokens=add_special_tokens).input_ids)

    def _label_tokens(self, labels):
        label_tokens = [self.tokenize(lab, add_special_tokens=False) for lab in labels]
        for label, toks in zip(labels, label_tokens):
            if not toks:
                raise ValueError(f"Label {label!r} tokenizes to nothing.")
        return label_tokens

    def _fit_to_context(self, prompt, budget):
        """Tokenize a prompt, truncating its longest text field until it fits."""
        return fit_to_context(
            prompt, budget, tokenize=self.tokenize,
            tokenize_field=lambda text: self.tokenize(text, add_special_tokens=False),
            detokenize=lambda toks: self._get_loaded().tokenizer.decode(toks),
            n_ctx=self.n_ctx)

    def _prompt_tokens(self, prompts, budget, what):
        out, n_truncated = [], 0
        for prompt in prompts:
            tokens, truncated = self._fit_to_context(prompt, budget)
            out.append(tokens)
            n_truncated += truncated
        if n_truncated:
            warn_external(
                f"{n_truncated} of {len(prompts)} prompts were longer than the "
                f"context (n_ctx={self.n_ctx}){what}; their text was truncated at "
                "the end to fit.",
            )
        return out

    # -- scoring -------------------------------------------------------------
    def _score_labels(self, prompts, labels) -> ScoreResult:
        """Exact ``log P(label | prompt)`` for every prompt and label.

        Returns
        -------
        result : ScoreResult
            No NaN: every label is scored exactly. With ``mc_dropout > 0``,
            ``extra`` holds the passes' spread per prompt.
        """
        loaded = self._get_loaded()
        label_tokens = self._label_tokens(labels)
        first = None
        if self.scoring == "first_token":
            first = first_token_ids(labels, label_tokens)
        tree = LabelTree(label_tokens)
        n_nodes = 0 if first is not None else tree.n_nodes
        tokens = self._prompt_tokens(prompts, int(self.n_ctx) - n_nodes - 1, "")
        # Every prompt keeps at least one token of its own: its last position's
        # logits give the labels' first tokens.
        n_prefix = min(common_prefix_length(tokens), min(map(len, tokens)) - 1)
        passes = int(self.mc_samples) if self.mc_dropout > 0 else 1
        per_chunk = max(1, int(self.batch_size) // passes)
        out = np.empty((len(prompts), passes, len(labels)))
        usage = Usage(calls=len(prompts) * passes)
        with ExitStack() as stack:
            torch, threads = self._runtime(stack, loaded,
                                           dropout=float(self.mc_dropout))
            if passes > 1:
                _seed(stack, torch, loaded.model.device, int(self.random_state))
            prefix_kv = eval_prefix(loaded.model, tokens[0][:n_prefix], passes)
            usage.prompt_tokens += n_prefix * passes
            for start in range(0, len(prompts), per_chunk):
                chunk = range(start, min(start + per_chunk, len(prompts)))
                suffixes = [np.asarray(tokens[i][n_prefix:]) for i in chunk
                            for _ in range(passes)]
                kv = prefix_kv
                if kv is not None and passes > 1:
                    index = torch.arange(passes, device=loaded.model.device)
                    index = index.repeat(len(chunk))
                    kv = [(k[index], v[index]) for k, v in kv]
                started = time.perf_counter()
                scores, n_label = score_rows(loaded.model, kv, n_prefix, suffixes,
                                             tree, first_tokens=first)
                if threads is not None:
                    threads.record(sum(len(s) for s in suffixes) + n_label,
                                   time.perf_counter() - started)
                out[chunk.start:chunk.stop] = scores.reshape(len(chunk), passes, -1)
                usage.prompt_tokens += sum(len(s) for s in suffixes)
                usage.completion_tokens += n_label
        if passes == 1:
            return ScoreResult(out[:, 0], usage=usage)
        mean, extra = combine_passes(out)
        extra["mc_pass_log_probs"] = out
        return ScoreResult(mean, usage=usage, extra=extra)

    # -- generation ----------------------------------------------------------
    def _generate(self, prompts, *, n_samples, temperature, max_tokens, seed,
                  stop) -> GenerationResult:
        """Generate ``n_samples`` completions of every prompt.

        The samples of a prompt are drawn in one batched ``generate`` call
        seeded with ``seed`` (a fresh random seed when None), so results are
        reproducible; at ``temperature=0`` (greedy) one completion is
        generated and repeated. Text from the first stop string on is removed.

        Returns
        -------
        result : GenerationResult
            ``usage.calls`` counts completions generated.
        """
        loaded = self._get_loaded()
        if seed is None:
            seed = random.randrange(2**31)
        draws = 1 if temperature == 0 else int(n_samples)
        tokens = self._prompt_tokens(prompts, int(self.n_ctx) - int(max_tokens),
                                     f" minus max_tokens={max_tokens}")
        usage = Usage()
        texts, errors = [], []
        with ExitStack() as stack:
            torch, _ = self._runtime(stack, loaded)
            device = loaded.model.device
            for toks in tokens:
                _seed(stack, torch, device, int(seed))
                try:
                    outs, n_new = self._generate_one(loaded, toks, draws, temperature,
                                                     max_tokens, stop)
                except Exception as exc:  # a row fails, the batch goes on
                    texts.append([])
                    errors.append(f"generation failed: {type(exc).__name__}")
                    continue
                usage.calls += draws
                usage.prompt_tokens += len(toks)
                usage.completion_tokens += n_new
                texts.append(outs * int(n_samples) if draws == 1 else outs)
                errors.append(None)
        return GenerationResult(texts, errors=errors, usage=usage)

    @staticmethod
    def _generate_one(loaded, tokens, draws, temperature, max_tokens, stop):
        import torch

        model, tokenizer = loaded.model, loaded.tokenizer
        ids = torch.tensor([tokens], device=model.device)
        kwargs = dict(max_new_tokens=int(max_tokens), num_return_sequences=draws,
                      attention_mask=torch.ones_like(ids),
                      pad_token_id=tokenizer.pad_token_id
                      if tokenizer.pad_token_id is not None
                      else tokenizer.eos_token_id)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature),
                          top_k=0, top_p=1.0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
        generated = model.generate(ids, **kwargs)[:, len(tokens):]
        outs, n_new = [], 0
        eos = tokenizer.eos_token_id
        for row in generated.tolist():
            if eos in row:
                row = row[:row.index(eos) + 1]
            n_new += len(row)
            text = tokenizer.decode(row, skip_special_tokens=True)
            cut = min((text.index(s) for s in stop if s in text), default=len(text))
            outs.append(text[:cut])
        return outs, n_new
