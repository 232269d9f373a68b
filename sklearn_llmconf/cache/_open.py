"""One factory for every value ``cache=`` accepts."""

from __future__ import annotations

from contextlib import contextmanager

from ._postgres import PostgresResponseCache, is_postgres_url
from ._sqlite import ResponseCache

__all__ = ["key_function", "open_cache"]


@contextmanager
def open_cache(cache):
    """Yield a cache object for ``cache``.

    Parameters
    ----------
    cache : str, path-like, cache object or None
        None: no cache. An object with ``get_many`` and ``set_many`` (the
        cache protocol; ``make_key`` is optional): used as it is and left open
        (its owner closes it). A ``postgresql://`` or ``postgres://`` URL: a
        :class:`~sklearn_llmconf.PostgresResponseCache`. Any other string or
        path: a :class:`~sklearn_llmconf.ResponseCache` (SQLite file). A cache
        opened here is closed on exit.

    Yields
    ------
    cache : cache object or None
    """
    if cache is None or hasattr(cache, "get_many"):
        yield cache
        return
    if is_postgres_url(cache):
        opened = PostgresResponseCache(cache)
    else:
        opened = ResponseCache(cache)
    try:
        yield opened
    finally:
        opened.close()


def key_function(cache):
    """The cache's own ``make_key``, else :meth:`ResponseCache.make_key`.

    A user cache needs only ``get_many`` and ``set_many``; one that defines
    ``make_key`` (for example keyed hashing) chooses its own keys.
    """
    return getattr(cache, "make_key", ResponseCache.make_key)
