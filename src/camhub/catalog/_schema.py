"""The catalog's tables as typed SQLAlchemy ORM classes (private: the API returns value objects).

The migrations in ``migrations/versions`` create exactly these tables; a test compares the two on
SQLite and PostgreSQL. Column names carry their unit (``start_us``: microseconds since the epoch,
UTC; see :mod:`camhub.catalog._types`) so that anyone reading the database with plain SQL knows.

Index choices, each serving one query of :class:`~camhub.catalog.Catalog`:

- ``ix_segments_channel_span (device_id, channel, start_us, end_us, …every other column)``:
  segments of one channel overlapping ``[a, b)``. A segment is at most
  :data:`MAX_SEGMENT_DURATION` long, so the query asks ``start_us >= a - MAX AND start_us < b AND
  end_us > a``: a bounded range scan of the index, whatever the channel's history (a plain
  ``start_us < b`` would scan back to its first segment). The index holds every column (migration
  0004): a hub writes every channel's minute together, so a channel-day's 1,440 rows lie on 1,440
  table pages, while in the index they lie together, and every read by channel — a channel-day,
  coverage — is an index-only scan. It costs the table's size again on disk; the channel's rows
  are what is read most.
- ``ix_segments_unsynced (start_us) WHERE sync_state <> 'synced'``: the uploader's queue, oldest
  first; partial, so it holds only the backlog, not the millions of synced rows.
- ``uq_segments_storage_key``: one catalog row per central object.
- ``ix_segments_local (start_us, id) WHERE local_path IS NOT NULL`` and ``ix_segments_central
  (start_us, id) WHERE storage_key IS NOT NULL AND central_deleted_at_us IS NULL``: retention's
  candidates of each tier, oldest first, without walking the rows whose copy is already gone.
- ``coverage_days`` (keyed by channel and UTC day): the central coverage summary the coverage
  report reads instead of a week of segment rows (see :class:`CoverageDayRow`).
- ``ix_gaps_channel_start``, ``ix_gaps_open (… WHERE end_us IS NULL)``: gaps of a channel in a
  window, and the outages still open (closed on restart).
- ``ix_device_states_device_at``: a device's state history in a window.
- ``ix_holds_device_start``, ``ix_holds_active (… WHERE released_at_us IS NULL)``: the holds that
  protect a channel's span from deletion (retention asks for the active ones only).
- ``ix_deletions_channel_start``, ``ix_deletions_deleted_at``: the deletion audit of a channel, and
  of a period.
- ``leases`` is keyed by channel; ``ix_leases_holder`` lists a hub's leases, ``ix_leases_expires``
  the expired ones another hub may take over.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from camhub.catalog._records import GapCause, HoldKind, SegmentSource, StorageTier, SyncState
from camhub.catalog._types import Micros, UtcMicros
from camhub.model import ChannelKind, DeviceKind

__all__ = [
    "MAX_SEGMENT_DURATION",
    "Base",
    "ChannelRow",
    "CoverageDayRow",
    "DeletionRow",
    "DeviceRow",
    "DeviceStateRow",
    "GapRow",
    "HoldRow",
    "LeaseRow",
    "SegmentRow",
]

#: The longest segment the catalog accepts. The channel range query relies on it (see above);
#: the recorder's segment length (default 60 s) must stay below it.
MAX_SEGMENT_DURATION = timedelta(hours=1)

#: Constraint names are fixed here so that later migrations can name what they alter, the same on
#: every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite's rowid alias must be spelled INTEGER; PostgreSQL gets BIGINT (billions of segments).
_ID = BigInteger().with_variant(Integer(), "sqlite")


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    """A string column holding the enum's values (not names), checked by a CHECK constraint."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DeviceRow(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    unit: Mapped[str] = mapped_column(String(100))
    vendor: Mapped[str] = mapped_column(String(50))
    kind: Mapped[DeviceKind] = mapped_column(_enum(DeviceKind, "device_kind"))
    host: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(String(100))
    serial: Mapped[str | None] = mapped_column(String(100))
    firmware: Mapped[str | None] = mapped_column(String(100))
    mac: Mapped[str | None] = mapped_column(String(32))
    first_seen: Mapped[datetime] = mapped_column("first_seen_us", UtcMicros)
    last_seen: Mapped[datetime] = mapped_column("last_seen_us", UtcMicros)


class ChannelRow(Base):
    __tablename__ = "channels"

    device_id: Mapped[str] = mapped_column(String(100), ForeignKey("devices.id"), primary_key=True)
    channel: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[ChannelKind] = mapped_column(_enum(ChannelKind, "channel_kind"))
    name: Mapped[str] = mapped_column(Text, default="")
    audio: Mapped[bool] = mapped_column(Boolean(create_constraint=False), default=False)


_CHANNEL_FK = ("device_id", "channel"), ("channels.device_id", "channels.channel")


#: ``ix_segments_channel_span``: a channel's segments by time, and every other column after them,
#: so that the index holds the rows themselves in channel order (see the module's notes).
_CHANNEL_SPAN_COLUMNS = (
    "device_id",
    "channel",
    "start_us",
    "end_us",
    "id",
    "duration_us",
    "bytes",
    "sha256",
    "video_codec",
    "audio_codec",
    "audio_source_codec",
    "container",
    "local_path",
    "storage_key",
    "sync_state",
    "synced_at_us",
    "sync_failures",
    "sync_error",
    "source",
    "backfill_source",
    "created_at_us",
    "central_deleted_at_us",
)


class SegmentRow(Base):
    __tablename__ = "segments"
    __table_args__: Any = (
        ForeignKeyConstraint(*_CHANNEL_FK),
        CheckConstraint("end_us > start_us", name="positive_span"),
        CheckConstraint("bytes >= 0", name="size"),
        Index("ix_segments_channel_span", *_CHANNEL_SPAN_COLUMNS),
        Index(
            "ix_segments_unsynced",
            "start_us",
            sqlite_where=text("sync_state <> 'synced'"),
            postgresql_where=text("sync_state <> 'synced'"),
        ),
        Index("uq_segments_storage_key", "storage_key", unique=True),
        Index(
            "ix_segments_local",
            "start_us",
            "id",
            sqlite_where=text("local_path IS NOT NULL"),
            postgresql_where=text("local_path IS NOT NULL"),
        ),
        Index(
            "ix_segments_central",
            "start_us",
            "id",
            sqlite_where=text("storage_key IS NOT NULL AND central_deleted_at_us IS NULL"),
            postgresql_where=text("storage_key IS NOT NULL AND central_deleted_at_us IS NULL"),
        ),
        {"sqlite_autoincrement": True},  # ids are never reused: audit entries refer to them
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(100))
    channel: Mapped[int] = mapped_column(Integer)
    start: Mapped[datetime] = mapped_column("start_us", UtcMicros)
    end: Mapped[datetime] = mapped_column("end_us", UtcMicros)
    duration: Mapped[timedelta] = mapped_column("duration_us", Micros)
    size: Mapped[int] = mapped_column("bytes", BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    video_codec: Mapped[str | None] = mapped_column(String(32))
    audio_codec: Mapped[str | None] = mapped_column(String(32))
    audio_source_codec: Mapped[str | None] = mapped_column(String(32))
    container: Mapped[str] = mapped_column(String(16))
    local_path: Mapped[str | None] = mapped_column(Text)
    storage_key: Mapped[str | None] = mapped_column(String(1024))
    sync_state: Mapped[SyncState] = mapped_column(_enum(SyncState, "sync_state"))
    synced_at: Mapped[datetime | None] = mapped_column("synced_at_us", UtcMicros)
    sync_failures: Mapped[int] = mapped_column(Integer, default=0)
    sync_error: Mapped[str | None] = mapped_column(Text)
    source: Mapped[SegmentSource] = mapped_column(_enum(SegmentSource, "segment_source"))
    backfill_source: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column("created_at_us", UtcMicros)
    # Set when retention removed the central copy (the local copy may outlive it).
    central_deleted_at: Mapped[datetime | None] = mapped_column("central_deleted_at_us", UtcMicros)


class CoverageDayRow(Base):
    """What of one UTC day of a channel is in the central store (synced, not deleted from it).

    ``central_us`` sums the central segments' lengths inside the day (a segment across midnight
    counts in both days, each its own part), ``backfilled_us`` the backfilled ones' share of it,
    ``segments`` counts them. The catalog updates it in the transaction of every change of a
    segment's central presence, with increments (``x = x + d``) so that concurrent hubs add up.
    Live segments never overlap, so a day whose ``central_us`` is the whole day and that holds no
    backfill is wholly covered: the coverage report measures only the other days.
    """

    __tablename__ = "coverage_days"
    __table_args__: Any = (ForeignKeyConstraint(*_CHANNEL_FK),)

    device_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    channel: Mapped[int] = mapped_column(Integer, primary_key=True)
    day_us: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    central_us: Mapped[int] = mapped_column(BigInteger)
    backfilled_us: Mapped[int] = mapped_column(BigInteger)
    segments: Mapped[int] = mapped_column(Integer)
    # The earliest start and the latest end of the day's central parts (migration 0004); NULL when
    # not known (a segment at either end left the central store since). A day of live segments
    # whose central_us is last_us - first_us is covered from first_us to last_us, no hole between.
    first_us: Mapped[int | None] = mapped_column(BigInteger)
    last_us: Mapped[int | None] = mapped_column(BigInteger)


class GapRow(Base):
    __tablename__ = "gaps"
    __table_args__: Any = (
        ForeignKeyConstraint(*_CHANNEL_FK),
        CheckConstraint("end_us IS NULL OR end_us > start_us", name="positive_span"),
        Index("ix_gaps_channel_start", "device_id", "channel", "start_us"),
        Index(
            "ix_gaps_open",
            "device_id",
            "channel",
            sqlite_where=text("end_us IS NULL"),
            postgresql_where=text("end_us IS NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(100))
    channel: Mapped[int] = mapped_column(Integer)
    start: Mapped[datetime] = mapped_column("start_us", UtcMicros)
    end: Mapped[datetime | None] = mapped_column("end_us", UtcMicros)
    cause: Mapped[GapCause] = mapped_column(_enum(GapCause, "gap_cause"))
    detail: Mapped[str] = mapped_column(Text, default="")
    closed_by: Mapped[str | None] = mapped_column(String(255))


class DeviceStateRow(Base):
    __tablename__ = "device_states"
    __table_args__: Any = (
        Index("ix_device_states_device_at", "device_id", "at_us"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(100), ForeignKey("devices.id"))
    at: Mapped[datetime] = mapped_column("at_us", UtcMicros)
    state: Mapped[str] = mapped_column(String(50))
    detail: Mapped[str] = mapped_column(Text, default="")


class HoldRow(Base):
    __tablename__ = "holds"
    __table_args__: Any = (
        CheckConstraint("end_us > start_us", name="positive_span"),
        CheckConstraint("reason <> ''", name="reason_given"),
        Index("ix_holds_device_start", "device_id", "start_us"),
        Index(
            "ix_holds_active",
            "device_id",
            sqlite_where=text("released_at_us IS NULL"),
            postgresql_where=text("released_at_us IS NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(100), ForeignKey("devices.id"))
    channel: Mapped[int | None] = mapped_column(Integer)  # None: every channel of the device
    start: Mapped[datetime] = mapped_column("start_us", UtcMicros)
    end: Mapped[datetime] = mapped_column("end_us", UtcMicros)
    kind: Mapped[HoldKind] = mapped_column(_enum(HoldKind, "hold_kind"))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column("created_at_us", UtcMicros)
    released_at: Mapped[datetime | None] = mapped_column("released_at_us", UtcMicros)
    released_by: Mapped[str | None] = mapped_column(String(255))


class DeletionRow(Base):
    """The deletion audit: one row per deleted copy; kept when the segment row itself is gone."""

    __tablename__ = "deletions"
    __table_args__: Any = (
        Index("ix_deletions_channel_start", "device_id", "channel", "start_us"),
        Index("ix_deletions_deleted_at", "deleted_at_us"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    segment_id: Mapped[int] = mapped_column(BigInteger)  # no foreign key: the segment may be gone
    device_id: Mapped[str] = mapped_column(String(100))
    channel: Mapped[int] = mapped_column(Integer)
    start: Mapped[datetime] = mapped_column("start_us", UtcMicros)
    end: Mapped[datetime] = mapped_column("end_us", UtcMicros)
    tier: Mapped[StorageTier] = mapped_column(_enum(StorageTier, "storage_tier"))
    location: Mapped[str] = mapped_column(Text)  # the local path or the storage key
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column("bytes", BigInteger)
    rule: Mapped[str] = mapped_column(Text)  # the policy that allowed it, e.g. "central_days=30"
    deleted_at: Mapped[datetime] = mapped_column("deleted_at_us", UtcMicros)
    deleted_by: Mapped[str] = mapped_column(String(255))


class LeaseRow(Base):
    """Scale-out: which hub records a channel, until when (see :class:`LeaseRecord`)."""

    __tablename__ = "leases"
    __table_args__: Any = (
        ForeignKeyConstraint(*_CHANNEL_FK),
        Index("ix_leases_holder", "holder"),
        Index("ix_leases_expires", "expires_at_us"),
    )

    device_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    channel: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    token: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column("acquired_at_us", UtcMicros)
    expires_at: Mapped[datetime] = mapped_column("expires_at_us", UtcMicros)
