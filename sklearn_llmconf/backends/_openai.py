"""Backend for any OpenAI-compatible server: OpenAI, vLLM, SGLang, llama.cpp, Ollama.

Label scores come from the log-probabilities the server reports for the first
generated token (``top_logprobs``), or, where the server can echo prompt
log-probabilities (vLLM, SGLang ``/v1/completions``), from the exact log-probability
of every token of each label.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import re
from numbers import Integral, Real
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from .._sklearn_compat import Interval, StrOptions
from ._base import (
    BackendCapabilities,
    BaseBackend,
    GenerationResult,
    Prompt,
    ScoreResult,
    Usage,
)

__all__ = ["OpenAIBackend"]

# Added to the logit of every label-token id when ``logit_bias`` is active. Large
# enough to pull a label ranked far below the top-k into it, small enough that
# the non-label mass stays representable (a bias near 100 leaves 1 - sum(p) to
# round-off).
LOGIT_BIAS_VALUE = 10.0

_PROBE_PROMPT = "The capital of France is Paris"


class _RowError(Exception):
    """A per-row failure whose message is safe to show (no secrets, no bodies)."""


def _norm(token: str) -> str:
    # Servers report decoded text, but some leak the BPE/SentencePiece space marks.
    return token.replace("\u2581", " ").replace("\u0120", " ").strip().casefold()


def _logsumexp(values) -> float:
    m = max(values)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in values))


def _run_coroutine(factory):
    """Run ``factory()``'s coroutine to completion from synchronous code.

    Inside a running event loop (Jupyter, an async web app) ``asyncio.run`` is
    not allowed, so the coroutine then runs on a fresh loop in a worker thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


class _ServerTokenizer:
    """Token ids and texts from a llama.cpp-style server's tokenize endpoints.

    Supports llama-cpp-python (``/extras/tokenize``, ``/extras/detokenize``) and
    the C++ ``llama-server`` (``/tokenize``, ``/detokenize``, untested here).
    """

    def __init__(self, client, root, kind, model):
        self.client = client
        self.root = root
        self.kind = kind
        self.model = model
        self._bos: list[int] | None = None

    async def _post(self, path, body):
        import httpx2

        response = await self.client.post(
            self.root + path, cast_to=httpx2.Response, body=body
        )
        return response.json()

    @classmethod
    async def resolve(cls, client, base_url, model):
        parts = urlsplit(str(base_url))
        path = re.sub(r"/v1/?$", "", parts.path.rstrip("/"))
        root = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        for kind in ("extras", "cpp"):
            tok = cls(client, root, kind, model)
            try:
                ids = await tok.tokenize("Hello")
            except Exception:
                continue
            if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
                return tok
        return None

    async def tokenize(self, text: str) -> list[int]:
        if self.kind == "extras":
            data = await self._post("/extras/tokenize", {"input": text})
            ids = list(data["tokens"])
            # llama-cpp-python adds BOS here; learn it from the empty string.
            if self._bos is None:
                empty = await self._post("/extras/tokenize", {"input": ""})
                self._bos = list(empty["tokens"])
            if self._bos and ids[: len(self._bos)] == self._bos:
                ids = ids[len(self._bos) :]
            return ids
        data = await self._post("/tokenize", {"content": text, "add_special": False})
        return [t["id"] if isinstance(t, dict) else t for t in data["tokens"]]

    async def piece(self, token_id: int) -> str:
        if self.kind == "extras":
            data = await self._post("/extras/detokenize", {"tokens": [token_id]})
            return data["text"]
        data = await self._post("/detokenize", {"tokens": [token_id]})
        return data["content"]


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

    _live_attributes = (
        "_client", "_tokenizer_state", "_scoring_state", "_specs", "_n_state"
    )

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
            parts = urlsplit(identity["base_url"])
            netloc = parts.hostname or ""
            if parts.port:
                netloc += f":{parts.port}"
            identity["base_url"] = urlunsplit(parts._replace(netloc=netloc))
        return identity

    def capabilities(self) -> BackendCapabilities:
        """Describe this backend.

        ``full_sequence`` is True for ``scoring="full_sequence"``, and for
        ``"auto"`` once a probe found the server echo-capable. ``n_per_request``
        turns False once :meth:`generate` has seen the server ignore ``n``.
        """
        state = getattr(self, "_scoring_state", None)
        if self.scoring == "full_sequence":
            full = True
        elif self.scoring == "auto" and state is not None:
            full = state[0] == "full_sequence"
        else:
            full = False
        return BackendCapabilities(
            logprobs=True,
            full_sequence=full,
            max_top_logprobs=self.top_logprobs,
            sampling=True,
            n_per_request=getattr(self, "_n_state", None) is not False,
        )

    def _api_key(self) -> str:
        source = self.api_key_env
        key = source() if callable(source) else os.environ.get(source or "")
        if key:
            return str(key)
        if self.base_url is not None:
            return "EMPTY"
        name = getattr(source, "__name__", source)
        raise RuntimeError(
            f"No API key: {name!r} gave none. Set the environment variable, or "
            "pass base_url for a local server that needs no key."
        )

    def _make_client(self, api_key):
        import openai

        return openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    # -- public entry point ---------------------------------------------------
    def _score_labels(self, prompts, labels) -> ScoreResult:
        """Return ``log P(label | prompt)`` for every prompt and label.

        Parameters
        ----------
        prompts : sequence of Prompt or str
            Rendered prompts.
        labels : sequence of str
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
        texts = [p.text if isinstance(p, Prompt) else str(p) for p in prompts]
        if not texts:
            return ScoreResult(
                np.empty((0, len(labels))), extra={"uncovered_mass": np.empty(0)}
            )
        api_key = self._api_key()
        return _run_coroutine(lambda: self._ascore(texts, labels, api_key))

    async def _ascore(self, texts, labels, api_key):
        async with self._make_client(api_key) as client:
            self._client = client
            try:
                return await self._ascore_with(client, texts, labels, api_key)
            finally:
                self._client = None

    async def _ascore_with(self, client, texts, labels, api_key):
        scoring, reason = await self._resolve_scoring(client)
        sem = asyncio.Semaphore(self.max_concurrency)
        n, k = len(texts), len(labels)
        log_probs = np.full((n, k), np.nan)
        uncovered = np.full(n, np.nan)
        errors: list = [None] * n
        usage = Usage()

        if scoring == "full_sequence":
            jobs = [
                self._one_full(client, sem, text, label)
                for text in texts
                for label in labels
            ]
            outs = await asyncio.gather(*jobs)
            for idx, (value, err, use) in enumerate(outs):
                i, j = divmod(idx, k)
                usage += use
                if err is None:
                    log_probs[i, j] = value
                elif errors[i] is None:
                    errors[i] = _redact(err, api_key)
            for i in range(n):
                if errors[i] is not None:
                    log_probs[i] = np.nan
                else:
                    uncovered[i] = max(0.0, 1.0 - float(np.exp(log_probs[i]).sum()))
        else:
            keys, bias = await self._label_spec(client, labels)
            outs = await asyncio.gather(
                *(self._one_first(client, sem, text, keys, bias) for text in texts)
            )
            for i, (row, unc, err, use) in enumerate(outs):
                usage += use
                log_probs[i] = row
                uncovered[i] = unc
                errors[i] = None if err is None else _redact(err, api_key)
        extra = {
            "uncovered_mass": uncovered,
            "scoring": scoring,
            "scoring_reason": reason,
        }
        return ScoreResult(log_probs, errors=errors, usage=usage, extra=extra)

    # -- scoring strategy -------------------------------------------------------
    async def _resolve_scoring(self, client):
        if self.scoring == "first_token":
            return "first_token", "requested"
        if self.scoring == "full_sequence":
            return "full_sequence", "requested"
        if self.endpoint == "chat":
            return "first_token", "chat endpoint reports no prompt log-probabilities"
        state = getattr(self, "_scoring_state", None)
        if state is None:
            state, definitive = await self._probe_echo(client)
            if definitive:
                self._scoring_state = state
        return state

    async def _probe_echo(self, client):
        """Ask once whether ``/v1/completions`` echoes *correct* prompt log-probs.

        Two requests: the next-token log-probs after a probe prompt, then the
        prompt plus the top token with ``echo=True``. The echoed log-prob of that
        last token must equal the next-token one; llama-cpp-python, for one,
        echoes log-probs shifted by one position, which this rejects.

        Returns ((scoring, reason), definitive); a transient failure (connection,
        5xx) is not definitive and is not remembered.
        """
        import openai

        try:
            first = await client.completions.create(
                model=self.model,
                prompt=_PROBE_PROMPT,
                extra_body=self.extra_body,
                logprobs=1,
                max_tokens=1,
                temperature=0,
            )
            lp = first.choices[0].logprobs
            token, expected = lp.tokens[0], lp.token_logprobs[0]
            resp = await client.completions.create(
                model=self.model,
                prompt=_PROBE_PROMPT + token,
                extra_body=self.extra_body,
                echo=True,
                logprobs=1,
                max_tokens=1,
                temperature=0,
            )
        except openai.APIStatusError as exc:
            definitive = exc.status_code < 500
            return ("first_token", f"echo probe: HTTP {exc.status_code}"), definitive
        except openai.APIConnectionError as exc:
            return ("first_token", f"echo probe failed: {type(exc).__name__}"), False
        except Exception:
            return ("first_token", "echo probe: no usable logprobs"), True
        try:
            lp = resp.choices[0].logprobs
            end = len(_PROBE_PROMPT)
            echoed = [
                v
                for off, v in zip(lp.text_offset, lp.token_logprobs, strict=True)
                if off == end
            ]
        except Exception:
            return ("first_token", "echo probe: no prompt log-probabilities"), True
        if not echoed or echoed[0] is None:
            return ("first_token", "echo probe: prompt was not echoed"), True
        if abs(echoed[0] - expected) > 0.05:
            return (
                "first_token",
                "echo probe: echoed log-probs disagree with next-token log-probs "
                f"({echoed[0]:.3f} vs {expected:.3f})",
            ), True
        return ("full_sequence", "echo probe succeeded"), True

    # -- first-token scoring ----------------------------------------------------
    async def _label_spec(self, client, labels):
        """Return (normalised first-token key per label, logit_bias dict or None)."""
        strings = [lab.lstrip() if self.endpoint == "chat" else lab for lab in labels]
        cache_key = (tuple(strings), self.logit_bias, self.base_url, self.model)
        specs = getattr(self, "_specs", None)
        if specs is None:
            specs = self._specs = {}
        if cache_key in specs:
            return specs[cache_key]

        tok = await self._tokenizer(client)
        if self.logit_bias is True and tok is None:
            raise ValueError(
                "logit_bias=True needs token ids, but no tokenizer endpoint was "
                "found (only llama.cpp servers' /extras/tokenize or /tokenize are "
                "supported). Use logit_bias='auto' or False."
            )
        firsts, first_ids = [], []
        for s in strings:
            if tok is not None:
                ids = await tok.tokenize(s)
                if not ids:
                    raise ValueError(f"Label {s!r} has no tokens.")
                firsts.append(await tok.piece(ids[0]))
                first_ids.append(ids[0])
            else:
                firsts.append(s)
        keys = [_norm(f) for f in firsts]
        for lab, key in zip(labels, keys, strict=True):
            if not key:
                raise ValueError(f"Label {lab!r} has an empty first token.")
        seen: dict = {}
        for lab, key in zip(labels, keys, strict=True):
            if key in seen:
                raise ValueError(
                    f"Labels {seen[key]!r} and {lab!r} share their first token "
                    f"{key!r} (after merging case and leading-space variants), so "
                    "first-token scoring cannot tell them apart. Use single-token "
                    "labels that differ in their first token, e.g. letter codes "
                    "(verbalizer='letters' on the classifier), or full-sequence "
                    "scoring on a server that supports it."
                )
            seen[key] = lab

        bias = None
        if tok is not None and self.logit_bias in ("auto", True):
            ids = set(first_ids)
            # Bias every spelling that matching merges, or ratios would shift.
            for s, key in zip(strings, keys, strict=True):
                core = s.strip()
                for variant in {core, core.lower(), core.capitalize(), core.upper()}:
                    for v in (variant, " " + variant):
                        vid = await tok.tokenize(v)
                        if len(vid) == 1 and _norm(await tok.piece(vid[0])) == key:
                            ids.add(vid[0])
            bias = {str(i): LOGIT_BIAS_VALUE for i in sorted(ids)}
        specs[cache_key] = (keys, bias)
        return keys, bias

    async def _tokenizer(self, client):
        if self.base_url is None:
            return None
        state = getattr(self, "_tokenizer_state", None)
        if state is None:
            tok = await _ServerTokenizer.resolve(client, self.base_url, self.model)
            self._tokenizer_state = state = (tok,)
        tok = state[0]
        if tok is not None:
            tok.client = client  # the client of the current call
        return tok

    async def _one_first(self, client, sem, text, keys, bias):
        """Score one prompt; never raises for a per-row failure."""
        k = len(keys)
        nan_row = np.full(k, np.nan)
        usage = Usage()
        kwargs = {"model": self.model, "max_tokens": 1, "temperature": 0,
                  "extra_body": self.extra_body}
        if bias:
            kwargs["logit_bias"] = bias
        try:
            async with sem:
                usage.calls += 1
                if self.endpoint == "chat":
                    resp = await client.chat.completions.create(
                        messages=self._messages(text),
                        logprobs=True,
                        top_logprobs=self.top_logprobs,
                        **kwargs,
                    )
                else:
                    resp = await client.completions.create(
                        prompt=text, logprobs=self.top_logprobs, **kwargs
                    )
            _add_usage(usage, resp)
            alts = self._alternatives(resp)
        except Exception as exc:
            return nan_row, math.nan, _describe(exc, self), usage

        by_label: list[list[float]] = [[] for _ in range(k)]
        index = {key: j for j, key in enumerate(keys)}
        for token, value in alts:
            j = index.get(_norm(token))
            if j is not None:
                by_label[j].append(value)
        row = np.array([_logsumexp(v) if v else np.nan for v in by_label])
        observed = ~np.isnan(row)
        if not observed.any():
            return (
                nan_row,
                math.nan,
                f"none of the labels among the top-{len(alts)} alternatives",
                usage,
            )
        unc = min(1.0, max(0.0, 1.0 - float(np.exp(row[observed]).sum())))
        if not observed.all() and self.missing_label == "bound":
            shown = [v for _, v in alts]
            bound = min(shown)
            rest = 1.0 - sum(math.exp(v) for v in shown)
            if rest > 1e-12:
                bound = min(bound, math.log(rest))
            row[~observed] = bound
        return row, unc, None, usage

    def _alternatives(self, resp):
        """(token, logprob) alternatives for the first generated position."""
        if not getattr(resp, "choices", None):
            raise _RowError("response has no choices")
        lp = resp.choices[0].logprobs
        alts: list = []
        if self.endpoint == "chat":
            if lp is None or not lp.content:
                raise _RowError("response has no logprobs")
            first = lp.content[0]
            alts = [(a.token, a.logprob) for a in (first.top_logprobs or [])]
            chosen = (first.token, first.logprob)
        else:
            if lp is None or not lp.top_logprobs or not lp.top_logprobs[0]:
                raise _RowError("response has no logprobs")
            alts = list(lp.top_logprobs[0].items())
            chosen = (lp.tokens[0], lp.token_logprobs[0]) if lp.tokens else None
        if chosen is not None and chosen[0] not in {t for t, _ in alts}:
            alts.append(chosen)
        alts = [
            (str(t), float(v))
            for t, v in alts
            if v is not None and not math.isnan(float(v))
        ]
        if not alts:
            raise _RowError("response has no logprobs")
        return alts

    # -- full-sequence scoring ----------------------------------------------------
    async def _one_full(self, client, sem, text, label):
        """Exact ``log P(label | text)`` from echoed prompt log-probabilities.

        ``max_tokens=1`` rather than 0: some servers treat 0 as "no limit"; the
        generated token is ignored through its offset.
        """
        usage = Usage()
        try:
            async with sem:
                usage.calls += 1
                resp = await client.completions.create(
                    model=self.model,
                    prompt=text + label,
                    extra_body=self.extra_body,
                    echo=True,
                    logprobs=1,
                    max_tokens=1,
                    temperature=0,
                )
            _add_usage(usage, resp)
            lp = resp.choices[0].logprobs
            if lp is None or lp.token_logprobs is None or lp.text_offset is None:
                raise _RowError("response has no prompt logprobs (echo unsupported?)")
            start, end = len(text), len(text) + len(label)
            # Tokens overlapping the label's characters; a token straddling the
            # boundary is counted with the label.
            picked = [
                v
                for tok, off, v in zip(
                    lp.tokens, lp.text_offset, lp.token_logprobs, strict=True
                )
                if off < end and off + len(tok) > start
            ]
            if not picked or any(v is None for v in picked):
                raise _RowError("label tokens not found in the echoed prompt")
            return float(sum(picked)), None, usage
        except Exception as exc:
            return math.nan, _describe(exc, self), usage


    # -- text generation ----------------------------------------------------------
    def _generate(self, prompts, *, n_samples, temperature, max_tokens, seed,
                  stop) -> GenerationResult:
        """Generate ``n_samples`` completions of every prompt.

        One request per prompt with ``n=n_samples`` (one request and repeated
        text at ``temperature=0``). When the server returns fewer choices than
        asked, the missing samples ``j`` are requested one at a time with
        ``seed + j`` (no seed when ``seed`` is None).

        Parameters
        ----------
        prompts : sequence of Prompt or str
            Rendered prompts; the chat endpoint sends each as the user message.
        n_samples : int, default=1
            Completions per prompt.
        temperature : float, default=0.0
            Sampling temperature; 0 is greedy decoding.
        max_tokens : int, default=16
            Largest number of generated tokens per completion.
        seed : int or None, default=None
            Sent as the request's ``seed``; reproducible only where the server
            honours it (llama.cpp and vLLM do; OpenAI on a best-effort basis).
        stop : list of str or None, default=None
            At most 4 strings (an OpenAI limit).

        Returns
        -------
        result : GenerationResult
            A prompt whose request (or any of its fill-up requests) failed after
            the SDK's retries has no texts and a short, secret-free error.
            ``usage.calls`` counts HTTP requests.
        """
        texts = [p.text if isinstance(p, Prompt) else str(p) for p in prompts]
        if not texts:
            return GenerationResult([])
        request = {
            "model": self.model,
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
            "extra_body": self.extra_body,
        }
        if stop:
            request["stop"] = stop
        api_key = self._api_key()
        draws = 1 if temperature == 0 else int(n_samples)
        return _run_coroutine(
            lambda: self._agenerate(texts, request, draws, int(n_samples), seed,
                                    api_key)
        )

    async def _agenerate(self, texts, request, draws, n_samples, seed, api_key):
        async with self._make_client(api_key) as client:
            sem = asyncio.Semaphore(self.max_concurrency)
            outs = await asyncio.gather(
                *(self._one_generation(client, sem, text, request, draws, seed)
                  for text in texts)
            )
        usage = Usage()
        samples, errors = [], []
        for got, err, use in outs:
            usage += use
            if err is not None:
                samples.append([])
                errors.append(_redact(err, api_key))
            else:
                samples.append(got * n_samples if draws == 1 else got)
                errors.append(None)
        return GenerationResult(samples, errors=errors, usage=usage)

    async def _one_generation(self, client, sem, text, request, draws, seed):
        """All ``draws`` samples of one prompt; never raises for a row failure."""
        usage = Usage()
        got: list[str] = []
        try:
            if draws == 1 or getattr(self, "_n_state", None) is not False:
                got = await self._request_texts(client, sem, text, request, draws,
                                                seed, usage)
                if draws > 1:
                    # Remember whether the server honours n= (llama-cpp-python
                    # does not), so later prompts skip the wasted round trip.
                    self._n_state = len(got) >= draws
            if len(got) < draws:
                more = await asyncio.gather(*(
                    self._request_texts(client, sem, text, request, 1,
                                        None if seed is None else int(seed) + j,
                                        usage)
                    for j in range(len(got), draws)
                ))
                got += [t for texts in more for t in texts[:1]]
            if len(got) < draws:
                raise _RowError(f"server returned {len(got)} of {draws} samples")
        except Exception as exc:
            return [], _describe(exc, self), usage
        return got[:draws], None, usage

    async def _request_texts(self, client, sem, text, request, n, seed, usage):
        kwargs = dict(request)
        if n > 1:
            kwargs["n"] = n
        if seed is not None:
            kwargs["seed"] = int(seed)
        async with sem:
            usage.calls += 1
            if self.endpoint == "chat":
                resp = await client.chat.completions.create(
                    messages=self._messages(text), **kwargs
                )
            else:
                resp = await client.completions.create(prompt=text, **kwargs)
        _add_usage(usage, resp)
        choices = getattr(resp, "choices", None)
        if not choices:
            raise _RowError("response has no choices")
        choices = sorted(choices, key=lambda c: getattr(c, "index", 0) or 0)
        if self.endpoint == "chat":
            # A refusal or a reasoning model out of tokens has no content.
            return [(c.message.content or "") if c.message else "" for c in choices]
        return [c.text or "" for c in choices]

    def _messages(self, text):
        messages = [{"role": "user", "content": text}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages


def _add_usage(usage, resp):
    u = getattr(resp, "usage", None)
    if u is not None:
        usage.prompt_tokens += int(getattr(u, "prompt_tokens", 0) or 0)
        usage.completion_tokens += int(getattr(u, "completion_tokens", 0) or 0)


def _describe(exc, backend) -> str:
    """A short message built from the error *type*, never from response bodies."""
    import openai

    if isinstance(exc, _RowError):
        return str(exc)
    if isinstance(exc, openai.APITimeoutError):
        return (
            f"timed out after {backend.timeout} s "
            f"({backend.max_retries} retries exhausted)"
        )
    if isinstance(exc, openai.APIConnectionError):
        return f"connection error ({backend.max_retries} retries exhausted)"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} ({type(exc).__name__})"
    if isinstance(exc, ValueError):  # json.JSONDecodeError and friends
        return f"malformed response ({type(exc).__name__})"
    return f"request failed ({type(exc).__name__})"


def _redact(message: str, secret: str) -> str:
    if secret and secret != "EMPTY":
        message = message.replace(secret, "***")
    return message
