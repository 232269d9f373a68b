"""The HTTP transport under the SDK: every attempt passes a gate.

The SDK retries inside ``create()``, out of the backend's sight. A transport
sees each *attempt*, retries included, so this is where

- the :class:`._ratelimit.RateLimiter` books a slot before each attempt and
  reads the rate-limit headers of each answer;
- the call's :class:`._breaker.CircuitBreaker` counts consecutive HTTP 429 /
  5xx attempts, and refuses to send once it has opened. The refusal is an
  ``openai.OpenAIError``, which the SDK raises as it is, without retrying.
"""

from __future__ import annotations

import asyncio

import httpx2
import openai
from openai._constants import DEFAULT_CONNECTION_LIMITS

from ._ratelimit import estimate_tokens


class CircuitOpenError(openai.OpenAIError):
    """An attempt not sent because the call's breaker had opened."""

    def __init__(self, message):
        super().__init__(message)
        self.row_message = message


class GatedTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2`` transport that rate-limits and counts attempts.

    Parameters
    ----------
    limiter : RateLimiter or None
    breaker : CircuitBreaker or None
    """

    def __init__(self, limiter=None, breaker=None):
        self._inner = httpx2.AsyncHTTPTransport(limits=DEFAULT_CONNECTION_LIMITS)
        self.limiter = limiter
        self.breaker = breaker

    async def _wait(self, request):
        if self.limiter is None:
            return
        delay = self.limiter.reserve(estimate_tokens(request.content))
        while delay > 0:
            await asyncio.sleep(delay)
            # A 429 may have asked for a pause while this attempt waited.
            delay = self.limiter.waiting()

    async def handle_async_request(self, request):
        """Wait for a slot, send, and record the answer."""
        if self.breaker is not None and self.breaker.opened_by is not None:
            raise CircuitOpenError(self.breaker.message)
        await self._wait(request)
        if self.breaker is not None and self.breaker.opened_by is not None:
            raise CircuitOpenError(self.breaker.message)
        response = await self._inner.handle_async_request(request)
        if self.limiter is not None:
            self.limiter.observe(response.status_code, response.headers)
        if self.breaker is not None:
            self.breaker.attempt(response.status_code)
        return response

    async def aclose(self):
        """Close the connection pool."""
        await self._inner.aclose()
