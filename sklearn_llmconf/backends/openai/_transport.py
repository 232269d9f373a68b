"""The HTTP transport under the SDK: every attempt passes a gate.

The SDK retries inside ``create()``, out of the backend's sight. A transport
sees each *attempt*, retries included, so this is where

- the :class:`._ratelimit.RateLimiter` books a slot before each attempt and
  reads the rate-limit headers of each answer;
- the call's :class:`._breaker.CircuitBreaker` counts consecutive HTTP 429 /
  5xx attempts, and refuses to send once it has opened. The refusal is an
  ``openai.OpenAIError``, which the SDK raises as it is, without retrying.
  While such a failure streak lasts, attempts go one at a time (a probe of
  the server rather than a burst), so an outage costs about
  ``TRANSIENT_THRESHOLD`` requests however high ``max_concurrency`` is.
"""

from __future__ import annotations

import asyncio

import httpx2
import openai
from openai._constants import DEFAULT_CONNECTION_LIMITS

from ._ratelimit import estimate_tokens, retry_after

#: Times one attempt is re-sent here after an HTTP 429 that says when to
#: come back (``Retry-After``), before the SDK sees the 429 and spends one of
#: its own retries: a rate limit is a wait, not a failure.
MAX_RATE_LIMIT_RESENDS = 4


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
        self._one_at_a_time = None

    async def _wait(self, request):
        """Wait for a slot; returns the limiter's ticket."""
        if self.limiter is None:
            return None
        # Parsing the body costs more than the rest of the gate: only for a
        # tokens-per-minute limit.
        tokens = estimate_tokens(request.content) if self.limiter.tpm else 0
        while True:
            delay, ticket = self.limiter.reserve(tokens)
            if delay is not None:
                break
            await asyncio.sleep(0.005)  # an earlier request is unanswered
        while delay > 0:
            await asyncio.sleep(delay)
            # A 429 may have asked for a pause while this attempt waited.
            delay = self.limiter.waiting()
        return ticket

    def _check(self):
        if self.breaker is not None and self.breaker.opened_by is not None:
            raise CircuitOpenError(self.breaker.message)

    async def handle_async_request(self, request):
        """Wait for a slot, send, and record the answer."""
        self._check()
        ticket = await self._wait(request)
        self._check()
        if self.breaker is not None and self.breaker.transient:
            if self._one_at_a_time is None:
                self._one_at_a_time = asyncio.Lock()
            async with self._one_at_a_time:
                self._check()
                return await self._send(request, ticket)
        return await self._send(request, ticket)

    async def _send(self, request, ticket):
        for resend in range(MAX_RATE_LIMIT_RESENDS + 1):
            try:
                response = await self._inner.handle_async_request(request)
            except BaseException:
                if self.limiter is not None:
                    self.limiter.answered(ticket)
                raise
            if self.limiter is not None:
                self.limiter.answered(ticket, response.status_code,
                                      response.headers)
            if self.breaker is not None:
                self.breaker.attempt(response.status_code)
            wait = retry_after(response.headers)
            if (response.status_code != 429 or wait is None or wait > 60
                    or resend == MAX_RATE_LIMIT_RESENDS
                    or (self.breaker is not None
                        and self.breaker.opened_by is not None)):
                return response
            await response.aclose()
            ticket = await self._wait(request)
        return response

    async def aclose(self):
        """Close the connection pool."""
        await self._inner.aclose()
