"""A real, throw-away PostgreSQL server on 127.0.0.1 for the cache tests.

The server binaries come from the ``pgserver`` wheel when it is installed (a
self-contained PostgreSQL, part of the ``test`` extra), else from the system
(``initdb`` on ``PATH`` or Debian's ``/usr/lib/postgresql/<version>/bin``).
PostgreSQL refuses to run as root, so as root the server runs as an
unprivileged user (``postgres`` when it exists, else ``nobody``).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started here (the reason says why)."""


def find_binaries() -> Path:
    """Return the folder holding ``initdb`` and ``postgres``."""
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "pginstall" / "bin"
        if (bundled / "initdb").exists():
            return bundled
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(os.path.realpath(initdb)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    raise PostgresUnavailable(
        "no PostgreSQL binaries: install the test extra (pgserver) or the "
        "distribution's postgresql package"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user():
    """(uid, gid) to run the server as, or None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise PostgresUnavailable("running as root and no unprivileged user exists")


class PostgresServer:
    """Start with :meth:`start`, stop with :meth:`stop` (by PID, data removed)."""

    def __init__(self):
        self.proc = None
        self.port = None
        self.datadir = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run_as(self, user):
        if user is None:
            return {}
        uid, gid = user
        return {"user": uid, "group": gid, "extra_groups": []}

    def start(self, timeout=60.0) -> PostgresServer:
        bindir = find_binaries()
        user = _server_user()
        # Not under pytest's tmp_path: that folder is private to root.
        self.datadir = Path(tempfile.mkdtemp(prefix="llmconf-pg-"))
        log = self.datadir.parent / (self.datadir.name + ".log")
        if user is not None:
            os.chown(self.datadir, *user)
        data = self.datadir / "data"
        init = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--no-sync"],
            capture_output=True, text=True, cwd=self.datadir, **self._run_as(user),
        )
        if init.returncode != 0:
            self.stop()
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        self.port = _free_port()
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1",
                 "-p", str(self.port), "-k", str(self.datadir),
                 "-c", "fsync=off", "-c", "max_connections=100"],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.datadir,
                **self._run_as(user),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                reason = log.read_text()[-500:]
                self.stop()
                raise PostgresUnavailable(f"postgres exited: {reason}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5):
                    pass
                if self._accepts_queries():
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise PostgresUnavailable(f"postgres did not start in {timeout:.0f} s")

    def _accepts_queries(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:  # still starting up
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGINT is PostgreSQL's "fast" shutdown (SIGTERM waits for clients).
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.datadir is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)
            Path(str(self.datadir) + ".log").unlink(missing_ok=True)
            self.datadir = None
