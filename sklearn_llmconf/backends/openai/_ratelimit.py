"""Client-side rate limits, and the server's rate-limit headers.

:class:`RateLimiter` spaces requests so that a client never sends more than
``max_requests_per_minute`` requests, nor (approximately) more than
``max_tokens_per_minute`` prompt tokens, in any minute, and pauses every
request when the server says so:

- ``Retry-After`` / ``retry-after-ms`` on an HTTP 429 or 503 answer
  (RFC 9110 section 10.2.3; OpenAI and Azure send it with 429);
- ``x-ratelimit-remaining-requests: 0`` or ``x-ratelimit-remaining-tokens: 0``
  on any answer, until ``x-ratelimit-reset-requests`` /
  ``x-ratelimit-reset-tokens`` (OpenAI's documented rate-limit headers, whose
  reset values read like ``"1s"``, ``"6m0s"`` or ``"20ms"``);
- and it keeps the server's request quota: with ``x-ratelimit-remaining-requests``
  = r it sends at most r more requests until the reported reset, then at most
  ``x-ratelimit-limit-requests`` per reset period, so that senders released
  together by a pause do not all hit the limit again.

Requests are spaced by ``60 s / max_requests_per_minute`` and, so that the
network's delays cannot bunch them at the server, request ``j`` is sent no
earlier than one window ``W = 60 s * n / max_requests_per_minute`` after the
*answer* to every request up to ``j - n`` (``n = max(1, rpm // 60)``): an
answer comes after its request arrived, so no window of length ``W`` on the
server's clock holds more than ``n`` arrivals, and no minute more than the
limit.

The limiter is thread-safe and holds no event loop, so one instance serves
every call of a backend (the classifier scores in batches, each batch a call
with its own event loop).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import deque

# Requests are spaced 1 % wider than 60 s / limit: timing jitter on the way
# to the server must not bunch two of them into one window.
_MARGIN = 1.01
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value) -> float | None:
    """Seconds in a reset header (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"0.5"``)."""
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts:
        return None
    return sum(float(n) * _UNIT_S[unit] for n, unit in parts)


def retry_after(headers) -> float | None:
    """Seconds asked by ``retry-after-ms`` or ``retry-after`` (numeric form)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def estimate_tokens(content: bytes) -> int:
    """Tokens a request will count against a tokens-per-minute quota.

    OpenAI counts ``max(max_tokens, estimate)`` style quotas from the
    character count of the prompt; here: prompt characters / 4 (rounded up)
    plus ``max_tokens`` times ``n``.
    """
    try:
        body = json.loads(content or b"{}")
    except ValueError:
        return max(1, len(content) // 4)
    if not isinstance(body, dict):
        return 1
    text = body.get("prompt") or ""
    if not isinstance(text, str):
        text = "".join(map(str, text))
    for message in body.get("messages") or []:
        text += str(message.get("content") or "")
    n_out = int(body.get("max_tokens") or 0) * int(body.get("n") or 1)
    return max(1, math.ceil(len(text) / 4) + n_out)


class RateLimiter:
    """Spacing of requests and tokens, plus server-directed pauses.

    Parameters
    ----------
    requests_per_minute : int or None
    tokens_per_minute : int or None
    """

    def __init__(self, requests_per_minute=None, tokens_per_minute=None):
        self.lock = threading.Lock()
        self.configure(requests_per_minute, tokens_per_minute)
        self.next_request = self.next_tokens = self.paused_until = 0.0
        self.pauses = 0
        # The server's request quota: requests left until ``quota_until``,
        # the limit per period, and the longest reset period seen.
        self.quota = self.quota_limit = None
        self.quota_until = self.quota_period = 0.0
        self.tickets: deque = deque()  # [answer time or None] of recent sends
        self.floor = -math.inf  # latest answer of the sends that left the log

    def configure(self, requests_per_minute, tokens_per_minute) -> None:
        """Set the limits (None: no limit)."""
        with self.lock:
            self.rpm, self.tpm = requests_per_minute, tokens_per_minute

    def _window(self):
        n = max(1, int(self.rpm // 60))
        return n, 60.0 * n / self.rpm

    def reserve(self, tokens: int):
        """Book the next slot for a request of ``tokens``.

        Returns
        -------
        delay : float or None
            Seconds to wait before sending; None: an earlier request must be
            answered first (ask again shortly), nothing was booked.
        ticket : list or None
            Pass to :meth:`answered` when the request's answer arrives.
        """
        with self.lock:
            now = time.monotonic()
            start = max(now, self.paused_until)
            ticket = None
            if self.rpm:
                n, window = self._window()
                while len(self.tickets) >= n:
                    done = self.tickets[0][0]
                    if done is None:
                        return None, None
                    self.floor = max(self.floor, done)
                    self.tickets.popleft()
                start = max(start, self.floor + window)
                ticket = [None]
                self.tickets.append(ticket)
            if self.rpm:
                start = max(start, self.next_request)
                self.next_request = start + _MARGIN * 60.0 / self.rpm
            if self.tpm:
                start = max(start, self.next_tokens)
                self.next_tokens = start + _MARGIN * 60.0 * tokens / self.tpm
            start = self._take_quota(start)
            return start - now, ticket

    def answered(self, ticket) -> None:
        """Record that the request booked with ``ticket`` was answered."""
        if ticket is not None:
            with self.lock:
                ticket[0] = time.monotonic()

    def _take_quota(self, start):
        """The slot at or after ``start`` within the server's request quota."""
        if self.quota is None:
            return start
        if start >= self.quota_until:
            if not self.quota_limit or not self.quota_period:
                self.quota = None
                return start
            # A new period: the full limit again.
            self.quota = self.quota_limit
            self.quota_until = start + self.quota_period
        if self.quota <= 0:
            start = self.quota_until
            self.quota = self.quota_limit or 1
            self.quota_until = start + self.quota_period
        self.quota -= 1
        return start

    def waiting(self) -> float:
        """Seconds left in a server-directed pause (0 when none)."""
        with self.lock:
            return max(0.0, self.paused_until - time.monotonic())

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds``."""
        with self.lock:
            until = time.monotonic() + seconds
            if until > self.paused_until:
                self.paused_until = until
                self.pauses += 1

    def observe(self, status: int, headers) -> None:
        """Pause as a response's headers ask."""
        if status in (429, 503):
            wait = retry_after(headers)
            if wait:
                self.pause(wait)
        self._observe_quota(headers)
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            if remaining is None:
                continue
            try:
                exhausted = float(remaining) <= 0
            except ValueError:
                continue
            if exhausted:
                wait = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
                if wait:
                    self.pause(wait)

    def _observe_quota(self, headers):
        try:
            remaining = int(float(headers["x-ratelimit-remaining-requests"]))
            reset = parse_duration(headers.get("x-ratelimit-reset-requests"))
            limit = int(float(headers.get("x-ratelimit-limit-requests") or 0))
        except (KeyError, ValueError, TypeError):
            return
        if reset is None:
            return
        with self.lock:
            now = time.monotonic()
            self.quota_limit = limit or self.quota_limit
            self.quota_period = max(self.quota_period, reset)
            if self.quota is None or now >= self.quota_until:
                self.quota, self.quota_until = remaining, now + reset
            else:
                # Answers arrive out of order: keep the smaller count.
                self.quota = min(self.quota, remaining)
