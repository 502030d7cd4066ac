"""The recording catalog: devices and channels as recorded, segments, gaps and device states.

Every component records here (DESIGN §2). SQLite in the hub's data folder is the embedded
default; PostgreSQL serves a province and several hubs::

    from datetime import UTC, datetime
    from camhub.catalog import Catalog

    with Catalog.open("camhub-data/catalog.db") as catalog:        # or "postgresql+psycopg://…"
        day = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
        for segment in catalog.segments("bien-hoa.cam-01", 1, *day):
            print(segment.start, segment.end, segment.sync_state.value, segment.storage_key)

The schema is created and upgraded by Alembic migrations shipped in this package
(``camhub/catalog/migrations``) when the catalog is opened. Times are stored as integer
microseconds since the epoch, UTC (why: :mod:`camhub.catalog._types`); the indexes and the query
each serves are listed in :mod:`camhub.catalog._schema`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from camhub.catalog._errors import (
    CatalogError,
    CatalogUnavailable,
    InvalidChange,
    LeaseLost,
    NotInCatalog,
    SegmentOverlap,
)
from camhub.catalog._records import (
    Backlog,
    ChannelRecord,
    Coverage,
    DeletionRecord,
    DeviceRecord,
    GapCause,
    GapRecord,
    HoldKind,
    HoldRecord,
    LeaseRecord,
    SegmentRecord,
    SegmentSource,
    Span,
    StateRecord,
    StorageTier,
    SyncState,
)

if TYPE_CHECKING:
    from camhub.catalog._catalog import Catalog, ChannelLike
    from camhub.catalog._leases import HubAnnouncement
    from camhub.catalog._migrate import alembic_config, head_revision
    from camhub.catalog._schema import MAX_SEGMENT_DURATION

# The value objects and errors above are light; what needs SQLAlchemy (and Alembic) is imported
# on first use, so that a process that only records (camhub.recorder needs GapCause) does not
# carry the database libraries (about 35 MB; docs/benchmarks.md, issue #4).
_LAZY = {
    "Catalog": "_catalog",
    "ChannelLike": "_catalog",
    "HubAnnouncement": "_leases",
    "alembic_config": "_migrate",
    "head_revision": "_migrate",
    "MAX_SEGMENT_DURATION": "_schema",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "MAX_SEGMENT_DURATION",
    "Backlog",
    "Catalog",
    "CatalogError",
    "CatalogUnavailable",
    "ChannelLike",
    "ChannelRecord",
    "Coverage",
    "DeletionRecord",
    "DeviceRecord",
    "GapCause",
    "GapRecord",
    "HoldKind",
    "HoldRecord",
    "HubAnnouncement",
    "InvalidChange",
    "LeaseLost",
    "LeaseRecord",
    "NotInCatalog",
    "SegmentOverlap",
    "SegmentRecord",
    "SegmentSource",
    "Span",
    "StateRecord",
    "StorageTier",
    "SyncState",
    "alembic_config",
    "head_revision",
]
