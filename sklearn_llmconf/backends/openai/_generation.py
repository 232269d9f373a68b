"""Text generation: ``n`` samples per prompt, with seeded fill-up requests."""

from __future__ import annotations

import asyncio

from .._base import GenerationResult, Usage
from ._client import _RowError, add_usage, make_client, redact


def messages(text, system_prompt):
    """The chat messages for one prompt."""
    out = [{"role": "user", "content": text}]
    if system_prompt is not None:
        out.insert(0, {"role": "system", "content": system_prompt})
    return out


async def agenerate(backend, state, texts, request, draws, n_samples, seed, api_key):
    """Generate for every text; see :meth:`OpenAIBackend._generate`."""
    async with make_client(
        api_key, base_url=backend.base_url, timeout=backend.timeout,
        max_retries=backend.max_retries,
    ) as client:
        sem = asyncio.Semaphore(backend.max_concurrency)
        outs = await asyncio.gather(
            *(_one_generation(backend, state, client, sem, text, request, draws, seed)
              for text in texts)
        )
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


async def _one_generation(backend, state, client, sem, text, request, draws, seed):
    """All ``draws`` samples of one prompt; never raises for a row failure."""
    usage = Usage()
    got: list[str] = []
    try:
        if draws == 1 or state.honours_n is not False:
            got = await _request_texts(backend, client, sem, text, request, draws,
                                       seed, usage)
            if draws > 1:
                # Remember whether the server honours n= (llama-cpp-python
                # does not), so later prompts skip the wasted round trip.
                state.honours_n = len(got) >= draws
        if len(got) < draws:
            more = await asyncio.gather(*(
                _request_texts(backend, client, sem, text, request, 1,
                               None if seed is None else int(seed) + j, usage)
                for j in range(len(got), draws)
            ))
            got += [t for texts in more for t in texts[:1]]
        if len(got) < draws:
            raise _RowError(f"server returned {len(got)} of {draws} samples")
    except Exception as exc:
        return [], backend._describe(exc), usage
    return got[:draws], None, usage


async def _request_texts(backend, client, sem, text, request, n, seed, usage):
    kwargs = dict(request)
    if n > 1:
        kwargs["n"] = n
    if seed is not None:
        kwargs["seed"] = int(seed)
    async with sem:
        usage.calls += 1
        if backend.endpoint == "chat":
            resp = await client.chat.completions.create(
                messages=messages(text, backend.system_prompt), **kwargs
            )
        else:
            resp = await client.completions.create(prompt=text, **kwargs)
    add_usage(usage, resp)
    choices = getattr(resp, "choices", None)
    if not choices:
        raise _RowError("response has no choices")
    choices = sorted(choices, key=lambda c: getattr(c, "index", 0) or 0)
    if backend.endpoint == "chat":
        # A refusal or a reasoning model out of tokens has no content.
        return [(c.message.content or "") if c.message else "" for c in choices]
    return [c.text or "" for c in choices]
