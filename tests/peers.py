"""Real peers for the tests: a throwaway PostgreSQL cluster (more peers join as the hub grows).

A peer that is not installed skips its tests on a developer's machine, with the command that
installs it, and FAILS them under ``CI=true``: a missing peer in CI is a broken CI, never a pass.
``scripts/install-test-peers.sh`` installs every peer.

Use the fixtures by importing them into a test module (``postgres_url = peers.postgres_url``) or
with ``pytest_plugins = ["peers"]`` in the root ``conftest.py``:

- ``postgres_server`` (session): a :class:`PostgresServer` on a free 127.0.0.1 port, data in a
  temporary folder, stopped and removed at the end of the session; ``create_database(name)``
  gives a fresh database per test when a test needs one.
- ``postgres_url`` (session): the SQLAlchemy URL (``postgresql+psycopg://…``) of a database on it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import attrs
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import URL

__all__ = [
    "INSTALL_HINT",
    "PostgresServer",
    "peer_missing",
    "postgres_bindir",
    "postgres_server",
    "postgres_url",
    "running_postgres",
]

INSTALL_HINT = "sudo scripts/install-test-peers.sh"


def peer_missing(message: str) -> NoReturn:
    """Skip the test (developer machine) or fail it (``CI=true``) for a peer that is not installed."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(
            f"{message} (CI=true: a missing test peer is a failure; install it with {INSTALL_HINT})",
            pytrace=False,
        )
    pytest.skip(f"{message}; install it with: {INSTALL_HINT}")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def postgres_bindir(candidates: Sequence[Path] | None = None) -> Path | None:
    """The newest folder holding PostgreSQL's ``initdb`` and ``pg_ctl`` (Debian keeps them off PATH).

    ``CAMHUB_PG_BINDIR`` names the one to use (and only that one).
    """
    if candidates is None:
        chosen = os.environ.get("CAMHUB_PG_BINDIR")
        on_path = shutil.which("pg_ctl")
        candidates = (
            [Path(chosen)]
            if chosen
            else [
                *sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True),
                *([Path(on_path).resolve().parent] if on_path else []),
            ]
        )
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@attrs.frozen
class PostgresServer:
    """A running throwaway PostgreSQL: where it listens and its superuser's credentials."""

    host: str
    port: int
    user: str
    password: str = attrs.field(repr=False)
    datadir: Path

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """The SQLAlchemy URL of ``database`` (with the real password unless another is given)."""
        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password if password is None else password,
            host=self.host,
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname="postgres",
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with self._admin() as connection:
            connection.execute(
                sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name))
            )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database (closing its connections)."""
        with self._admin() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class _Runner:
    """Runs the PostgreSQL tools as the ``postgres`` user when we are root (it refuses to run as root)."""

    def __init__(self, bindir: Path, cwd: Path) -> None:
        self.bindir = bindir
        self.cwd = cwd
        self.prefix: list[str] = []
        self.owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                peer_missing(
                    "PostgreSQL's 'postgres' user does not exist (tests run as root start the server as it)"
                )
            runuser = shutil.which("runuser")
            if runuser is None:
                pytest.fail(
                    "running as root, but there is no runuser to start PostgreSQL as 'postgres'",
                    pytrace=False,
                )
            self.prefix = [runuser, "-u", "postgres", "--"]
            self.owner = (account.pw_uid, account.pw_gid)

    def own(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, *self.owner)

    def run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, str(self.bindir / tool), *args],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def running_postgres(bindir: Path) -> Iterator[PostgresServer]:
    """Start a fresh cluster in a temporary folder on a free loopback port; stop and remove it after."""
    # Not under pytest's tmp_path: that folder is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="camhub-pg-"))
    runner = _Runner(bindir, root)
    runner.own(root)
    datadir, log = root / "data", root / "server.log"
    password = secrets.token_urlsafe(18)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    runner.own(pwfile)
    started = False
    try:
        init = runner.run(
            "initdb",
            f"--pgdata={datadir}",
            "--username=camhub",
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        )
        pwfile.unlink()
        if init.returncode != 0:
            pytest.fail(f"initdb failed ({init.returncode}):\n{init.stderr}", pytrace=False)
        for _attempt in range(5):
            port = _free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={port}",
                    f"-c unix_socket_directories={root}",
                    "-c fsync=off",  # a throwaway cluster: speed over durability
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=200",
                ]
            )
            start = runner.run(
                "pg_ctl",
                "start",
                f"--pgdata={datadir}",
                f"--log={log}",
                "--wait",
                "--timeout=60",
                f"--options={options}",
            )
            if start.returncode == 0:
                started = True
                break
            if "could not bind" not in _tail(log, 50):  # another process took the port: try another
                break
        if not started:
            pytest.fail(f"PostgreSQL did not start:\n{start.stderr}\n{_tail(log)}", pytrace=False)
        yield PostgresServer(host="127.0.0.1", port=port, user="camhub", password=password, datadir=datadir)
    finally:
        if started:
            stop = runner.run(
                "pg_ctl", "stop", f"--pgdata={datadir}", "--mode=fast", "--wait", "--timeout=30"
            )
            if stop.returncode != 0:
                runner.run(
                    "pg_ctl", "stop", f"--pgdata={datadir}", "--mode=immediate", "--wait", "--timeout=30"
                )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the whole test session."""
    bindir = postgres_bindir()
    if bindir is None:
        peer_missing(
            "PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin, "
            "or in CAMHUB_PG_BINDIR when it is set)"
        )
    with running_postgres(bindir) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The SQLAlchemy URL of an empty database on the session's PostgreSQL."""
    return postgres_server.create_database("camhub")
