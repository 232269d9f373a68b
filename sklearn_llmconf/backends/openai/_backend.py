"""The OpenAI-compatible backend: parameters, capabilities, scoring and generation.

Label scores come from the log-probabilities the server reports for the first
generated token (``top_logprobs``), or, where the server can echo prompt
log-probabilities (vLLM, SGLang ``/v1/completions``), from the exact log-probability
of every token of each label.
"""

from __future__ import annotations

import asyncio
import math
import re
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator

from ...utils._sklearn_compat import Interval, StrOptions
from .._base import BackendCapabilities, BaseBackend, ScoreResult, Usage
from . import _echo, _endpoint, _generation
from ._breaker import CircuitBreaker
from ._client import (
    _DroppedKeySource,
    add_usage,
    check_key_source,
    describe,
    make_client,
    redact,
    resolve_api_key,
    run_coroutine,
    strip_url_credentials,
    wrap_base_url,
)
from ._groups import plan_groups, score_grouped
from ._matching import FirstTokenMatch, match_first_token, parse_alternatives
from ._requests import first_token_body, send
from ._state import learned_state, learned_state_identity
from ._tokenizer import build_label_spec, resolve_tokenizer

__all__ = ["OpenAIBackend"]

# OpenAI's reasoning models: o1, o3, o4-mini, ..., and the gpt-5 family.
_REASONING_MODEL = re.compile(r"(?:.*/)?(?:o\d(?:$|[-_.])|gpt-5)")


class OpenAIBackend(BaseBackend):
    """Score labels through an OpenAI-compatible HTTP API.

    Parameters
    ----------
    model : str, default="gpt-4o-mini"
        Model name (for a llama.cpp server: its ``--model_alias``).
    base_url : str, default=None
        Server URL including ``/v1``, e.g. ``"http://127.0.0.1:8000/v1"``. None
        uses the SDK default (``OPENAI_BASE_URL`` or api.openai.com).
        Credentials in the URL (``"http://user:pw@host/v1"``) are sent as an
        HTTP Basic ``Authorization`` header; they are hidden in ``repr``, kept
        out of request logs, error messages and cache keys, but
        ``get_params()`` returns the URL as given (``clone`` needs it).
    api_key_env : str, callable or None, default="OPENAI_API_KEY"
        The *name* of the environment variable holding the key, a callable
        returning the key, or None for a server that needs no key (the
        placeholder ``"EMPTY"`` is sent: local servers need a non-empty key but
        do not check it). The key itself is read at request time and never
        stored on the estimator, so it never shows in ``get_params``, ``repr``,
        pickles, cache keys, warnings or logs. A string that looks like a key
        (starts with ``"sk-"``, or is long and not a valid variable name) is
        refused with a ``ValueError`` that does not print it. When ``base_url``
        is set and the variable is unset or empty, ``"EMPTY"`` is sent with a
        ``UserWarning`` (once per server and variable). A callable is dropped
        when the backend is pickled (it may hold the key): after unpickling,
        set it again or use a variable name.
    endpoint : {"auto", "chat", "completions"}, default="auto"
        ``"chat"`` sends the prompt as the user message (chat template applied by
        the server) and reads the first answer token; the labels' leading spaces
        are irrelevant there. ``"completions"`` continues the raw prompt text.
        ``"auto"`` finds out once per server and model which one ranks the
        labels (see Notes) and keeps the answer: :attr:`endpoint_` and
        ``ScoreResult.extra["endpoint"]`` show it, the cache identity holds it.
        Text generation with ``"auto"`` uses the chat endpoint.
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
        present. ``"bound"``: the upper bound ``min(n_spellings * smallest shown
        probability, 1 - shown mass)`` on its merged probability (its true
        log-probability can only be lower; ``n_spellings`` counts its case and
        leading-space variants); the row fails (NaN, with a reason) when that
        bound is not below the best observed label, because the most likely
        label is then unknown, and rows that keep a bound are flagged in
        ``ScoreResult.extra["bounded"]``. ``"nan"``: NaN, so the classifier's
        ``on_error`` policy applies. A row with no label in the top-k is always
        NaN with an error message.
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
    tokenizer : {"auto", "server", "tiktoken"} or callable, default="auto"
        Where label token ids (for ``logit_bias``) come from. ``"server"``: the
        llama.cpp servers' tokenize endpoints. ``"tiktoken"``: tiktoken's
        encoding for ``model`` (OpenAI models; ``pip install
        'sklearn-llmconf[tiktoken]'``). A callable maps a string to its token
        ids (no special tokens), e.g. a Hugging Face tokenizer's ``encode``
        with ``add_special_tokens=False``. ``"auto"``: the server's endpoints
        when ``base_url`` is set, else tiktoken when it is installed, else
        none (no bias).
    max_requests_per_minute : int, default=None
        Client-side limit on requests sent (SDK retries included), shared by
        all concurrent requests of a call; None: no limit.
    max_tokens_per_minute : int, default=None
        Client-side limit on prompt tokens sent per minute (estimated as
        characters / 4 when the prompt's tokens are not known); None: no
        limit. ``Retry-After`` and ``x-ratelimit-remaining-*`` /
        ``x-ratelimit-reset-*`` response headers pause sending whatever these
        are (see :mod:`._ratelimit`).

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

    **Logit bias on llama.cpp.** The llama-cpp-python server adds the bias to
    the logits used for *sampling* only; the log-probabilities it reports are
    the unbiased ones, and its ranked list is the unbiased top-k plus the
    generated token. A biased request therefore shows the best label (the
    generated token) but not the others: such rows fail with a reason instead
    of becoming a tie. With ``logit_bias`` active, labels tied at exactly the
    same log-probability (saturated or clipped by a server) also fail the row.

    **Circuit breaker.** After ``CIRCUIT_BREAKER_THRESHOLD`` (5) consecutive
    failures of one kind (HTTP 401, 403, 404, connection refused, could not
    connect), or ``TRANSIENT_THRESHOLD`` consecutive HTTP 429/5xx *attempts*
    (SDK retries counted, so an outage stops after a few requests) a call stops
    sending: the unsent rows fail with one message, and a call in which no
    request succeeded raises ``RuntimeError``.

    **Many labels.** When the biased tokens of all labels (every merged
    spelling) do not fit in ``top_logprobs`` alternatives, labels are scored
    in groups that share one anchor label, one request per group, and the
    groups are stitched onto one scale through the anchor (exact where the
    server reports biased log-probabilities, as OpenAI does; see
    :mod:`._groups`).

    **Choosing the endpoint** (``endpoint="auto"``): without ``base_url``
    (OpenAI) chat. Otherwise one ``/v1/completions`` request with log-probs;
    where it fails definitively (404, 400, no log-probs) chat. Where it
    answers and token ids are known, one chat request biased towards one
    token shows whether chat reports biased log-probs (OpenAI does, so chat
    then ranks every label); where it does not (llama-cpp-python applies the
    bias to sampling only) completions, which continues the prompt text where
    the labels are the likely next tokens. A transient failure of the probe
    (5xx, 429, no connection) raises ``RuntimeError`` naming the settings
    that skip it.

    ``ScoreResult.extra`` holds ``"uncovered_mass"`` (per row, ``1 - sum`` of the
    *observed* label probabilities, NaN for failed rows), ``"scoring"``,
    ``"scoring_reason"`` and, for first-token scoring, ``"bounded"`` (per row:
    some label got the upper bound). ``Usage.calls`` counts requests made by
    this backend (SDK retries excluded).
    """

    # The learned state (see ._state.LearnedState) is dropped on pickling.
    _live_attributes = ("_learned",)

    _parameter_constraints: dict = {
        "model": [str],
        "base_url": [str, None],
        "api_key_env": [str, callable, None],
        "endpoint": [StrOptions({"auto", "chat", "completions"})],
        "scoring": [StrOptions({"auto", "first_token", "full_sequence"})],
        "top_logprobs": [Interval(Integral, 1, None, closed="left")],
        "logit_bias": [StrOptions({"auto"}), "boolean"],
        "missing_label": [StrOptions({"bound", "nan"})],
        "max_concurrency": [Interval(Integral, 1, None, closed="left")],
        "timeout": [Interval(Real, 0, None, closed="neither")],
        "max_retries": [Interval(Integral, 0, None, closed="left")],
        "system_prompt": [str, None],
        "extra_body": [dict, None],
        "tokenizer": [StrOptions({"auto", "server", "tiktoken"}), callable],
        "max_requests_per_minute": [Interval(Integral, 1, None, closed="left"),
                                    None],
        "max_tokens_per_minute": [Interval(Integral, 1, None, closed="left"),
                                  None],
    }

    def __init__(
        self,
        model="gpt-4o-mini",
        *,
        base_url=None,
        api_key_env="OPENAI_API_KEY",
        endpoint="auto",
        scoring="auto",
        top_logprobs=20,
        logit_bias="auto",
        missing_label="bound",
        max_concurrency=8,
        timeout=30.0,
        max_retries=2,
        system_prompt=None,
        extra_body=None,
        tokenizer="auto",
        max_requests_per_minute=None,
        max_tokens_per_minute=None,
    ):
        # Refused before it is stored: a key here would reach repr and pickles.
        check_key_source(api_key_env)
        self.model = model
        # Equal to the string given; only its repr hides credentials.
        self.base_url = wrap_base_url(base_url)
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
        self.tokenizer = tokenizer
        self.max_requests_per_minute = max_requests_per_minute
        self.max_tokens_per_minute = max_tokens_per_minute

    # -- estimator plumbing -------------------------------------------------
    def set_params(self, **params):
        """Set parameters; a key given as ``api_key_env`` is refused unstored."""
        if "api_key_env" in params:
            check_key_source(params["api_key_env"])
        if "base_url" in params:
            params["base_url"] = wrap_base_url(params["base_url"])
        return super().set_params(**params)

    def __getstate__(self):
        # A copy first: on Python >= 3.11 object.__getstate__ returns the live
        # __dict__, and popping from it would strip the learned state (and its
        # lock) from a backend other threads are using.
        state = dict(BaseEstimator.__getstate__(self))
        for name in self._live_attributes:
            state.pop(name, None)
        if callable(state.get("api_key_env")):
            # A callable may hold the key (a bound method, a partial, a closure).
            state["api_key_env"] = _DroppedKeySource()
        return state

    def _cache_irrelevant_params(self) -> set:
        return {"api_key_env", "max_concurrency", "timeout", "max_retries",
                "max_requests_per_minute", "max_tokens_per_minute", "tokenizer"}

    def prepare(self):
        """Probe the endpoint once when ``endpoint="auto"`` (:meth:`resolve_endpoint`).

        Returns
        -------
        self : OpenAIBackend
        """
        self.resolve_endpoint()
        return self

    def cache_identity(self) -> dict:
        """Everything that changes the scores; no key, no performance knobs.

        Sends no request. With ``endpoint="auto"`` the endpoint is the one
        :meth:`prepare` (or a scoring call) learned, ``"auto"`` before that.
        """
        identity = super().cache_identity()
        if self.endpoint == "auto":
            # The endpoint changes the scores: key on the one the probe chose.
            identity["endpoint"] = self._known_endpoint() or "auto"
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
            logprobs=self.no_logprobs_reason is None,
            full_sequence=self.scoring == "full_sequence",
            max_top_logprobs=self.top_logprobs,
            sampling=True,
            n_per_request=True,
        )

    @property
    def no_logprobs_reason(self):
        """Why this model gives no log-probabilities, or None.

        OpenAI's reasoning models (o1, o3, o4-mini, the gpt-5 family) refuse
        ``logprobs``; known from the model name (no request). ``strategy="auto"``
        then falls back to self-consistency, with one warning.
        """
        if _REASONING_MODEL.match(str(self.model)):
            return (f"{self.model!r} is a reasoning model, which returns no "
                    "log-probabilities")
        return None

    def _api_key(self) -> str:
        check_key_source(self.api_key_env)  # also when assigned directly
        return resolve_api_key(self.api_key_env, self.base_url)

    def _client(self, api_key, breaker=None):
        limiter = learned_state(self).limiter
        limiter.configure(self.max_requests_per_minute, self.max_tokens_per_minute)
        return make_client(api_key, base_url=self.base_url, timeout=self.timeout,
                           max_retries=self.max_retries, limiter=limiter,
                           breaker=breaker)

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
        if self.scoring == "full_sequence" and self.endpoint == "chat":
            raise ValueError(
                "scoring='full_sequence' needs endpoint='completions' (prompt "
                "log-probabilities exist only there)."
            )
        texts = [p.text for p in prompts]
        api_key = self._api_key()
        return run_coroutine(lambda: self._ascore(texts, labels, api_key))

    async def _ascore(self, texts, labels, api_key):
        breaker = CircuitBreaker()
        async with self._client(api_key, breaker) as client:
            scoring, reason, spec = await self._learn(client, labels)
            sem = asyncio.Semaphore(self.max_concurrency)
            if scoring == "full_sequence":
                log_probs, uncovered, errors, usage = await self._score_full(
                    client, sem, breaker, texts, labels
                )
            else:
                endpoint = await self._resolve_endpoint(client, learned_state(self))

                def one(text, spec, labels):
                    return self._one_first(client, sem, breaker, text, spec,
                                           labels, endpoint)

                plan = None
                if spec.bias and spec.label_ids:
                    plan = plan_groups(spec.label_ids, self.top_logprobs)
                outs = await asyncio.gather(*(
                    one(text, spec, labels) if plan is None
                    else score_grouped(one, text, spec, labels, plan)
                    for text in texts
                ))
                log_probs = np.array([m.row for m, _ in outs])
                uncovered = np.array([m.uncovered for m, _ in outs])
                errors = [m.error for m, _ in outs]
                bounded = np.array([m.bounded for m, _ in outs], dtype=bool)
                usage = Usage()
                for _, use in outs:
                    usage += use
        breaker.raise_if_nothing_succeeded()
        errors = [None if e is None else redact(e, api_key) for e in errors]
        extra = {
            "uncovered_mass": uncovered,
            "scoring": scoring,
            "scoring_reason": reason,
            "endpoint": self.endpoint_,
        }
        if scoring == "first_token":
            extra["bounded"] = bounded
        return ScoreResult(log_probs, errors=errors, usage=usage, extra=extra)

    async def _learn(self, client, labels):
        """Scoring mode, its reason and the label spec, learned once per server.

        Runs under the state's lock: a thread arriving while another learns
        waits (blocking its own event loop, which has nothing else to run yet)
        and then reuses the answer. The chosen endpoint is kept in the state
        (:attr:`endpoint_`).
        """
        state = learned_state(self)
        with state.lock:
            endpoint = await self._resolve_endpoint(client, state)
            scoring, reason = await self._resolve_scoring(client, state, endpoint)
            spec = None
            if scoring == "first_token":
                spec = await self._label_spec(client, state, labels, endpoint)
        return scoring, reason, spec

    async def _resolve_endpoint(self, client, state):
        if self.endpoint != "auto":
            return self.endpoint
        if state.endpoint is None:
            if self.scoring == "full_sequence":
                state.endpoint = ("completions", "scoring='full_sequence'")
            elif self.base_url is None:
                state.endpoint = ("chat", _endpoint.OPENAI_REASON)
            else:
                state.endpoint = await _endpoint.probe_endpoint(
                    client, self, lambda: self._tokenizer(client, state)
                )
        return state.endpoint[0]

    def resolve_endpoint(self) -> str:
        """The endpoint first-token scoring uses, probing the server if needed.

        Returns ``endpoint`` unless it is ``"auto"``; then the probe's answer
        (one or two small requests, once per server and model).

        Returns
        -------
        endpoint : {"chat", "completions"}
        """
        if self.endpoint != "auto":
            return self.endpoint
        state = learned_state(self)
        if state.endpoint is None and self.base_url is None:
            state.endpoint = ("chat", _endpoint.OPENAI_REASON)
        if state.endpoint is None:
            api_key = self._api_key()

            async def probe():
                async with self._client(api_key) as client:
                    with state.lock:
                        return await self._resolve_endpoint(client, state)

            run_coroutine(probe)
        return state.endpoint[0]

    def _known_endpoint(self):
        """The endpoint, where it is known without a request; else None."""
        learned = self.endpoint_
        if learned is not None:
            return learned[0]
        if self.base_url is None:
            return "chat"  # as resolve_endpoint decides it, without a request
        if self.scoring == "full_sequence":
            return "completions"
        return None

    @property
    def endpoint_(self):
        """The endpoint in use and why, e.g. ``("completions", "...")``.

        None until the first scoring call (or :meth:`resolve_endpoint`) with
        ``endpoint="auto"``; ``(endpoint, "requested")`` otherwise.
        """
        if self.endpoint != "auto":
            return (self.endpoint, "requested")
        state = getattr(self, "_learned", None)
        if state is None or state.identity != learned_state_identity(self):
            return None
        return state.endpoint

    async def _resolve_scoring(self, client, state, endpoint):
        if self.scoring == "first_token":
            return "first_token", "requested"
        if self.scoring == "full_sequence":
            if endpoint != "completions":
                raise ValueError(
                    "scoring='full_sequence' needs endpoint='completions' (prompt "
                    "log-probabilities exist only there)."
                )
            return "full_sequence", "requested"
        if endpoint == "chat":
            return "first_token", "chat endpoint reports no prompt log-probabilities"
        if state.scoring is not None:
            return state.scoring
        answer, definitive = await _echo.probe_echo(client, self.model, self.extra_body)
        if definitive:
            state.scoring = answer
        return answer

    async def _tokenizer(self, client, state):
        """The label tokenizer (None: no token ids), looked for once."""
        if state.tokenizer_known:
            return state.tokenizer
        tok, definitive = await resolve_tokenizer(self, client)
        if definitive:
            state.tokenizer = tok
        return tok

    async def _label_spec(self, client, state, labels, endpoint):
        strings = [lab.lstrip() if endpoint == "chat" else lab for lab in labels]
        use_bias = self.logit_bias in ("auto", True)
        key = (tuple(strings), use_bias, endpoint)
        if key in state.label_specs:
            return state.label_specs[key]
        tok = await self._tokenizer(client, state)
        if self.logit_bias is True and tok is None:
            raise ValueError(
                "logit_bias=True needs token ids, but no tokenizer was found "
                "(the llama.cpp servers' /extras/tokenize or /tokenize, "
                "tokenizer='tiktoken' or a callable). Use logit_bias='auto' or "
                "False, or pass tokenizer=."
            )
        spec = await build_label_spec(client, tok, labels, strings, use_bias)
        if state.tokenizer_known:
            state.label_specs[key] = spec  # not after a transient failure
        return spec

    async def _one_first(self, client, sem, breaker, text, spec, labels, endpoint):
        """Score one prompt from its first token; never raises for a row failure."""
        usage = Usage()
        body = first_token_body(endpoint, model=self.model, text=text,
                                top_logprobs=self.top_logprobs, bias=spec.bias,
                                system_prompt=self.system_prompt)
        try:
            resp = await breaker.send(
                sem, usage,
                lambda: send(client, endpoint, body, self.extra_body, parse=False)
            )
            add_usage(usage, resp)
            top, chosen = parse_alternatives(resp, endpoint)
        except Exception as exc:
            return FirstTokenMatch(
                np.full(len(spec.keys), np.nan), math.nan, self._describe(exc)
            ), usage
        match = match_first_token(top, chosen, spec.keys, self.missing_label,
                                  labels=labels, n_spellings=spec.spellings,
                                  biased=bool(spec.bias))
        return match, usage

    async def _score_full(self, client, sem, breaker, texts, labels):
        """Full-sequence scores: one echo request per prompt and label."""
        n, k = len(texts), len(labels)
        outs = await asyncio.gather(*(
            _echo.score_full(client, sem, breaker, text, label, model=self.model,
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
