"""API keys, client lifetime, secret-free error descriptions, running coroutines."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import re
import secrets
import threading
import warnings
from urllib.parse import unquote, urlsplit, urlunsplit

# A plausible environment-variable name; anything else in ``api_key_env`` is
# suspected to be the key itself.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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


def looks_like_key(value) -> bool:
    """Whether a string given as ``api_key_env`` is probably the key itself.

    True for values starting with ``"sk-"``/``"sk_"`` (OpenAI and most
    OpenAI-compatible providers), for values of 16 characters or more that are
    not valid environment-variable names (keys contain ``-``, ``.``, or start
    with a digit), and for 32 characters or more without an underscore.
    """
    if not isinstance(value, str):
        return False
    if value.startswith(("sk-", "sk_")):
        return True
    if len(value) >= 16 and not _ENV_NAME.match(value):
        return True
    return len(value) >= 32 and "_" not in value


def check_key_source(value) -> None:
    """Raise if ``api_key_env`` holds a key rather than a variable name.

    The message never contains the value.
    """
    if looks_like_key(value):
        raise ValueError(
            f"api_key_env looks like an API key itself (a string of {len(value)} "
            "characters), not the name of an environment variable; it was not "
            "stored. Put the key in an environment variable (e.g. "
            "OPENAI_API_KEY) and pass the variable's name, or pass a callable "
            "returning the key."
        )


class _DroppedKeySource:
    """Stands for a key callable dropped when the backend was pickled."""

    def __call__(self):
        raise RuntimeError(
            "The api_key_env callable was dropped when this backend was "
            "pickled (it may hold the key). Set it again with "
            "set_params(api_key_env=...) or use an environment-variable name."
        )

    def __repr__(self):
        return "<api key callable dropped on pickling>"


# Process-wide: warn once per (server, variable) that the placeholder is sent.
_WARNED_PLACEHOLDER: set = set()


_OPENAI_VARIABLE = "OPENAI_API_KEY"


def _is_openai(base_url) -> bool:
    """Whether requests go to OpenAI's own API (the SDK's default server)."""
    url = base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL")
    if not url:
        return True
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (host == "api.openai.com")


def _withheld_openai_key(base_url) -> str:
    """The placeholder sent instead of OPENAI_API_KEY to another server (warned)."""
    url = base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL")
    server = strip_url_credentials(str(url))
    seen = (server, _OPENAI_VARIABLE + ":withheld")
    if os.environ.get(_OPENAI_VARIABLE) and seen not in _WARNED_PLACEHOLDER:
        _WARNED_PLACEHOLDER.add(seen)
        warnings.warn(
            f"{_OPENAI_VARIABLE} was not sent to {server}, which is not OpenAI's "
            "API: the placeholder 'EMPTY' was sent instead. Pass the variable "
            "holding that server's key (api_key_env='MY_SERVER_KEY'), "
            "api_key_env=None for a server without keys, or, to send the OpenAI "
            "key there on purpose, api_key_env=lambda: "
            f"os.environ[{_OPENAI_VARIABLE!r}].",
            UserWarning,
            stacklevel=3,
        )
    return "EMPTY"


def resolve_api_key(source, base_url) -> str:
    """Return the key named by ``source`` (variable name, callable or None).

    ``OPENAI_API_KEY`` (the default) is read only for OpenAI's own API
    (``https://api.openai.com``): for any other server the placeholder is sent,
    with a warning when the variable is set, so that the user's OpenAI key never
    reaches a server it was not meant for. Naming another variable, or a
    callable, sends what it gives to the server it is set for.

    ``None`` means "no key": the placeholder ``"EMPTY"`` is sent (local servers
    need a non-empty key but do not check it). A variable that is unset while
    ``base_url`` is set also sends the placeholder, with a warning (once per
    server and variable): it may be a forgotten key.
    """
    if source is None:
        return "EMPTY"
    if source == _OPENAI_VARIABLE and not _is_openai(base_url):
        return _withheld_openai_key(base_url)
    key = source() if callable(source) else os.environ.get(source)
    if key:
        return str(key)
    name = getattr(source, "__name__", source)
    if base_url is not None:
        seen = (strip_url_credentials(str(base_url)), str(name))
        if seen not in _WARNED_PLACEHOLDER:
            _WARNED_PLACEHOLDER.add(seen)
            warnings.warn(
                f"No API key: {name!r} gave none, so the placeholder 'EMPTY' is "
                f"sent to {seen[0]}. Pass api_key_env=None for a server that "
                "needs no key (this silences the warning), or set the variable.",
                UserWarning,
                stacklevel=2,
            )
        return "EMPTY"
    raise RuntimeError(
        f"No API key: {name!r} gave none. Set the environment variable, or "
        "pass base_url (and api_key_env=None) for a local server that needs "
        "no key."
    )


#: Prefix of the environment variables that hand a URL's password to child
#: processes (``n_jobs`` workers); the suffix is a random token, never the URL.
SECRET_ENV_PREFIX = "SKLEARN_LLMCONF_URL_SECRET_"

# This process's URLs with credentials, by token, and their tokens.
_KEPT: dict = {}
_TOKENS: dict = {}
_KEPT_LOCK = threading.Lock()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}@{host}"))


def _keep(url: str) -> str:
    """Remember ``url`` in this process; the token that names it in pickles.

    The password is also put in this process's environment under
    ``SECRET_ENV_PREFIX + token``, so that processes started from now on
    (``n_jobs`` workers) can re-attach it; it never goes into a pickle.
    """
    with _KEPT_LOCK:
        token = _TOKENS.get(url)
        if token is None:
            token = secrets.token_hex(16)
            _TOKENS[url], _KEPT[token] = token, url
            password = urlsplit(url).password
            if password is not None:
                os.environ[SECRET_ENV_PREFIX + token] = password
    return token


def _restore_url(url, token):
    """Unpickle a :class:`CredentialURL`: the password re-attached where known.

    In the process that made it (or one it started, through the
    environment) the URL comes back whole; anywhere else without its
    password (the user name stays), like a PostgreSQL URL.
    """
    kept = _KEPT.get(token)
    if kept is None:
        password = os.environ.get(SECRET_ENV_PREFIX + token)
        if password is None:
            return url
        parts = urlsplit(url)
        user, _, host = parts.netloc.rpartition("@")
        kept = urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))
    return CredentialURL(kept)


class CredentialURL(str):
    """A URL string whose ``repr`` hides the ``user:password@`` part.

    Equal to the URL as given (``get_params`` returns what was set and
    ``clone`` works), but estimator reprs, HTML reprs and tracebacks that show
    the parameter print ``http://***@host/...``. A pickle holds the URL
    without its password and a random token: unpickled in the same process,
    or in a process it started after the URL was set (``n_jobs`` workers),
    the password is re-attached; elsewhere the URL has none.
    """

    def __new__(cls, url):
        self = super().__new__(cls, url)
        _keep(str(self))
        return self

    def __repr__(self):
        parts = urlsplit(str(self))
        host = parts.netloc.rpartition("@")[2]
        return repr(urlunsplit(parts._replace(netloc="***@" + host)))

    def __reduce__(self):
        return (_restore_url, (_without_password(str(self)), _keep(str(self))))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def wrap_base_url(url):
    """``url`` as a :class:`CredentialURL` when it embeds credentials."""
    if isinstance(url, str) and not isinstance(url, CredentialURL):
        try:
            has_userinfo = "@" in urlsplit(url).netloc
        except ValueError:
            return url
        if has_userinfo:
            return CredentialURL(url)
    return url


def make_client(api_key, *, base_url, timeout, max_retries, limiter=None,
                breaker=None):
    """A fresh ``openai.AsyncOpenAI``; bound to the event loop that uses it.

    Credentials embedded in ``base_url`` are sent as an HTTP Basic
    ``Authorization`` header (what the HTTP client did with them before) and
    removed from the URL, so that the client's request logs never show them.
    Every HTTP attempt passes a :class:`._transport.GatedTransport` (rate
    limits, attempt counting for ``breaker``).
    """
    import openai

    from ._transport import GatedTransport

    headers = None
    if base_url is not None:
        parts = urlsplit(str(base_url))
        if parts.username is not None or parts.password is not None:
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            token = base64.b64encode(pair.encode()).decode()
            headers = {"Authorization": f"Basic {token}"}
            base_url = strip_url_credentials(str(base_url))
    http_client = openai.DefaultAsyncHttpxClient(
        transport=GatedTransport(limiter, breaker)
    )
    return openai.AsyncOpenAI(
        api_key=api_key, base_url=base_url, timeout=timeout,
        max_retries=max_retries, default_headers=headers, http_client=http_client,
    )


def strip_url_credentials(url: str) -> str:
    """``url`` without the ``user:password@`` part of its network location."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def field(obj, name):
    """``obj[name]`` of a parsed JSON answer, or ``obj.name`` of an SDK object."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def add_usage(usage, resp):
    """Add a response's token counts to ``usage``."""
    u = field(resp, "usage")
    if u is not None:
        usage.prompt_tokens += int(field(u, "prompt_tokens") or 0)
        usage.completion_tokens += int(field(u, "completion_tokens") or 0)


def describe(exc, *, timeout, max_retries) -> str:
    """A short message built from the error *type*, never from response bodies."""
    import openai

    if isinstance(exc, _RowError):
        return str(exc)
    if getattr(exc, "row_message", None):
        return exc.row_message
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
