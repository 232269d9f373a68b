"""The one place where chat and completions request bodies are built.

Every request the OpenAI-compatible backends send (first-token scoring,
generation, the endpoint probe, batch lines) is built here, so that the
difference between ``/v1/chat/completions`` (messages, ``logprobs=True`` +
``top_logprobs=k``) and ``/v1/completions`` (raw prompt, ``logprobs=k``) lives
in one module.
"""

from __future__ import annotations

#: Batch-API URL of each endpoint.
URLS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


def messages(text, system_prompt=None):
    """The chat messages for one prompt."""
    out = [{"role": "user", "content": text}]
    if system_prompt is not None:
        out.insert(0, {"role": "system", "content": system_prompt})
    return out


def first_token_body(endpoint, *, model, text, top_logprobs, bias=None,
                     system_prompt=None) -> dict:
    """Keyword arguments of a one-token request reporting ``top_logprobs``.

    Parameters
    ----------
    endpoint : {"chat", "completions"}
    model : str
    text : str
        The rendered prompt (the user message on the chat endpoint).
    top_logprobs : int
        Alternatives to report for the generated position.
    bias : dict or None
        The ``logit_bias`` field (token id as str -> bias).
    system_prompt : str or None
        System message (chat endpoint only).

    Returns
    -------
    body : dict
        Without ``extra_body``; :func:`send` adds it.
    """
    body = {"model": model, "max_tokens": 1, "temperature": 0}
    if bias:
        body["logit_bias"] = bias
    if endpoint == "chat":
        body.update(messages=messages(text, system_prompt), logprobs=True,
                    top_logprobs=top_logprobs)
    else:
        body.update(prompt=text, logprobs=top_logprobs)
    return body


def generation_body(endpoint, *, text, request, n=1, seed=None,
                    system_prompt=None) -> dict:
    """Keyword arguments of a text-generation request.

    ``request`` holds the shared fields (model, max_tokens, temperature,
    stop); ``n`` and ``seed`` are added when they matter.
    """
    body = {k: v for k, v in request.items() if k != "extra_body"}
    if n > 1:
        body["n"] = n
    if seed is not None:
        body["seed"] = int(seed)
    if endpoint == "chat":
        body["messages"] = messages(text, system_prompt)
    else:
        body["prompt"] = text
    return body


def send(client, endpoint, body, extra_body=None, *, parse=True):
    """The SDK coroutine sending ``body`` to ``endpoint``.

    Through the client's generic ``post`` (the SDK's documented way to send a
    body it does not build): the bodies built here are plain JSON already,
    and ``create`` would walk them against its typed parameters first. With
    ``parse=False`` the answer comes back as parsed JSON (a dict) rather than a
    ``ChatCompletion`` / ``Completion``. Scoring requests use it: the two steps
    skipped are about a third of the client's CPU time per request, which
    bounds the throughput at high concurrency
    (``benchmarks/bench_concurrency.py``). Retries, timeouts and the client's
    headers apply as with ``create``.
    """
    from openai.types import Completion
    from openai.types.chat import ChatCompletion

    cast_to = (object if not parse else
               ChatCompletion if endpoint == "chat" else Completion)
    return client.post(URLS[endpoint].removeprefix("/v1"),
                       body={**body, **(extra_body or {})}, cast_to=cast_to)


def batch_line(body, extra_body=None) -> dict:
    """A batch-file body: the SDK merges ``extra_body`` into the top level."""
    return {**body, **(extra_body or {})}
