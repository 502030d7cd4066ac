"""Where the catalog lives: URLs and paths, engines per backend, SQLite's pragmas, masked URLs.

SQLite (the embedded default) runs in WAL mode with ``synchronous=NORMAL`` (a commit survives a
crash of the process, and the database stays consistent after a power cut), a busy timeout, and
foreign keys on. pysqlite's own transaction handling is switched off so that camhub emits the
``BEGIN`` itself: ``BEGIN IMMEDIATE`` for writes, which takes the write lock up front. A deferred
transaction that reads and then writes can fail at once with "database is locked" when another
connection wrote in between, whatever the busy timeout; an immediate one waits its turn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError

from camhub.catalog._errors import CatalogError

__all__ = ["WRITE_OPTIONS", "is_sqlite", "make_engine", "masked", "resolve_url"]

#: Execution options of the engine that writes: its transactions begin with ``BEGIN IMMEDIATE``
#: on SQLite (no effect on PostgreSQL).
WRITE_OPTIONS = {"camhub_begin": "BEGIN IMMEDIATE"}


def masked(url: URL) -> str:
    """The URL as text with its password replaced by ``***``: the only form that is ever shown."""
    return url.render_as_string(hide_password=True)


def is_sqlite(url: URL) -> bool:
    """True when the URL names a SQLite database."""
    return url.get_backend_name() == "sqlite"


def resolve_url(target: str | os.PathLike[str] | URL) -> URL:
    """The SQLAlchemy URL of a catalog given as a URL or as the path of a SQLite file.

    Text without ``://`` is a path. ``postgresql://`` means psycopg (version 3), the driver camhub
    depends on. Only SQLite and PostgreSQL are supported.
    """
    if isinstance(target, URL):
        url = target
    elif isinstance(target, os.PathLike) or "://" not in target:
        path = Path(target).expanduser().resolve()
        url = URL.create("sqlite+pysqlite", database=str(path))
    else:
        try:
            url = make_url(target)
        except ArgumentError:
            # The message of ArgumentError quotes the text, password included: say it our way.
            raise CatalogError(
                "the catalog URL cannot be parsed (it is not shown: it may hold a password)"
            ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:") or (url.database or "").startswith("file::memory:"):
            raise CatalogError(
                "an in-memory SQLite catalog is not supported (each connection would see its own "
                "database): give a file path"
            )
        if url.drivername == "sqlite":
            url = url.set(drivername="sqlite+pysqlite")
        if url.drivername != "sqlite+pysqlite":
            raise CatalogError(f"unsupported SQLite driver in {masked(url)}: use sqlite:/// or a path")
    elif backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        if url.drivername != "postgresql+psycopg":
            raise CatalogError(f"unsupported PostgreSQL driver in {masked(url)}: use postgresql+psycopg://")
    else:
        raise CatalogError(f"unsupported catalog database {masked(url)}: use SQLite (a path) or PostgreSQL")
    return url


def make_engine(url: URL, *, busy_timeout: float = 30.0) -> Engine:
    """An engine for ``url`` (from :func:`resolve_url`), configured for many threads."""
    if is_sqlite(url):
        Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
            pool_size=10,
            max_overflow=20,
        )
        _configure_sqlite(engine, busy_timeout_ms=int(busy_timeout * 1000))
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,  # a PostgreSQL restart must not break the hub's next write
        pool_size=10,
        max_overflow=20,
        connect_args={"connect_timeout": 10, "application_name": "camhub"},
    )


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # camhub emits BEGIN itself (see _on_begin)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # 32 MiB of page cache (the default is 2 MiB): a channel-day touches ~1,440 table pages.
            cursor.execute("PRAGMA cache_size=-32768")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get("camhub_begin", "BEGIN"))
