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
  reset values read like ``"1s"``, ``"6m0s"`` or ``"20ms"``).

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

    def configure(self, requests_per_minute, tokens_per_minute) -> None:
        """Set the limits (None: no limit)."""
        with self.lock:
            self.rpm, self.tpm = requests_per_minute, tokens_per_minute

    def reserve(self, tokens: int) -> float:
        """Book the next slot for a request of ``tokens``; seconds to wait."""
        with self.lock:
            now = time.monotonic()
            start = max(now, self.paused_until)
            if self.rpm:
                start = max(start, self.next_request)
                self.next_request = start + _MARGIN * 60.0 / self.rpm
            if self.tpm:
                start = max(start, self.next_tokens)
                self.next_tokens = start + _MARGIN * 60.0 * tokens / self.tpm
            return start - now

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
