"""Label scoring through the OpenAI Batch API: one job per call, half the price."""

from __future__ import annotations

import os
from numbers import Real

import numpy as np

from ...utils._sklearn_compat import Interval, StrOptions
from .._base import ScoreResult, Usage
from . import OpenAIBackend
from ._batch_jobs import BatchStateFile, run_batch
from ._client import add_usage, redact, run_coroutine
from ._echo import _echoed_logprobs, echo_request
from ._matching import match_first_token, parse_alternatives
from ._requests import first_token_body

__all__ = ["OpenAIBatchBackend"]

_URLS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


class OpenAIBatchBackend(OpenAIBackend):
    """Score labels with the OpenAI Batch API instead of one request per prompt.

    Each :meth:`score_labels` call writes its requests as the Batch API's JSONL
    (the same requests :class:`OpenAIBackend` would send one by one), uploads
    it (``files.create(purpose="batch")``), creates the batch, polls it, then
    downloads the output and error files and maps every answer back to its row
    by ``custom_id``. Rows whose request failed, or never ran because the batch
    expired, failed or was cancelled, are NaN with a message, as with
    :class:`OpenAIBackend`; with a response cache, a rerun pays only for them.

    A call is one job: set the classifier's ``batch_size`` to the job size you
    want (the API takes up to 50,000 requests per job). The same JSONL is what
    vLLM's offline batch runner reads.

    Parameters
    ----------
    model, base_url, api_key_env, endpoint, scoring, top_logprobs, logit_bias, \
missing_label, max_concurrency, timeout, max_retries, system_prompt, extra_body
        As for :class:`OpenAIBackend` (``max_concurrency`` applies to the few
        online requests: the echo probe and the tokenizer). ``scoring="auto"``
        probes the server online once, as :class:`OpenAIBackend` does.
    completion_window : {"24h"}, default="24h"
        The Batch API's completion window.
    poll_interval : float, default=30.0
        Seconds between status polls.
    max_wait : float or None, default=None
        Stop waiting after this many seconds with a ``TimeoutError``; the job
        keeps running on the server. None waits until it ends.
    state_path : str, path-like or None, default=None
        A small JSON file holding the ids of submitted, not yet collected jobs,
        keyed by a hash of their requests: after an interruption (or
        ``max_wait``), calling again with the same texts resumes the running job
        instead of submitting (and paying for) it again. None keeps the ids in
        memory only, for this process.

    Notes
    -----
    **Cost.** ``ScoreResult.usage`` counts the requests that ran and the tokens
    the answers report; the Batch API bills them at its batch rate.
    ``ScoreResult.extra["batch"]`` holds the job id, its final status, its
    request counts and whether it was resumed.
    """

    _live_attributes = (*OpenAIBackend._live_attributes, "_state_file")

    _parameter_constraints: dict = {
        **OpenAIBackend._parameter_constraints,
        "completion_window": [StrOptions({"24h"})],
        "poll_interval": [Interval(Real, 0, None, closed="left")],
        "max_wait": [Interval(Real, 0, None, closed="left"), None],
        "state_path": [str, os.PathLike, None],
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
        completion_window="24h",
        poll_interval=30.0,
        max_wait=None,
        state_path=None,
    ):
        super().__init__(
            model, base_url=base_url, api_key_env=api_key_env, endpoint=endpoint,
            scoring=scoring, top_logprobs=top_logprobs, logit_bias=logit_bias,
            missing_label=missing_label, max_concurrency=max_concurrency,
            timeout=timeout, max_retries=max_retries, system_prompt=system_prompt,
            extra_body=extra_body,
        )
        self.completion_window = completion_window
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.state_path = state_path

    def _cache_irrelevant_params(self) -> set:
        return super()._cache_irrelevant_params() | {
            "completion_window", "poll_interval", "max_wait", "state_path"}

    # -- scoring ------------------------------------------------------------------
    def _score_labels(self, prompts, labels) -> ScoreResult:
        if self.scoring == "full_sequence" and self.endpoint != "completions":
            raise ValueError(
                "scoring='full_sequence' needs endpoint='completions' (prompt "
                "log-probabilities exist only there)."
            )
        texts = [p.text for p in prompts]
        api_key = self._api_key()
        scoring, reason, spec = run_coroutine(lambda: self._alearn(labels, api_key))
        if scoring == "full_sequence":
            requests = [(f"{i}-{j}", self._echo_body(text + label))
                        for i, text in enumerate(texts)
                        for j, label in enumerate(labels)]
        else:
            requests = [(str(i), self._first_token_body(text, spec.bias))
                        for i, text in enumerate(texts)]
        state = getattr(self, "_state_file", None)
        if state is None or state.path != self.state_path:
            state = BatchStateFile(self.state_path)
            self._state_file = state
        import openai

        client = openai.OpenAI(api_key=api_key, base_url=self.base_url,
                               timeout=self.timeout, max_retries=self.max_retries)
        with client:
            outcome = run_batch(
                client, requests, url=_URLS[self.endpoint],
                completion_window=self.completion_window, state=state,
                job_salt=f"{self.base_url}|{self.model}",
                poll_interval=self.poll_interval, max_wait=self.max_wait,
            )
        if scoring == "full_sequence":
            result = self._read_full(outcome, texts, labels)
        else:
            result = self._read_first(outcome, len(texts), spec, labels)
        log_probs, uncovered, errors, usage = result
        usage.calls += outcome.n_ran
        errors = [None if e is None else redact(e, api_key) for e in errors]
        extra = {
            "uncovered_mass": uncovered,
            "scoring": scoring,
            "scoring_reason": reason,
            "batch": {"id": outcome.batch_id, "status": outcome.status,
                      "request_counts": outcome.request_counts,
                      "resumed": outcome.resumed},
        }
        return ScoreResult(log_probs, errors=errors, usage=usage, extra=extra)

    async def _alearn(self, labels, api_key):
        async with self._client(api_key) as client:
            return await self._learn(client, labels)

    def _with_extra_body(self, body: dict) -> dict:
        # The SDK merges extra_body into the JSON top level; so does a batch line.
        return {**body, **(self.extra_body or {})}

    def _first_token_body(self, text, bias) -> dict:
        # The same request builder as the online backend.
        body = first_token_body(self.endpoint, model=self.model, text=text,
                                top_logprobs=self.top_logprobs, bias=bias,
                                system_prompt=self.system_prompt)
        return self._with_extra_body(body)

    def _echo_body(self, prompt) -> dict:
        body = echo_request(self.model, prompt, None)
        del body["extra_body"]
        return self._with_extra_body(body)

    def _response(self, body):
        from openai.types import Completion
        from openai.types.chat import ChatCompletion

        kind = ChatCompletion if self.endpoint == "chat" else Completion
        # Leniently, recursively, as the SDK builds the responses it receives.
        return kind.construct(**body)

    def _read_first(self, outcome, n, spec, labels):
        k = len(spec.keys)
        log_probs, uncovered = np.full((n, k), np.nan), np.full(n, np.nan)
        errors: list = [None] * n
        usage = Usage()
        for i in range(n):
            cid = str(i)
            if cid not in outcome.bodies:
                errors[i] = outcome.errors.get(cid, "no answer in the batch output")
                continue
            try:
                # The answer's JSON as it is: no SDK model to build for these reads.
                resp = outcome.bodies[cid]
                add_usage(usage, resp)
                alts = parse_alternatives(resp, self.endpoint)
            except Exception as exc:
                errors[i] = f"unreadable batch answer: {type(exc).__name__}"
                continue
            top, chosen = alts
            match = match_first_token(
                top, chosen, spec.keys, self.missing_label, labels=labels,
                n_spellings=spec.spellings, biased=bool(spec.bias))
            log_probs[i], uncovered[i], errors[i] = (
                match.row, match.uncovered, match.error)
        return log_probs, uncovered, errors, usage

    def _read_full(self, outcome, texts, labels):
        n, k = len(texts), len(labels)
        log_probs, uncovered = np.full((n, k), np.nan), np.full(n, np.nan)
        errors: list = [None] * n
        usage = Usage()
        for i, text in enumerate(texts):
            for j, label in enumerate(labels):
                cid = f"{i}-{j}"
                if cid not in outcome.bodies:
                    errors[i] = errors[i] or outcome.errors.get(
                        cid, "no answer in the batch output")
                    continue
                try:
                    resp = self._response(outcome.bodies[cid])
                    add_usage(usage, resp)
                    picked = _echoed_logprobs(resp, len(text), len(text) + len(label))
                    if not picked or any(v is None for v in picked):
                        raise ValueError("label tokens not found")
                    log_probs[i, j] = float(sum(picked))
                except Exception as exc:
                    errors[i] = errors[i] or (
                        f"unreadable batch answer: {type(exc).__name__}")
            if errors[i] is not None:
                log_probs[i] = np.nan
            else:
                uncovered[i] = max(0.0, 1.0 - float(np.exp(log_probs[i]).sum()))
        return log_probs, uncovered, errors, usage
