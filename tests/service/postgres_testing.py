"""A throw-away PostgreSQL cluster for the store tests: ``initdb`` in a temp dir, a unix socket.

The binaries come from Debian's ``postgresql`` package (``/usr/lib/postgresql/<n>/bin``) or the
``PATH``. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user (``runuser``) in a folder that user owns. It listens on a unix socket in that folder only
(no TCP port to collide with), with ``fsync=off``: the cluster is deleted after the session,
and the durability under test is the service's, not PostgreSQL's own.

Where PostgreSQL or psycopg is missing the tests that need it skip and say why, except in CI
(``CI=true``), where they fail: a store test that silently vanished would prove nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgresql")
# Runs a test once per backend; the ``database_url`` fixture makes a new database of each.
on_both_backends = pytest.mark.parametrize("backend", BACKENDS)
_SERVER_USER = "postgres"  # Debian's package creates it; the server never runs as root


def unavailable(reason: str) -> None:
    """Skip the test, or fail it in CI, where PostgreSQL must be there."""
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL, else the one on the PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class PostgresCluster:
    """``initdb`` + ``pg_ctl start`` in a temp dir; ``database()`` makes one empty database."""

    user = "triage"

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="triage-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam(_SERVER_USER)
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", _SERVER_USER, "--"]
        self._names = itertools.count(1)

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as, *args], cwd=self.root, capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{log}"
            )

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            self.user,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        options = " ".join(
            (
                "-c listen_addresses=''",
                f"-c unix_socket_directories='{self.root}'",
                "-c max_connections=200",  # 2 workers x (pool 10 + overflow 20) and the tests
                "-c fsync=off",
                "-c full_page_writes=off",
            )
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log),
            "--wait",
            "--timeout",
            "60",
            "-o",
            options,
        )

    def url(self, database: str) -> str:
        """A SQLAlchemy URL for psycopg over the cluster's unix socket."""
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.root}"

    def database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"triage_test_{next(self._names)}"
        with psycopg.connect(
            host=str(self.root), user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(
                str(self.bindir / "pg_ctl"),
                "stop",
                "--pgdata",
                str(self.data),
                "--mode",
                "immediate",
                "--wait",
            )
        shutil.rmtree(self.root, ignore_errors=True)
