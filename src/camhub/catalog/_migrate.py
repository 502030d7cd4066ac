"""Alembic migrations shipped in the package (``camhub/catalog/migrations``), run on open.

:meth:`~camhub.catalog.Catalog.open` upgrades the database to the head revision inside one
transaction, holding the write lock (SQLite) or an advisory lock (PostgreSQL), so several hubs
starting together migrate once. For the ``alembic`` tools (a new revision, ``current``,
``history``), :func:`alembic_config` gives a configuration::

    from alembic import command
    from camhub.catalog import alembic_config

    command.revision(alembic_config("sqlite:////tmp/dev.db"), message="add leases", autogenerate=True)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL, Connection

from camhub.catalog._engine import WRITE_OPTIONS, make_engine, resolve_url

__all__ = [
    "MIGRATIONS",
    "alembic_config",
    "current_revision",
    "head_revision",
    "is_known",
    "run_environment",
    "upgrade",
]

#: The Alembic script directory inside the package.
MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | os.PathLike[str] | URL | None = None) -> Config:
    """An Alembic configuration for the catalog's migrations, for ``url`` when one is given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        rendered = resolve_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))  # ConfigParser syntax
    return config


def head_revision() -> str:
    """The newest revision this version of camhub knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the catalog has no migrations"
    return head


def is_known(revision: str) -> bool:
    """True when this version of camhub has the migration ``revision`` (false: a newer camhub wrote it)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Upgrade the database behind ``connection`` (in a transaction) to the head revision."""
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def run_environment() -> None:
    """The body of ``migrations/env.py``: run the migrations Alembic asked for."""
    from alembic import context

    from camhub.catalog._schema import Base

    options: dict[str, Any] = {
        "target_metadata": Base.metadata,
        "render_as_batch": True,
        "compare_type": True,
    }
    if context.is_offline_mode():
        context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url (see camhub.catalog.alembic_config)")
    engine = make_engine(resolve_url(url))
    try:
        with engine.execution_options(**WRITE_OPTIONS).begin() as own:
            context.configure(connection=own, **options)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
