"""What an OpenAIBackend learns from its server, in one thread-safe object."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ._ratelimit import RateLimiter

# Guards the creation of a backend's state object (two threads using a fresh
# backend must end up sharing one state, hence one lock).
_CREATION_LOCK = threading.Lock()

_UNKNOWN = object()


@dataclass
class LearnedState:
    """Facts about the server, learned on first use and kept on the backend.

    Learning happens under :attr:`lock`, once per server identity; nothing here
    holds a client or an event loop, so concurrent calls from several threads
    (each with its own loop and client) share it safely. The state is a live
    attribute: it is dropped on pickling and cloning and relearned when the
    identity (``base_url``, ``model``, ``endpoint``, ``extra_body``) changes.

    Attributes
    ----------
    identity : tuple
        The parameters the facts were learned for.
    tokenizer : ServerTokenizer or None
        The server's tokenize endpoints (None: none found); ``_UNKNOWN`` until
        looked for.
    scoring : (str, str) or None
        ``(scoring mode, reason)`` chosen by the echo probe for
        ``scoring="auto"``; None until a definitive probe answer.
    label_specs : dict
        Label strings and bias setting -> :class:`._tokenizer.LabelSpec`.
    honours_n : bool or None
        Whether the server answers ``n`` choices per request; None until a
        generation with ``n > 1`` has shown it.
    endpoint : (str, str) or None
        ``(endpoint, reason)`` chosen by the probe for ``endpoint="auto"``
        (or the requested endpoint); None until learned.
    limiter : RateLimiter
        Spacing of requests and server-directed pauses, shared by every call.
    lock : threading.Lock
    """

    identity: tuple
    tokenizer: object = _UNKNOWN
    scoring: tuple | None = None
    label_specs: dict = field(default_factory=dict)
    honours_n: bool | None = None
    endpoint: tuple | None = None
    limiter: RateLimiter = field(default_factory=RateLimiter, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tokenizer_known(self) -> bool:
        """Whether the tokenizer has been looked for."""
        return self.tokenizer is not _UNKNOWN


def learned_state_identity(backend) -> tuple:
    """The parameters a backend's learned facts depend on."""
    return (
        backend.base_url, backend.model, backend.endpoint, repr(backend.extra_body),
        repr(getattr(backend, "tokenizer", "auto")),
    )


def learned_state(backend, attribute="_learned") -> LearnedState:
    """Return ``backend``'s state for its current identity, creating it once."""
    identity = learned_state_identity(backend)
    state = getattr(backend, attribute, None)
    if state is not None and state.identity == identity:
        return state
    with _CREATION_LOCK:
        state = getattr(backend, attribute, None)
        if state is None or state.identity != identity:
            state = LearnedState(identity)
            setattr(backend, attribute, state)
        return state
