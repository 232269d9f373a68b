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
- and it keeps the server's request quota: an answer saying
  ``x-ratelimit-remaining-requests`` = r was counted on arrival of its request,
  so the requests sent after that one have already taken from the r; at most
  ``r - (requests sent since)`` more go until the reported reset. Once the
  quota ran out, the first request after the reset goes alone and the others
  wait for its answer's fresh count, so senders released together by a pause
  do not all hit the limit again.

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
        self.sent = 0  # tickets booked so far: a ticket is [answer time, number]
        # The server's request quota: requests left until ``quota_until``, as
        # told by the answer to ticket number ``quota_of``; ``probe``: the
        # ticket sent alone after the quota ran out, until it is answered.
        self.quota = None
        self.quota_until, self.quota_of = 0.0, -1
        self.probe = None
        self.tickets: deque = deque()  # tickets of recent sends, for the window
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
            if self.probe is not None and self.probe[0] is None:
                return None, None  # the quota's fresh count is on its way
            start = max(now, self.paused_until)
            if self.rpm:
                n, window = self._window()
                while len(self.tickets) >= n:
                    done = self.tickets[0][0]
                    if done is None:
                        return None, None
                    self.floor = max(self.floor, done)
                    self.tickets.popleft()
                start = max(start, self.floor + window)
                start = max(start, self.next_request)
                self.next_request = start + _MARGIN * 60.0 / self.rpm
            if self.tpm:
                start = max(start, self.next_tokens)
                self.next_tokens = start + _MARGIN * 60.0 * tokens / self.tpm
            ticket = [None, self.sent]
            self.sent += 1
            start = self._take_quota(start, ticket)
            if self.rpm:
                self.tickets.append(ticket)
            return start - now, ticket

    def answered(self, ticket, status=None, headers=None) -> None:
        """Record that the request booked with ``ticket`` was answered.

        Parameters
        ----------
        ticket : list or None
            From :meth:`reserve`.
        status : int or None
            The answer's HTTP status (None: no answer, e.g. a network error).
        headers : mapping or None
            The answer's headers, read as :meth:`observe` does.
        """
        if ticket is not None:
            with self.lock:
                ticket[0] = time.monotonic()
        if headers is not None:
            self.observe(status, headers, ticket)

    def _take_quota(self, start, ticket):
        """The slot at or after ``start`` within the server's request quota."""
        if self.quota is None:
            return start
        if start >= self.quota_until and self.quota > 0:
            self.quota = None  # the period ended with requests to spare
            return start
        if self.quota > 0:
            self.quota -= 1
            return start
        # Ran out: this request goes after the reset, alone; the next ones
        # wait for its answer to say how many may follow.
        self.quota, self.probe = None, ticket
        return max(start, self.quota_until)

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

    def observe(self, status, headers, ticket=None) -> None:
        """Pause as a response's headers ask.

        Parameters
        ----------
        status : int or None
        headers : mapping
        ticket : list or None
            The ticket of the answered request (its number dates the quota).
        """
        if status in (429, 503):
            wait = retry_after(headers)
            if wait:
                self.pause(wait)
        self._observe_quota(headers, ticket)
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

    def _observe_quota(self, headers, ticket):
        try:
            remaining = int(float(headers["x-ratelimit-remaining-requests"]))
            reset = parse_duration(headers.get("x-ratelimit-reset-requests"))
        except (KeyError, ValueError, TypeError):
            return
        if reset is None:
            return
        with self.lock:
            number = self.sent - 1 if ticket is None else ticket[1]
            now = time.monotonic()
            if number < self.quota_of and now < self.quota_until:
                return  # an answer out of order: a later one has told more
            # Every request sent after this one took from ``remaining``.
            self.quota = remaining - (self.sent - 1 - number)
            self.quota_until, self.quota_of = now + reset, number
