"""Alembic's environment script for the camhub catalog; Alembic runs it, nothing imports it.

:meth:`camhub.catalog.Catalog.open` passes its own connection (in ``config.attributes``); the
``alembic`` tools get the URL from ``sqlalchemy.url`` (see :func:`camhub.catalog.alembic_config`).
"""

from __future__ import annotations

from camhub.catalog._migrate import run_environment

run_environment()
