"""A per-call circuit breaker: stop sending once the server is plainly unusable.

A wrong key, a wrong ``base_url`` or model name, or a server that is down fail
every request the same way. Without a breaker a call over 10,000 rows makes
10,000 requests (each with the SDK's retries) only to fail them all.
"""

from __future__ import annotations

from ._client import _RowError

#: Consecutive failures of one kind (authentication, permission, not found,
#: cannot connect) after which a scoring or generation call stops sending
#: requests. Requests already in flight still finish, so a call makes at most
#: ``CIRCUIT_BREAKER_THRESHOLD + max_concurrency - 1`` requests once the
#: server fails this way.
CIRCUIT_BREAKER_THRESHOLD = 5

#: Consecutive HTTP 429 / 5xx *attempts* (SDK retries included, counted by the
#: transport) without an answered one after which a call stops sending: a
#: sustained outage or rate limit, not a blip that a retry would cover.
TRANSIENT_THRESHOLD = 8


class CircuitOpen(_RowError):
    """A row not sent because the breaker had opened."""


def failure_kind(exc) -> str | None:
    """The breaker-relevant kind of a failed request, or None (transient/other).

    Authentication (401), permission (403), not found (404) and failures to
    connect at all (refused, unknown host) say the configuration or the server
    is wrong; rate limits, 5xx, timeouts, dropped connections and malformed
    bodies do not (the SDK retries those, and rows may still succeed).
    """
    import openai

    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in (401, 403, 404):
            return f"HTTP {exc.status_code} ({type(exc).__name__})"
        return None
    if isinstance(exc, openai.APITimeoutError) or not isinstance(
        exc, openai.APIConnectionError
    ):
        return None
    chain, cause = [], exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(c, ConnectionRefusedError) for c in chain):
        return "connection refused"
    if any(type(c).__name__ == "ConnectError" for c in chain):
        return "connection failure (could not connect)"
    return None


class CircuitBreaker:
    """Counts consecutive failures of one kind within one call.

    Used from the coroutines of a single event loop, so it needs no lock.

    Parameters
    ----------
    threshold : int
        Consecutive failures of one kind that open the breaker.
    """

    def __init__(self, threshold=CIRCUIT_BREAKER_THRESHOLD):
        self.threshold = threshold
        self.kind = None
        self.count = 0
        self.successes = 0
        self.opened_by = None
        self.opened_after = threshold
        self.transient = 0

    @property
    def message(self) -> str:
        """Why requests stopped (secret-free)."""
        return (
            f"not sent: {self.opened_after} consecutive requests failed with "
            f"{self.opened_by}, so the remaining requests of this call were "
            "stopped (check base_url, model and the API key)"
        )

    def check(self) -> None:
        """Raise :class:`CircuitOpen` when the breaker is open."""
        if self.opened_by is not None:
            raise CircuitOpen(self.message)

    def failure(self, exc) -> None:
        """Record a failed request."""
        kind = failure_kind(exc)
        if kind is None:
            self.kind, self.count = None, 0
            return
        self.count = self.count + 1 if kind == self.kind else 1
        self.kind = kind
        if self.count >= self.threshold and self.opened_by is None:
            self.opened_by = kind

    def attempt(self, status: int) -> None:
        """Record one HTTP attempt's status (called by the transport)."""
        if status == 429 or status >= 500:
            self.transient += 1
            if self.transient >= TRANSIENT_THRESHOLD and self.opened_by is None:
                self.opened_after = self.transient
                kind = "rate limited" if status == 429 else "server error"
                self.opened_by = f"HTTP {status} ({kind}, SDK retries included)"
        elif status < 400:
            self.transient = 0

    def success(self) -> None:
        """Record an answered request."""
        self.kind, self.count = None, 0
        self.successes += 1

    def raise_if_nothing_succeeded(self) -> None:
        """A call whose every request failed this way raises instead of returning.

        Raises
        ------
        RuntimeError
            The breaker opened and no request of the call was answered.
        """
        if self.opened_by is not None and self.successes == 0:
            raise RuntimeError(
                f"No request succeeded: {self.opened_after} consecutive requests "
                f"failed with {self.opened_by} and the remaining ones were not "
                "sent. Check base_url, model and the API key (api_key_env)"
                + (", or wait for the server to recover (an outage or a rate "
                   "limit: max_requests_per_minute / max_tokens_per_minute "
                   "keep under a quota)." if self.transient else ".")
            )

    async def send(self, sem, usage, request):
        """Await ``request()`` under ``sem`` unless the breaker is open.

        Counts the request in ``usage.calls`` and records its outcome.
        """
        async with sem:
            self.check()
            usage.calls += 1
            try:
                resp = await request()
            except Exception as exc:
                self.failure(exc)
                raise
        self.success()
        return resp
