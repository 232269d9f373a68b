"""The OpenAI-compatible backend: parameters, capabilities, scoring and generation.

Label scores come from the log-probabilities the server reports for the first
generated token (``top_logprobs``), or, where the server can echo prompt
log-probabilities (vLLM, SGLang ``/v1/completions``), from the exact log-probability
of every token of each label.
"""

from __future__ import annotations

import asyncio
import math
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import BackendCapabilities, BaseBackend, ScoreResult, Usage
from . import _echo, _generation
from ._client import (
    add_usage,
    describe,
    make_client,
    redact,
    resolve_api_key,
    run_coroutine,
    strip_url_credentials,
)
from ._matching import match_first_token, parse_alternatives
from ._state import learned_state
from ._tokenizer import ServerTokenizer, build_label_spec

__all__ = ["OpenAIBackend"]


class OpenAIBackend(BaseBackend):
    """Score labels through an OpenAI-compatible HTTP API.

    Parameters
    ----------
    model : str, default="gpt-4o-mini"
        Model name (for a llama.cpp server: its ``--model_alias``).
    base_url : str, default=None
        Server URL including ``/v1``, e.g. ``"http://127.0.0.1:8000/v1"``. None
        uses the SDK default (``OPENAI_BASE_URL`` or api.openai.com).
    api_key_env : str or callable, default="OPENAI_API_KEY"
        The *name* of the environment variable holding the key, or a callable
        returning the key. The key itself is read at request time and never
        stored on the estimator, so it never shows in ``get_params``, ``repr``,
        pickles, cache keys, warnings or logs. When ``base_url`` is set and the
        variable is unset or empty, the placeholder ``"EMPTY"`` is sent (local
        servers need a non-empty key but do not check it).
    endpoint : {"chat", "completions"}, default="chat"
        ``"chat"`` sends the prompt as the user message (chat template applied by
        the server) and reads the first answer token; the labels' leading spaces
        are irrelevant there. ``"completions"`` continues the raw prompt text.
    scoring : {"auto", "first_token", "full_sequence"}, default="auto"
        ``"first_token"`` reads the label's first token from ``top_logprobs``.
        ``"full_sequence"`` sends prompt+label to ``/v1/completions`` with
        ``echo=True`` and sums the log-probabilities of the label's tokens (one
        request per prompt and label; vLLM, SGLang). ``"auto"`` probes the server
        once (one small request, answer kept on the instance) and uses
        ``"full_sequence"`` when echo works, else ``"first_token"``; the choice
        and its reason are reported in ``ScoreResult.extra``. The chat endpoint
        has no prompt log-probabilities, so ``"auto"`` means first-token there.
    top_logprobs : int, default=20
        Alternatives requested per position (OpenAI allows at most 20).
    logit_bias : {"auto", True, False}, default="auto"
        Add one equal bias (:data:`LOGIT_BIAS_VALUE`) to the token ids of every
        label's first token (and its case/space variants that are single
        tokens). An equal bias keeps the ratios between labels and pulls labels
        into the top-k. Token ids need a tokenizer: only the llama.cpp servers'
        tokenize endpoints are supported. ``"auto"`` biases when one is found,
        ``True`` raises when none is found. Depending on the server, reported
        log-probabilities (and the uncovered mass) then refer to the biased
        distribution; ratios between labels do not change.
    missing_label : {"bound", "nan"}, default="bound"
        What a label absent from the top-k gets when at least one other label is
        present. ``"bound"``: the upper bound ``min(smallest shown log-prob,
        log(1 - shown mass))`` (its true log-probability can only be lower);
        ``"nan"``: NaN, so the classifier's ``on_error`` policy applies. A row with
        no label in the top-k is always NaN with an error message.
    max_concurrency : int, default=8
        Requests in flight at once.
    timeout : float, default=30.0
        Seconds per HTTP attempt.
    max_retries : int, default=2
        Retries of the SDK (connection errors, 408, 409, 429, >= 500), with
        exponential backoff that honours ``Retry-After``.
    system_prompt : str, default=None
        Optional system message (chat endpoint only).
    extra_body : dict, default=None
        Extra JSON fields sent with every request, for server-specific options
        the OpenAI API lacks, e.g. ``{"repeat_penalty": 1.0}`` for the
        llama-cpp-python server (whose default of 1.1 changes what it
        generates) or ``{"top_k": 50}`` for vLLM. Part of the cache key.

    Notes
    -----
    **First-token matching.** An alternative token matches a label when both,
    stripped of surrounding whitespace and case-folded, are equal to the label's
    first token (the whole label when no tokenizer is available, i.e. labels
    are then assumed to be single tokens). The label's log-probability is the
    log-sum-exp of all matching alternatives (``" Spam"``, ``"spam"``, ...): they
    are different spellings of the same answer, and their probabilities add.
    Labels whose first tokens coincide after this merging cannot be told apart
    and raise a ``ValueError``; use letter codes (``verbalizer="letters"``).

    **Failures.** A request that fails after the SDK's retries (HTTP error,
    timeout, dropped connection, malformed body, no log-probabilities) gives a
    NaN row and a short, secret-free message in ``ScoreResult.errors``; every
    other row is kept. Configuration errors (no key, bad parameters, ambiguous
    labels) raise.

    **Client lifetime.** An ``openai.AsyncOpenAI`` client is created on the first
    request of each :meth:`score_labels` call and closed at its end, because the
    async connection pool is bound to the event loop of that call.

    **Generation.** :meth:`generate` (used by the ``"verbalized"`` and
    ``"consistency"`` strategies) asks for all samples of a prompt in one
    request (``n=``). Servers that ignore ``n`` (llama-cpp-python) answer with
    one choice; the backend then requests the missing samples one by one, with
    seeds ``seed + j``, and remembers to do so at once for later prompts.

    ``ScoreResult.extra`` holds ``"uncovered_mass"`` (per row, ``1 - sum`` of the
    *observed* label probabilities, NaN for failed rows), ``"scoring"`` and
    ``"scoring_reason"``. ``Usage.calls`` counts requests made by this backend
    (SDK retries excluded).
    """

    # The learned state (see ._state.LearnedState) is dropped on pickling.
    _live_attributes = ("_learned",)

    _parameter_constraints: dict = {
        "model": [str],
        "base_url": [str, None],
        "api_key_env": [str, callable],
        "endpoint": [StrOptions({"chat", "completions"})],
        "scoring": [StrOptions({"auto", "first_token", "full_sequence"})],
        "top_logprobs": [Interval(Integral, 1, None, closed="left")],
        "logit_bias": [StrOptions({"auto"}), "boolean"],
        "missing_label": [StrOptions({"bound", "nan"})],
        "max_concurrency": [Interval(Integral, 1, None, closed="left")],
        "timeout": [Interval(Real, 0, None, closed="neither")],
        "max_retries": [Interval(Integral, 0, None, closed="left")],
        "system_prompt": [str, None],
        "extra_body": [dict, None],
    }

    def __init__(
        self,
        model="gpt-4o-mini",
        *,
        base_url=None,
        api_key_env="OPENAI_API_KEY",
        endpoint="chat",
        scoring="auto",
        top_logprobs=20,
        logit_bias="auto",
        missing_label="bound",
        max_concurrency=8,
        timeout=30.0,
        max_retries=2,
        system_prompt=None,
        extra_body=None,
    ):
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.endpoint = endpoint
        self.scoring = scoring
        self.top_logprobs = top_logprobs
        self.logit_bias = logit_bias
        self.missing_label = missing_label
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.system_prompt = system_prompt
        self.extra_body = extra_body


    # -- estimator plumbing -------------------------------------------------
    def _cache_irrelevant_params(self) -> set:
        return {"api_key_env", "max_concurrency", "timeout", "max_retries"}

    def cache_identity(self) -> dict:
        """Everything that changes the scores; no key, no performance knobs."""
        identity = super().cache_identity()
        if identity.get("base_url"):
            # Credentials embedded in a URL ("http://user:pw@host") stay out.
            identity["base_url"] = strip_url_credentials(identity["base_url"])
        return identity

    def capabilities(self) -> BackendCapabilities:
        """Describe this backend; the answer depends on its parameters only.

        ``full_sequence`` is True only for ``scoring="full_sequence"``. With
        ``scoring="auto"`` on the completions endpoint, the echo probe may still
        choose full-sequence scoring when :meth:`score_labels` first runs; that
        choice and its reason are reported per call in ``ScoreResult.extra``
        (``"scoring"``, ``"scoring_reason"``), never through this method, so
        ``strategy="auto"`` does not depend on call history.
        ``n_per_request`` is True: requests carry ``n=``; a server that ignores
        it is detected by :meth:`generate`, which then draws the missing
        samples one request at a time.
        """
        return BackendCapabilities(
            logprobs=True,
            full_sequence=self.scoring == "full_sequence",
            max_top_logprobs=self.top_logprobs,
            sampling=True,
            n_per_request=True,
        )

    def _api_key(self) -> str:
        return resolve_api_key(self.api_key_env, self.base_url)

    def _client(self, api_key):
        return make_client(api_key, base_url=self.base_url, timeout=self.timeout,
                           max_retries=self.max_retries)

    def _describe(self, exc) -> str:
        return describe(exc, timeout=self.timeout, max_retries=self.max_retries)

    # -- scoring ----------------------------------------------------------------
    def _score_labels(self, prompts, labels) -> ScoreResult:
        """Return ``log P(label | prompt)`` for every prompt and label.

        Parameters
        ----------
        prompts : list of Prompt
            Rendered prompts.
        labels : list of str
            Label strings as they would follow the prompt (e.g. ``" spam"``).

        Returns
        -------
        result : ScoreResult
            NaN rows with a message in ``errors`` for requests that failed.

        Raises
        ------
        ValueError
            Invalid parameters, or labels whose first tokens coincide.
        """
        if self.scoring == "full_sequence" and self.endpoint != "completions":
            raise ValueError(
                "scoring='full_sequence' needs endpoint='completions' (prompt "
                "log-probabilities exist only there)."
            )
        texts = [p.text for p in prompts]
        api_key = self._api_key()
        return run_coroutine(lambda: self._ascore(texts, labels, api_key))

    async def _ascore(self, texts, labels, api_key):
        async with self._client(api_key) as client:
            scoring, reason, spec = await self._learn(client, labels)
            sem = asyncio.Semaphore(self.max_concurrency)
            if scoring == "full_sequence":
                log_probs, uncovered, errors, usage = await self._score_full(
                    client, sem, texts, labels
                )
            else:
                outs = await asyncio.gather(
                    *(self._one_first(client, sem, text, spec) for text in texts)
                )
                log_probs = np.array([row for row, _, _, _ in outs])
                uncovered = np.array([unc for _, unc, _, _ in outs])
                errors = [err for _, _, err, _ in outs]
                usage = Usage()
                for *_, use in outs:
                    usage += use
        errors = [None if e is None else redact(e, api_key) for e in errors]
        extra = {
            "uncovered_mass": uncovered,
            "scoring": scoring,
            "scoring_reason": reason,
        }
        return ScoreResult(log_probs, errors=errors, usage=usage, extra=extra)

    async def _learn(self, client, labels):
        """Scoring mode, its reason and the label spec, learned once per server.

        Runs under the state's lock: a thread arriving while another learns
        waits (blocking its own event loop, which has nothing else to run yet)
        and then reuses the answer.
        """
        state = learned_state(self)
        with state.lock:
            scoring, reason = await self._resolve_scoring(client, state)
            spec = None
            if scoring == "first_token":
                spec = await self._label_spec(client, state, labels)
        return scoring, reason, spec

    async def _resolve_scoring(self, client, state):
        if self.scoring == "first_token":
            return "first_token", "requested"
        if self.scoring == "full_sequence":
            return "full_sequence", "requested"
        if self.endpoint == "chat":
            return "first_token", "chat endpoint reports no prompt log-probabilities"
        if state.scoring is not None:
            return state.scoring
        answer, definitive = await _echo.probe_echo(client, self.model, self.extra_body)
        if definitive:
            state.scoring = answer
        return answer

    async def _label_spec(self, client, state, labels):
        strings = [lab.lstrip() if self.endpoint == "chat" else lab for lab in labels]
        use_bias = self.logit_bias in ("auto", True)
        key = (tuple(strings), use_bias)
        if key in state.label_specs:
            return state.label_specs[key]
        if self.base_url is None:
            tok = None
        else:
            if not state.tokenizer_known:
                state.tokenizer = await ServerTokenizer.resolve(client, self.base_url)
            tok = state.tokenizer
        if self.logit_bias is True and tok is None:
            raise ValueError(
                "logit_bias=True needs token ids, but no tokenizer endpoint was "
                "found (only llama.cpp servers' /extras/tokenize or /tokenize are "
                "supported). Use logit_bias='auto' or False."
            )
        spec = await build_label_spec(client, tok, labels, strings, use_bias)
        state.label_specs[key] = spec
        return spec

    async def _one_first(self, client, sem, text, spec):
        """Score one prompt from its first token; never raises for a row failure."""
        usage = Usage()
        kwargs = {"model": self.model, "max_tokens": 1, "temperature": 0,
                  "extra_body": self.extra_body}
        if spec.bias:
            kwargs["logit_bias"] = spec.bias
        try:
            async with sem:
                usage.calls += 1
                if self.endpoint == "chat":
                    resp = await client.chat.completions.create(
                        messages=_generation.messages(text, self.system_prompt),
                        logprobs=True,
                        top_logprobs=self.top_logprobs,
                        **kwargs,
                    )
                else:
                    resp = await client.completions.create(
                        prompt=text, logprobs=self.top_logprobs, **kwargs
                    )
            add_usage(usage, resp)
            alts = parse_alternatives(resp, self.endpoint)
        except Exception as exc:
            return np.full(len(spec.keys), np.nan), math.nan, self._describe(exc), usage
        row, uncovered, error = match_first_token(alts, spec.keys, self.missing_label)
        return row, uncovered, error, usage

    async def _score_full(self, client, sem, texts, labels):
        """Full-sequence scores: one echo request per prompt and label."""
        n, k = len(texts), len(labels)
        outs = await asyncio.gather(*(
            _echo.score_full(client, sem, text, label, model=self.model,
                             extra_body=self.extra_body, describe=self._describe)
            for text in texts
            for label in labels
        ))
        log_probs = np.full((n, k), np.nan)
        uncovered = np.full(n, np.nan)
        errors: list = [None] * n
        usage = Usage()
        for idx, (value, err, use) in enumerate(outs):
            i, j = divmod(idx, k)
            usage += use
            if err is None:
                log_probs[i, j] = value
            elif errors[i] is None:
                errors[i] = err
        for i in range(n):
            if errors[i] is not None:
                log_probs[i] = np.nan
            else:
                uncovered[i] = max(0.0, 1.0 - float(np.exp(log_probs[i]).sum()))
        return log_probs, uncovered, errors, usage

    # -- text generation ----------------------------------------------------------
    def _generate(self, prompts, *, n_samples, temperature, max_tokens, seed,
                  stop):
        """Generate ``n_samples`` completions of every prompt.

        One request per prompt with ``n=n_samples`` (one request and repeated
        text at ``temperature=0``). When the server returns fewer choices than
        asked, the missing samples ``j`` are requested one at a time with
        ``seed + j`` (no seed when ``seed`` is None); the backend remembers that
        the server ignores ``n`` and goes straight to single requests later.
        Arguments are validated by :meth:`BaseBackend.generate`.

        Returns
        -------
        result : GenerationResult
            A prompt whose request (or any of its fill-up requests) failed after
            the SDK's retries has no texts and a short, secret-free error.
            ``usage.calls`` counts HTTP requests.
        """
        texts = [p.text for p in prompts]
        request = {
            "model": self.model,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "extra_body": self.extra_body,
        }
        if stop:
            request["stop"] = stop
        api_key = self._api_key()
        draws = 1 if temperature == 0 else n_samples
        state = learned_state(self)
        return run_coroutine(
            lambda: _generation.agenerate(self, state, texts, request, draws,
                                          n_samples, seed, api_key)
        )
