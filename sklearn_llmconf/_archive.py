"""The model file as a zip archive: size limits, an optional HMAC signature,
and a write that replaces the old file only when the new one is complete.

- **Limits.** Before anything is inflated, the archive's central directory is
  read and the file refused when it has more than :data:`MAX_ENTRIES` entries,
  an entry that would inflate beyond :data:`MAX_ENTRY_BYTES`, or more than
  :data:`MAX_TOTAL_BYTES` in all. Python's ``zipfile`` never inflates an entry
  beyond the size its directory declares (it stops there and the CRC check
  fails), so checking the declared sizes bounds what loading can allocate.
- **Signature.** With a key in the environment variable :data:`KEY_ENV`,
  :func:`sign` adds an entry :data:`SIGNATURE_ENTRY` holding the HMAC-SHA256,
  under that key, of every other entry (name and bytes, in name order), and
  :func:`verify` refuses a file without that entry or whose HMAC differs:
  any change to the file, re-zipped or edited in place, is refused. Without
  the key nothing is verified, and :func:`verify` says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import tempfile
import zipfile

__all__ = [
    "KEY_ENV",
    "MAX_ENTRIES",
    "MAX_ENTRY_BYTES",
    "MAX_TOTAL_BYTES",
    "SIGNATURE_ENTRY",
    "ArchiveError",
    "atomic_path",
    "check_limits",
    "sign",
    "verify",
]

#: The environment variable holding the signing key (any non-empty string).
KEY_ENV = "SKLEARN_LLMCONF_MODEL_KEY"
#: The archive entry holding the hex HMAC-SHA256 of the other entries.
SIGNATURE_ENTRY = "sklearn-llmconf.hmac"
#: Most entries an archive may hold (a model file holds a few dozen).
MAX_ENTRIES = 10_000
#: Largest inflated size of one entry.
MAX_ENTRY_BYTES = 128 * 2**20
#: Largest inflated size of all entries together.
MAX_TOTAL_BYTES = 512 * 2**20


class ArchiveError(ValueError):
    """An archive refused by its limits or its signature."""


def _mib(n) -> str:
    return f"{n / 2**20:.1f} MiB"


def check_limits(path) -> None:
    """Refuse an archive whose directory declares too much, before inflating.

    Raises
    ------
    ArchiveError
        Naming the entry and the limit.
    zipfile.BadZipFile
        Not a zip archive.
    """
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
    if len(infos) > MAX_ENTRIES:
        raise ArchiveError(f"it holds {len(infos)} entries, over the limit of "
                           f"{MAX_ENTRIES}")
    total = 0
    for info in infos:
        if info.file_size > MAX_ENTRY_BYTES:
            raise ArchiveError(
                f"its entry {info.filename!r} would inflate to "
                f"{_mib(info.file_size)}, over the limit of {_mib(MAX_ENTRY_BYTES)}"
            )
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ArchiveError(f"its entries would inflate to {_mib(total)}, over the "
                           f"limit of {_mib(MAX_TOTAL_BYTES)}")


def _key():
    key = os.environ.get(KEY_ENV)
    return key.encode() if key else None


def _digest(z: zipfile.ZipFile, key: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for name in sorted(n for n in z.namelist() if n != SIGNATURE_ENTRY):
        data = z.read(name)
        for part in (name.encode(), data):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
    return mac.hexdigest()


def sign(path) -> bool:
    """Add the signature entry when :data:`KEY_ENV` is set; True if signed."""
    key = _key()
    if key is None:
        return False
    with zipfile.ZipFile(path) as z:
        digest = _digest(z, key)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(SIGNATURE_ENTRY, digest)
    return True


def verify(path) -> str:
    """Check the signature when :data:`KEY_ENV` is set.

    Returns
    -------
    status : str
        ``"verified with KEY_ENV"``, or ``"not checked (KEY_ENV is not set)"``.

    Raises
    ------
    ArchiveError
        The key is set and the file is unsigned, or its signature differs.
    """
    key = _key()
    if key is None:
        return f"not checked ({KEY_ENV} is not set)"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if names.count(SIGNATURE_ENTRY) != 1:
            raise ArchiveError(
                f"it is not signed, and {KEY_ENV} is set: only files signed with "
                "that key are loaded")
        stored = z.read(SIGNATURE_ENTRY).decode("ascii", "replace").strip()
        if not hmac.compare_digest(stored, _digest(z, key)):
            raise ArchiveError(
                f"its signature does not match {KEY_ENV}: the file was changed "
                "after it was written, or signed with another key")
    return f"verified with {KEY_ENV}"


@contextlib.contextmanager
def atomic_path(path, temporary=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file is in the same folder (so the rename is atomic) and is
    removed when the block raises: an existing ``path`` stays as it was until
    the new content is complete.

    Parameters
    ----------
    path : str or path-like
    temporary : str, default=None
        The temporary file's name (a fixed name that a watcher can follow);
        None: a fresh ``.NAME.XXXXXXXX.partial``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if temporary is None:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".partial",
                                   prefix=f".{os.path.basename(path)}.")
        os.close(fd)
    else:
        tmp = temporary
        open(tmp, "wb").close()
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)  # mkstemp's 0600 would outlive the rename
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
