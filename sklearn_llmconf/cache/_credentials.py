"""Database URLs with a password: masked when shown, left out when pickled."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["SecretURL", "wrap_secret_url"]

_SCHEMES = ("postgresql://", "postgres://")


def _without_password(url: str, replacement: str | None) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    userinfo = name if replacement is None else f"{name}:{replacement}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


class SecretURL(str):
    """A database URL whose password is masked in ``repr`` and left out of pickles.

    Equal to the URL as given, so that ``get_params`` returns what was set and
    ``clone`` (a deep copy) keeps the password; ``repr`` (hence the estimator's
    repr, ``GridSearchCV``'s and tracebacks) prints ``user:***@host``. A pickle
    holds the URL without its password: a process that loads it connects with
    the password from the environment (``PGPASSWORD``) or ``~/.pgpass``, which
    libpq reads.
    """

    def __repr__(self):
        return repr(_without_password(str(self), "***"))

    def __reduce__(self):
        return (str, (_without_password(str(self), None),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def wrap_secret_url(value):
    """``value`` as a :class:`SecretURL` when it is a database URL with a password."""
    if (isinstance(value, str) and not isinstance(value, SecretURL)
            and value.startswith(_SCHEMES)):
        try:
            has_password = urlsplit(value).password is not None
        except ValueError:
            return value
        if has_password:
            return SecretURL(value)
    return value
