"""Text generation: ``n`` samples per prompt, with seeded fill-up requests."""

from __future__ import annotations

import asyncio

from .._base import GenerationResult, Usage
from ._breaker import CircuitBreaker
from ._client import _RowError, add_usage, redact
from ._requests import generation_body, messages, send

__all__ = ["agenerate", "messages"]


def generation_endpoint(backend) -> str:
    """The endpoint text generation uses: chat unless completions is asked."""
    return "completions" if backend.endpoint == "completions" else "chat"


async def agenerate(backend, state, texts, request, draws, n_samples, seed, api_key):
    """Generate for every text; see :meth:`OpenAIBackend._generate`."""
    breaker = CircuitBreaker()
    async with backend._client(api_key, breaker) as client:
        sem = asyncio.Semaphore(backend.max_concurrency)
        outs = await asyncio.gather(*(
            _one_generation(backend, state, client, (sem, breaker), text, request,
                            draws, seed)
            for text in texts
        ))
    breaker.raise_if_nothing_succeeded()
    usage = Usage()
    samples, errors = [], []
    for got, err, use in outs:
        usage += use
        if err is not None:
            samples.append([])
            errors.append(redact(err, api_key))
        else:
            samples.append(got * n_samples if draws == 1 else got)
            errors.append(None)
    return GenerationResult(samples, errors=errors, usage=usage)


async def _one_generation(backend, state, client, gate, text, request, draws, seed):
    """All ``draws`` samples of one prompt; never raises for a row failure."""
    usage = Usage()
    got: list[str] = []
    try:
        if draws == 1 or state.honours_n is not False:
            got = await _request_texts(backend, client, gate, text, request, draws,
                                       seed, usage)
            if draws > 1:
                # Remember whether the server honours n= (llama-cpp-python
                # does not), so later prompts skip the wasted round trip.
                state.honours_n = len(got) >= draws
        if len(got) < draws:
            more = await asyncio.gather(*(
                _request_texts(backend, client, gate, text, request, 1,
                               None if seed is None else int(seed) + j, usage)
                for j in range(len(got), draws)
            ))
            got += [t for texts in more for t in texts[:1]]
        if len(got) < draws:
            raise _RowError(f"server returned {len(got)} of {draws} samples")
    except Exception as exc:
        return [], backend._describe(exc), usage
    return got[:draws], None, usage


async def _request_texts(backend, client, gate, text, request, n, seed, usage):
    endpoint = generation_endpoint(backend)
    body = generation_body(endpoint, text=text, request=request, n=n, seed=seed,
                           system_prompt=backend.system_prompt)
    sem, breaker = gate  # the call's semaphore and circuit breaker

    def request():
        return send(client, endpoint, body, backend.extra_body)

    resp = await breaker.send(sem, usage, request)
    add_usage(usage, resp)
    choices = getattr(resp, "choices", None)
    if not choices:
        raise _RowError("response has no choices")
    choices = sorted(choices, key=lambda c: getattr(c, "index", 0) or 0)
    if endpoint == "chat":
        # A refusal or a reasoning model out of tokens has no content.
        return [(c.message.content or "") if c.message else "" for c in choices]
    return [c.text or "" for c in choices]
