"""API keys, client lifetime, secret-free error descriptions, running coroutines."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from urllib.parse import urlsplit, urlunsplit


class _RowError(Exception):
    """A per-row failure whose message is safe to show (no secrets, no bodies)."""


def run_coroutine(factory):
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


def resolve_api_key(source, base_url) -> str:
    """Return the key named by ``source`` (variable name or callable)."""
    key = source() if callable(source) else os.environ.get(source or "")
    if key:
        return str(key)
    if base_url is not None:
        return "EMPTY"
    name = getattr(source, "__name__", source)
    raise RuntimeError(
        f"No API key: {name!r} gave none. Set the environment variable, or "
        "pass base_url for a local server that needs no key."
    )


def make_client(api_key, *, base_url, timeout, max_retries):
    """A fresh ``openai.AsyncOpenAI``; bound to the event loop that uses it."""
    import openai

    return openai.AsyncOpenAI(
        api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
    )


def strip_url_credentials(url: str) -> str:
    """``url`` without the ``user:password@`` part of its network location."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def add_usage(usage, resp):
    """Add a response's token counts to ``usage``."""
    u = getattr(resp, "usage", None)
    if u is not None:
        usage.prompt_tokens += int(getattr(u, "prompt_tokens", 0) or 0)
        usage.completion_tokens += int(getattr(u, "completion_tokens", 0) or 0)


def describe(exc, *, timeout, max_retries) -> str:
    """A short message built from the error *type*, never from response bodies."""
    import openai

    if isinstance(exc, _RowError):
        return str(exc)
    if isinstance(exc, openai.APITimeoutError):
        return f"timed out after {timeout} s ({max_retries} retries exhausted)"
    if isinstance(exc, openai.APIConnectionError):
        return f"connection error ({max_retries} retries exhausted)"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} ({type(exc).__name__})"
    if isinstance(exc, ValueError):  # json.JSONDecodeError and friends
        return f"malformed response ({type(exc).__name__})"
    return f"request failed ({type(exc).__name__})"


def redact(message: str, secret: str) -> str:
    """``message`` with every occurrence of ``secret`` replaced by ``***``."""
    if secret and secret != "EMPTY":
        message = message.replace(secret, "***")
    return message
