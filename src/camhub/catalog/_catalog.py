"""The :class:`Catalog`: what was recorded, what is missing and why, and what reached the central store."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import attrs
from alembic.util import CommandError
from sqlalchemy import (
    URL,
    BigInteger,
    ColumnElement,
    Engine,
    Enum,
    Select,
    String,
    and_,
    case,
    func,
    inspect,
    not_,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from camhub.catalog import _migrate
from camhub.catalog._engine import WRITE_OPTIONS, is_sqlite, make_engine, masked, resolve_url
from camhub.catalog._errors import CatalogUnavailable, InvalidChange, NotInCatalog, SegmentOverlap
from camhub.catalog._leases import LeaseCatalog
from camhub.catalog._records import (
    Backlog,
    ChannelRecord,
    Coverage,
    DeviceRecord,
    GapCause,
    GapRecord,
    SegmentRecord,
    SegmentSource,
    Span,
    StateRecord,
    SyncState,
)
from camhub.catalog._retention import DAY_US, RetentionCatalog, count_central, in_central, segment_record
from camhub.catalog._schema import (
    MAX_SEGMENT_DURATION,
    ChannelRow,
    CoverageDayRow,
    DeviceRow,
    DeviceStateRow,
    GapRow,
    SegmentRow,
)
from camhub.catalog._types import EPOCH, Micros, UtcMicros, from_micros, to_micros, utc
from camhub.log import get_logger
from camhub.model import ChannelKind, DeviceKind

__all__ = ["Catalog", "ChannelLike"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_R = TypeVar("_R")

#: Allowed sync transitions (see :class:`SyncState`). ``synced → pending`` re-queues a segment whose
#: central copy must be sent again.
_SYNC_TRANSITIONS: dict[SyncState, frozenset[SyncState]] = {
    SyncState.PENDING: frozenset({SyncState.UPLOADING, SyncState.SYNCED, SyncState.FAILED}),
    SyncState.UPLOADING: frozenset({SyncState.SYNCED, SyncState.FAILED, SyncState.PENDING}),
    SyncState.FAILED: frozenset({SyncState.UPLOADING, SyncState.SYNCED, SyncState.PENDING}),
    SyncState.SYNCED: frozenset({SyncState.PENDING}),
}

# Spelled as literal SQL, not a bound parameter, so that SQLite's planner can match the partial
# index ix_segments_unsynced (it never matches a parameter against an index's WHERE clause).
_NOT_SYNCED = text("segments.sync_state <> 'synced'")

#: Spans per query of :meth:`Catalog.outside_central` (one OR term each).
_SPANS_PER_QUERY = 200

# An advisory lock key for migrations on PostgreSQL ("camhub" in ASCII).
_MIGRATION_LOCK = 0x63616D687562


class ChannelLike(Protocol):
    """What :meth:`Catalog.upsert_channels` reads from a channel: :class:`camhub.Channel` (the
    configuration) and :class:`camhub.adapter.ChannelInfo` (what a device reports) both fit."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> ChannelKind: ...
    @property
    def name(self) -> str: ...
    @property
    def audio(self) -> bool: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _names(cls: type[Any]) -> tuple[str, ...]:
    return tuple(field.name for field in attrs.fields(cls))


# The value objects' field names are the ORM attribute names: a row of these columns, or an ORM
# object, turns into a record field by field.
_SEGMENT_FIELDS = SegmentRecord._fields
_GAP_FIELDS = _names(GapRecord)
_STATE_FIELDS = _names(StateRecord)
_DEVICE_FIELDS = _names(DeviceRecord)
_GAP_COLUMNS = tuple(getattr(GapRow, name) for name in _GAP_FIELDS)
_STATE_COLUMNS = tuple(getattr(DeviceStateRow, name) for name in _STATE_FIELDS)


def _stored(name: str) -> Any:
    """A segment column as stored (integers for times, text for enums): :func:`_segments_from_stored`
    converts whole rows at once, faster than SQLAlchemy's per-value processors (the channel-day
    query returns 1,440 rows)."""
    column = inspect(SegmentRow).columns[name]
    if isinstance(column.type, UtcMicros | Micros):
        return type_coerce(column, BigInteger).label(name)
    if isinstance(column.type, Enum):
        return type_coerce(column, String).label(name)
    return column


_SEGMENT_STORED = tuple(_stored(name) for name in _SEGMENT_FIELDS)
_SYNC_STATES = {state.value: state for state in SyncState}
_SOURCES = {source.value: source for source in SegmentSource}
_US = timedelta(microseconds=1)


@attrs.define
class _Found:
    """What measuring coverage gathers, per channel: ``totals`` (missing µs, the end of its last
    segment, backfilled µs) and ``holes`` (the ones before that end)."""

    totals: dict[tuple[str, int], tuple[int, int, int]] = attrs.Factory(dict)
    holes: dict[tuple[str, int], list[Span]] = attrs.Factory(dict)


def _segments_from_stored(rows: Iterable[Any]) -> list[SegmentRecord]:
    """:class:`SegmentRecord`\\ s from rows of :data:`_SEGMENT_STORED` (the order of its fields).

    One tuple per row, built in one step from the row unpacked at once (the cheapest way to its
    22 items); only the times, the duration and the two enums are converted. A time two
    neighbours share (one's end, the next one's start) becomes one :class:`~datetime.datetime`.
    """
    new, us, epoch, states, sources = tuple.__new__, _US, EPOCH, _SYNC_STATES, _SOURCES
    ends: dict[int, datetime] = {}
    shared = ends.get
    records: list[SegmentRecord] = []
    add = records.append
    for (
        id_,
        device_id,
        channel,
        start_us,
        end_us,
        duration_us,
        size,
        sha256,
        video_codec,
        audio_codec,
        audio_source_codec,
        container,
        local_path,
        storage_key,
        sync_state,
        synced_at_us,
        sync_failures,
        sync_error,
        source,
        backfill_source,
        created_at_us,
        central_deleted_at_us,
    ) in rows:
        start = shared(start_us) or epoch + us * start_us
        ends[end_us] = end = epoch + us * end_us
        add(
            new(
                SegmentRecord,
                (
                    id_,
                    device_id,
                    channel,
                    start,
                    end,
                    us * duration_us,
                    size,
                    sha256,
                    video_codec,
                    audio_codec,
                    audio_source_codec,
                    container,
                    local_path,
                    storage_key,
                    states[sync_state],
                    None if synced_at_us is None else epoch + us * synced_at_us,
                    sync_failures,
                    sync_error,
                    sources[source],
                    backfill_source,
                    epoch + us * created_at_us,
                    None if central_deleted_at_us is None else epoch + us * central_deleted_at_us,
                ),
            )
        )
    return records


def _record(cls: Callable[..., _R], names: tuple[str, ...], source: Any) -> _R:
    return cls(**{name: getattr(source, name) for name in names})


def _gap(source: Any) -> GapRecord:
    return _record(GapRecord, _GAP_FIELDS, source)


def _state(source: Any) -> StateRecord:
    return _record(StateRecord, _STATE_FIELDS, source)


def _device(source: Any) -> DeviceRecord:
    return _record(DeviceRecord, _DEVICE_FIELDS, source)


def _channel(row: ChannelRow) -> ChannelRecord:
    return ChannelRecord(
        device_id=row.device_id, channel=row.channel, kind=row.kind, name=row.name, audio=row.audio
    )


def _earlier(value: datetime, delta: timedelta) -> datetime:
    try:
        return value - delta
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def _overlaps(device_id: str, channel: int, start: datetime, end: datetime) -> ColumnElement[bool]:
    """The condition of :meth:`Catalog._overlapping`."""
    return and_(
        SegmentRow.device_id == device_id,
        SegmentRow.channel == channel,
        SegmentRow.start >= _earlier(start, MAX_SEGMENT_DURATION),
        SegmentRow.start < end,
        SegmentRow.end > start,
    )


def _reason(exc: BaseException) -> str:
    """The first line of the driver's message (never a URL: drivers do not put passwords in it)."""
    original = getattr(exc, "orig", None) or exc
    return (str(original).strip().splitlines() or [type(original).__name__])[0]


class Catalog(RetentionCatalog, LeaseCatalog):
    """The recording catalog: devices and channels as recorded, segments, gaps, device states.

    Open it with :meth:`open`; it is safe to share between threads (every call uses its own
    session and transaction; on SQLite, writes of one process are serialised by a lock and between
    processes by ``BEGIN IMMEDIATE`` and the busy timeout). Every time given must be aware; every
    time returned is aware UTC. Spans are half-open ``[start, end)``. Methods return frozen value
    objects (:class:`SegmentRecord`, …), never ORM rows.
    """

    def __init__(self, engine: Engine, url: URL, *, clock: Callable[[], datetime]) -> None:
        """Use :meth:`open`."""
        self._engine = engine
        self._writer = engine.execution_options(**WRITE_OPTIONS)
        self._url = url
        self._clock = clock
        self._sqlite = is_sqlite(url)
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._sqlite else contextlib.nullcontext()
        )

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        target: str | os.PathLike[str] | URL,
        *,
        migrate: bool = True,
        busy_timeout: float = 30.0,
        clock: Callable[[], datetime] = _now,
    ) -> Catalog:
        """Open (and create or upgrade, unless ``migrate`` is false) the catalog at ``target``.

        :param target: the path of a SQLite file (created with its folder when missing), or a URL:
            ``sqlite:///path``, ``postgresql+psycopg://user:password@host/db`` (``postgresql://``
            means the same).
        :param migrate: apply the packaged migrations up to the head revision; when false, a
            database that is not at the head is refused.
        :param busy_timeout: seconds a SQLite writer waits for another process's write lock.
        :param clock: the source of "now" (``created_at``, default times), for tests.
        :raises CatalogUnavailable: the database cannot be reached or migrated (the message shows
            the URL with its password masked).
        """
        url = resolve_url(target)
        engine = make_engine(url, busy_timeout=busy_timeout)
        log = get_logger("camhub.catalog", catalog=masked(url))
        head = _migrate.head_revision()
        try:
            with engine.execution_options(**WRITE_OPTIONS).begin() as connection:
                before = _migrate.current_revision(connection)
                if before is not None and not _migrate.is_known(before):
                    raise CatalogUnavailable(
                        f"the catalog at {masked(url)} is at schema revision {before!r}, which this camhub "
                        f"(head {head!r}) does not know: it was written by a newer camhub"
                    )
                if migrate and before != head:
                    if connection.dialect.name == "postgresql":
                        connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
                        before = _migrate.current_revision(connection)
                    if before != head:
                        _migrate.upgrade(connection)
                after = _migrate.current_revision(connection)
        except (SQLAlchemyError, CommandError) as exc:
            engine.dispose()
            raise CatalogUnavailable(f"cannot open the catalog at {masked(url)}: {_reason(exc)}") from exc
        except BaseException:
            engine.dispose()
            raise
        if after != head:
            engine.dispose()
            raise CatalogUnavailable(
                f"the catalog at {masked(url)} is at schema revision {after!r}, this camhub needs {head!r}: "
                "open it with migrate=True"
            )
        if before != after:
            log.info("catalog.migrated", from_revision=before, to_revision=after)
        return cls(engine, url, clock=clock)

    @property
    def url(self) -> str:
        """The database URL with its password masked."""
        return masked(self._url)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._url.get_backend_name()

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at."""
        with self._engine.connect() as connection:
            return _migrate.current_revision(connection)

    def close(self) -> None:
        """Close every pooled connection (the catalog cannot be used afterwards)."""
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self.url!r})"

    # -- transactions ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Session]:
        """One write transaction (serialised per process on SQLite)."""
        with (
            self._guard(),
            self._write_lock,
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Session]:
        """One read transaction (a consistent snapshot for the calls that read twice)."""
        with self._guard(), Session(self._engine) as session, session.begin():
            yield session

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError as exc:
            raise InvalidChange(f"the catalog refused the change: {_reason(exc)}") from exc
        except (OperationalError, InterfaceError) as exc:
            raise CatalogUnavailable(f"the catalog at {self.url} failed: {_reason(exc)}") from exc

    def _insert_ignore(self, session: Session, row: type[Any], values: dict[str, Any]) -> None:
        """``INSERT … ON CONFLICT DO NOTHING`` (two hubs may register the same device at once)."""
        insert = sqlite_insert if self._sqlite else pg_insert
        session.execute(insert(row).values(**values).on_conflict_do_nothing())

    # -- devices and channels --------------------------------------------------------------------

    def upsert_device(
        self,
        device_id: str,
        *,
        unit: str,
        vendor: str,
        kind: DeviceKind,
        host: str,
        name: str | None = None,
        model: str | None = None,
        serial: str | None = None,
        firmware: str | None = None,
        mac: str | None = None,
        seen_at: datetime | None = None,
    ) -> DeviceRecord:
        """Record a device as seen at ``seen_at`` (default: now), creating it on first sight.

        ``name`` and the identity fields given as ``None`` keep what was recorded before (the
        device was not asked); ``unit``, ``vendor``, ``kind`` and ``host`` are the configuration's.
        A change of model, serial, firmware or MAC is also written to the device's state history
        as ``identity_changed``, so what the device was at any time stays known (evidence).
        """
        at = utc(seen_at, "seen_at") if seen_at is not None else self._clock()
        identity = {"model": model, "serial": serial, "firmware": firmware, "mac": mac}
        described = {"name": name, **identity}
        with self._writing() as session:
            self._insert_ignore(
                session,
                DeviceRow,
                {
                    "id": device_id,
                    "unit": unit,
                    "vendor": vendor,
                    "kind": kind,
                    "host": host,
                    **identity,
                    "name": name or "",
                    "first_seen": at,
                    "last_seen": at,
                },
            )
            row = session.get_one(DeviceRow, device_id, with_for_update=True)
            changes = [
                f"{field}: {getattr(row, field)} → {value}"
                for field, value in identity.items()
                if value is not None and getattr(row, field) not in (None, value)
            ]
            row.unit, row.vendor, row.kind, row.host = unit, vendor, kind, host
            for field, value in described.items():
                if value is not None:
                    setattr(row, field, value)
            row.first_seen = min(row.first_seen, at)
            row.last_seen = max(row.last_seen, at)
            if changes:
                session.add(
                    DeviceStateRow(
                        device_id=device_id, at=at, state="identity_changed", detail="; ".join(changes)
                    )
                )
            session.flush()
            return _device(row)

    def device(self, device_id: str) -> DeviceRecord | None:
        """The device, or ``None`` when it was never recorded."""
        with self._reading() as session:
            row = session.get(DeviceRow, device_id)
            return None if row is None else _device(row)

    def devices(self, *, unit: str | None = None) -> list[DeviceRecord]:
        """Every recorded device (of ``unit`` when given), by id."""
        query = select(DeviceRow).order_by(DeviceRow.id)
        if unit is not None:
            query = query.where(DeviceRow.unit == unit)
        with self._reading() as session:
            return [_device(row) for row in session.scalars(query)]

    def upsert_channels(self, device_id: str, channels: Iterable[ChannelLike]) -> list[ChannelRecord]:
        """Record the channels of a device (new ones added, known ones updated); returns all of them.

        Channels missing from ``channels`` stay: their recordings still refer to them. A microphone
        is recorded with ``audio`` true.
        """
        with self._writing() as session:
            if session.get(DeviceRow, device_id) is None:
                raise NotInCatalog(f"device {device_id!r} is not in the catalog: upsert_device() first")
            for channel in channels:
                audio = channel.audio or channel.kind is ChannelKind.MICROPHONE
                values = {"kind": channel.kind, "name": channel.name, "audio": audio}
                self._insert_ignore(
                    session, ChannelRow, {"device_id": device_id, "channel": channel.id, **values}
                )
                row = session.get_one(ChannelRow, (device_id, channel.id), with_for_update=True)
                row.kind, row.name, row.audio = channel.kind, channel.name, audio
            session.flush()
            rows = session.scalars(
                select(ChannelRow).where(ChannelRow.device_id == device_id).order_by(ChannelRow.channel)
            )
            return [_channel(row) for row in rows]

    def channels(self, device_id: str) -> list[ChannelRecord]:
        """The recorded channels of a device, by number."""
        query = select(ChannelRow).where(ChannelRow.device_id == device_id).order_by(ChannelRow.channel)
        with self._reading() as session:
            return [_channel(row) for row in session.scalars(query)]

    # -- segments --------------------------------------------------------------------------------

    @staticmethod
    def _overlapping(device_id: str, channel: int, start: datetime, end: datetime) -> Select[Any]:
        """Segments of one channel overlapping ``[start, end)``, ordered; the columns are the caller's.

        The ``start >= start - MAX_SEGMENT_DURATION`` term is implied by the others (no segment is
        longer) but bounds the scan of ``ix_segments_channel_span`` on both sides.
        """
        return (
            select()
            .where(_overlaps(device_id, channel, start, end))
            .order_by(SegmentRow.start, SegmentRow.end)
        )

    def segments_query(self, device_id: str, channel: int, start: datetime, end: datetime) -> Select[Any]:
        """The statement :meth:`segments` runs (for ``EXPLAIN`` and benchmarks)."""
        return self._overlapping(device_id, channel, utc(start, "start"), utc(end, "end")).add_columns(
            *_SEGMENT_STORED
        )

    def add_segment(
        self,
        *,
        device_id: str,
        channel: int,
        start: datetime,
        end: datetime,
        size: int,
        sha256: str,
        container: str = "mp4",
        video_codec: str | None = None,
        audio_codec: str | None = None,
        audio_source_codec: str | None = None,
        duration: timedelta | None = None,
        local_path: str | os.PathLike[str] | None = None,
        source: SegmentSource = SegmentSource.LIVE,
        backfill_source: str | None = None,
        allow_overlap: bool = False,
        lease: tuple[str, int] | None = None,
    ) -> SegmentRecord:
        """Catalogue a sealed segment file (sync state ``pending``) and return its record.

        :param size: the file's size in bytes.
        :param sha256: the file's SHA-256, hex.
        :param duration: the media duration measured by the recorder (default ``end - start``).
        :param audio_source_codec: the codec the device sent when the audio was transcoded
            (G.711 ``pcm_mulaw``/``pcm_alaw`` → ``aac``).
        :param lease: ``(holder, token)`` of the lease the writer records the channel under
            (scale-out): the segment is refused unless it is still the channel's lease.
        :param source: ``live``, or ``backfill`` with ``backfill_source`` saying where from.
        :param allow_overlap: accept a segment that overlaps a recorded one (backfill of a span
            whose local copy exists but never reached the central store); refused by default.
        :raises NotInCatalog: the channel was not recorded with :meth:`upsert_channels`.
        :raises SegmentOverlap: the span overlaps a segment of the channel.
        :raises LeaseLost: ``lease`` is no longer the channel's (another hub took it over).
        :raises ValueError: an invalid value (naive time, empty or too long span, bad digest…).
        """
        start, end = utc(start, "start"), utc(end, "end")
        if end <= start:
            raise ValueError(f"a segment must end after it starts: [{start.isoformat()}, {end.isoformat()})")
        if end - start > MAX_SEGMENT_DURATION:
            raise ValueError(f"a segment may span at most {MAX_SEGMENT_DURATION}, not {end - start}")
        if size < 0:
            raise ValueError(f"size must not be negative, got {size}")
        digest = sha256.lower()
        if not _SHA256.match(digest):
            raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
        if duration is not None and duration < timedelta(0):
            raise ValueError(f"duration must not be negative, got {duration}")
        if (source is SegmentSource.BACKFILL) != bool(backfill_source):
            raise ValueError("backfill_source is required for a backfilled segment, and only for one")
        if video_codec is None and audio_codec is None:
            raise ValueError("a segment holds video, audio or both: give video_codec and/or audio_codec")
        with self._writing() as session:
            # Locking the channel row serialises writers of one channel across processes
            # (PostgreSQL), so the overlap check and the insert are atomic.
            owner = session.get(ChannelRow, (device_id, channel), with_for_update=True)
            if owner is None:
                raise NotInCatalog(
                    f"channel {channel} of device {device_id!r} is not in the catalog: upsert_channels() first"
                )
            if lease is not None:
                self.check_fence(session, device_id, channel, lease)
            if not allow_overlap:
                clash = session.execute(
                    self._overlapping(device_id, channel, start, end).add_columns(
                        SegmentRow.id, SegmentRow.start, SegmentRow.end
                    )
                ).first()
                if clash is not None:
                    raise SegmentOverlap(
                        f"segment [{start.isoformat()}, {end.isoformat()}) of {device_id}/{channel} overlaps "
                        f"segment {clash.id} [{clash.start.isoformat()}, {clash.end.isoformat()})"
                    )
            row = SegmentRow(
                device_id=device_id,
                channel=channel,
                start=start,
                end=end,
                duration=end - start if duration is None else duration,
                size=size,
                sha256=digest,
                video_codec=video_codec,
                audio_codec=audio_codec,
                audio_source_codec=audio_source_codec,
                container=container,
                local_path=None if local_path is None else os.fspath(local_path),
                storage_key=None,
                sync_state=SyncState.PENDING,
                synced_at=None,
                sync_failures=0,
                sync_error=None,
                source=source,
                backfill_source=backfill_source,
                created_at=self._clock(),
            )
            session.add(row)
            session.flush()
            return segment_record(row)

    def segment(self, segment_id: int) -> SegmentRecord | None:
        """The segment, or ``None`` when there is none with this id."""
        with self._reading() as session:
            row = session.execute(select(*_SEGMENT_STORED).where(SegmentRow.id == segment_id)).first()
            return None if row is None else _segments_from_stored((row,))[0]

    def segments(self, device_id: str, channel: int, start: datetime, end: datetime) -> list[SegmentRecord]:
        """The segments of one channel overlapping ``[start, end)``, by start time.

        A segment that ends exactly at ``start`` or starts exactly at ``end`` does not overlap; an
        empty window overlaps nothing.
        """
        query = self.segments_query(device_id, channel, start, end)
        if end <= start:
            return []
        with self._guard(), self._engine.connect() as connection:  # Core: no ORM overhead per row
            if not self._sqlite:  # one statement needs no transaction: no BEGIN and ROLLBACK sent
                connection.execution_options(isolation_level="AUTOCOMMIT")
            return _segments_from_stored(connection.execute(query).all())

    def last_segment(self, device_id: str, channel: int) -> SegmentRecord | None:
        """The channel's latest segment (where a restarted recorder carries on)."""
        query = (
            select(*_SEGMENT_STORED)
            .where(SegmentRow.device_id == device_id, SegmentRow.channel == channel)
            .order_by(SegmentRow.start.desc(), SegmentRow.id.desc())
            .limit(1)
        )
        with self._reading() as session:
            row = session.execute(query).first()
            return None if row is None else _segments_from_stored((row,))[0]

    def delete_segment(self, segment_id: int, *, allow_unsynced: bool = False) -> SegmentRecord:
        """Remove a segment's row and return what it was (for the caller's deletion record).

        The catalog refuses to forget a segment that has not reached the central store unless
        ``allow_unsynced`` (crash recovery of a file that is gone); retention policy (floor,
        holds) is the caller's.

        :raises NotInCatalog: no such segment.
        :raises InvalidChange: the segment is not synced and ``allow_unsynced`` is false.
        """
        with self._writing() as session:
            row = self._segment_row(session, segment_id)
            if row.sync_state is not SyncState.SYNCED and not allow_unsynced:
                raise InvalidChange(
                    f"segment {segment_id} is {row.sync_state.value}, not synced: deleting it would lose footage"
                )
            record = segment_record(row)
            if in_central(row):
                count_central(session, row, -1)
            session.delete(row)
            return record

    # -- sync state ------------------------------------------------------------------------------

    @staticmethod
    def _segment_row(session: Session, segment_id: int) -> SegmentRow:
        row = session.get(SegmentRow, segment_id, with_for_update=True)
        if row is None:
            raise NotInCatalog(f"segment {segment_id} is not in the catalog")
        return row

    def _transition(
        self, segment_id: int, to: SyncState, change: Callable[[SegmentRow], None]
    ) -> SegmentRecord:
        with self._writing() as session:
            row = self._segment_row(session, segment_id)
            if to not in _SYNC_TRANSITIONS[row.sync_state]:
                raise InvalidChange(
                    f"segment {segment_id} cannot go from {row.sync_state.value} to {to.value}"
                )
            present = in_central(row)
            row.sync_state = to
            change(row)
            if present != in_central(row):
                count_central(session, row, 1 if in_central(row) else -1)
            session.flush()
            return segment_record(row)

    def mark_uploading(self, segment_id: int) -> SegmentRecord:
        """The uploader started sending the segment (from ``pending`` or ``failed``)."""
        return self._transition(segment_id, SyncState.UPLOADING, lambda row: None)

    def mark_synced(self, segment_id: int, storage_key: str, at: datetime | None = None) -> SegmentRecord:
        """The central store holds the segment under ``storage_key`` and confirmed its SHA-256.

        Marking a synced segment again with the same key changes nothing (a retried call).

        :raises InvalidChange: already synced under another key, or the key belongs to another segment.
        """
        if not storage_key:
            raise ValueError("storage_key must not be empty")
        when = utc(at, "at") if at is not None else self._clock()
        with self._writing() as session:
            row = self._segment_row(session, segment_id)
            if row.sync_state is SyncState.SYNCED:
                if row.storage_key == storage_key:
                    return segment_record(row)
                raise InvalidChange(f"segment {segment_id} is already synced as {row.storage_key!r}")
            other = session.scalar(
                select(SegmentRow.id).where(
                    SegmentRow.storage_key == storage_key, SegmentRow.id != segment_id
                )
            )
            if other is not None:
                raise InvalidChange(f"storage key {storage_key!r} already belongs to segment {other}")
            row.sync_state, row.storage_key, row.synced_at, row.sync_error = (
                SyncState.SYNCED,
                storage_key,
                when,
                None,
            )
            if in_central(row):
                count_central(session, row, 1)
            session.flush()
            return segment_record(row)

    def mark_failed(self, segment_id: int, error: str) -> SegmentRecord:
        """An upload failed: keep the reason (at most 1,000 bytes of it: the row is in an index too,
        and a PostgreSQL index entry has a size limit) and count the failure; the segment stays
        queued."""

        def change(row: SegmentRow) -> None:
            row.sync_error = error.encode("utf-8")[:1000].decode("utf-8", "ignore")
            row.sync_failures += 1

        return self._transition(segment_id, SyncState.FAILED, change)

    def mark_pending(self, segment_id: int) -> SegmentRecord:
        """Queue the segment again (an interrupted upload, or a central copy found damaged)."""

        def change(row: SegmentRow) -> None:
            row.synced_at = None

        return self._transition(segment_id, SyncState.PENDING, change)

    def unsynced(
        self,
        limit: int = 100,
        *,
        device_id: str | None = None,
        after: tuple[datetime, int] | None = None,
    ) -> list[SegmentRecord]:
        """Up to ``limit`` segments not yet in the central store, oldest first (the upload order).

        Includes ``uploading`` ones: after a crash nobody is sending them any more. ``after``:
        the ``(start, id)`` of the last segment of the previous page, to read the next one.
        """
        query = (
            select(*_SEGMENT_STORED).where(_NOT_SYNCED).order_by(SegmentRow.start, SegmentRow.id).limit(limit)
        )
        if device_id is not None:
            query = query.where(SegmentRow.device_id == device_id)
        if after is not None:
            start, segment_id = after
            query = query.where(
                or_(SegmentRow.start > start, and_(SegmentRow.start == start, SegmentRow.id > segment_id))
            )
        with self._reading() as session:
            return _segments_from_stored(session.execute(query))

    def backlog(self) -> Backlog:
        """How many segments (and bytes) wait for the central store, and since when."""
        query = select(
            func.count(SegmentRow.id), func.coalesce(func.sum(SegmentRow.size), 0), func.min(SegmentRow.start)
        ).where(_NOT_SYNCED)
        with self._reading() as session:
            count, size, oldest = session.execute(query).one()
            return Backlog(count=int(count), size=int(size), oldest=oldest)

    # -- gaps ------------------------------------------------------------------------------------

    def open_gap(
        self, device_id: str, channel: int, start: datetime, cause: GapCause, detail: str = ""
    ) -> int:
        """Record the start of an outage of a channel; returns the gap's id (for :meth:`close_gap`).

        :raises NotInCatalog: the channel was not recorded with :meth:`upsert_channels`.
        """
        at = utc(start, "start")
        with self._writing() as session:
            if session.get(ChannelRow, (device_id, channel)) is None:
                raise NotInCatalog(f"channel {channel} of device {device_id!r} is not in the catalog")
            row = GapRow(device_id=device_id, channel=channel, start=at, end=None, cause=cause, detail=detail)
            session.add(row)
            session.flush()
            return row.id

    def close_gap(self, gap_id: int, end: datetime, *, closed_by: str | None = None) -> GapRecord:
        """Record the end of an outage; ``closed_by`` says what ended it (``reconnected``, a backfill…).

        :raises NotInCatalog: no such gap.
        :raises InvalidChange: the gap is already closed, or ``end`` is not after its start.
        """
        at = utc(end, "end")
        with self._writing() as session:
            row = session.get(GapRow, gap_id, with_for_update=True)
            if row is None:
                raise NotInCatalog(f"gap {gap_id} is not in the catalog")
            if row.end is not None:
                raise InvalidChange(f"gap {gap_id} was already closed at {row.end.isoformat()}")
            if at <= row.start:
                raise InvalidChange(
                    f"gap {gap_id} cannot end at {at.isoformat()}, not after its start {row.start.isoformat()}"
                )
            row.end, row.closed_by = at, closed_by
            session.flush()
            return _gap(row)

    def recording_starts(self, device_id: str, channel: int, at: datetime) -> datetime | None:
        """A recorder of the channel starts at ``at``: close the gaps a stopped hub left open, and say
        until when the channel is accounted for.

        A gap still open was opened by a hub that stopped without closing it (killed, or a machine
        that went down) or that lost the channel's lease; it ends at ``at`` (``closed_by`` ``hub
        restarted``).

        :returns: the end of the channel's latest segment or gap (both ending by ``at``), from where
            nothing was recorded until the new recorder's first segment or gap; ``None`` for a
            channel never recorded.
        """
        when = utc(at, "at")
        with self._writing() as session:
            for row in session.scalars(
                select(GapRow)
                .where(GapRow.device_id == device_id, GapRow.channel == channel, GapRow.end.is_(None))
                .with_for_update()
            ):
                row.end, row.closed_by = max(when, row.start + _US), "hub restarted"
            session.flush()
            ends = [
                session.scalar(
                    select(type_coerce(table.end, BigInteger))
                    .where(table.device_id == device_id, table.channel == channel)
                    .order_by(table.start.desc())
                    .limit(1)
                )
                for table in (SegmentRow, GapRow)  # the latest to start ends last: none overlap
            ]
        known = [end for end in ends if end is not None]
        return from_micros(min(max(known), to_micros(when))) if known else None

    def gap(self, gap_id: int) -> GapRecord | None:
        """The gap, or ``None`` when there is none with this id."""
        with self._reading() as session:
            row = session.execute(select(*_GAP_COLUMNS).where(GapRow.id == gap_id)).first()
            return None if row is None else _gap(row)

    def gaps(self, device_id: str, channel: int, start: datetime, end: datetime) -> list[GapRecord]:
        """The gaps of one channel overlapping ``[start, end)`` (open ones reach to the future), by start."""
        a, b = utc(start, "start"), utc(end, "end")
        if b <= a:
            return []
        with self._reading() as session:
            return list(self._gaps_in(session, device_id, channel, a, b))

    def open_gaps(self, device_id: str | None = None) -> list[GapRecord]:
        """The outages still open (of one device, or all), by device, channel and start."""
        query = (
            select(*_GAP_COLUMNS)
            .where(GapRow.end.is_(None))
            .order_by(GapRow.device_id, GapRow.channel, GapRow.start, GapRow.id)
        )
        if device_id is not None:
            query = query.where(GapRow.device_id == device_id)
        with self._reading() as session:
            return [_gap(row) for row in session.execute(query)]

    # -- device states ---------------------------------------------------------------------------

    def record_state(
        self, device_id: str, state: str, detail: str = "", at: datetime | None = None
    ) -> StateRecord:
        """Append to a device's state history (``online``, ``unreachable``, ``auth_failed``, …).

        :raises NotInCatalog: the device was not recorded with :meth:`upsert_device`.
        """
        when = utc(at, "at") if at is not None else self._clock()
        with self._writing() as session:
            if session.get(DeviceRow, device_id) is None:
                raise NotInCatalog(f"device {device_id!r} is not in the catalog: upsert_device() first")
            row = DeviceStateRow(device_id=device_id, at=when, state=state, detail=detail)
            session.add(row)
            session.flush()
            return _state(row)

    def states(self, device_id: str, start: datetime, end: datetime) -> list[StateRecord]:
        """A device's state changes at times in ``[start, end)``, oldest first."""
        query = (
            select(*_STATE_COLUMNS)
            .where(
                DeviceStateRow.device_id == device_id,
                DeviceStateRow.at >= utc(start, "start"),
                DeviceStateRow.at < utc(end, "end"),
            )
            .order_by(DeviceStateRow.at, DeviceStateRow.id)
        )
        with self._reading() as session:
            return [_state(row) for row in session.execute(query)]

    def last_state(self, device_id: str) -> StateRecord | None:
        """The device's latest state, or ``None`` when none was recorded."""
        query = (
            select(*_STATE_COLUMNS)
            .where(DeviceStateRow.device_id == device_id)
            .order_by(DeviceStateRow.at.desc(), DeviceStateRow.id.desc())
            .limit(1)
        )
        with self._reading() as session:
            row = session.execute(query).first()
            return None if row is None else _state(row)

    # -- coverage --------------------------------------------------------------------------------

    def coverage(
        self, device_id: str, channel: int, start: datetime, end: datetime, *, synced_only: bool = False
    ) -> Coverage:
        """How much of ``[start, end)`` of a channel is recorded, the holes, and the gaps that explain them.

        :param synced_only: count only segments in the central store (synced, and not deleted from
            it since: central coverage, R-6.2) instead of every catalogued segment.
        """
        found = self.coverages(
            start, end, channels=[(device_id, channel)], synced_only=synced_only, exact=True
        )
        return found[(device_id, channel)]

    def coverages(
        self,
        start: datetime,
        end: datetime,
        *,
        channels: Iterable[tuple[str, int]] | None = None,
        synced_only: bool = False,
        exact: bool = False,
    ) -> dict[tuple[str, int], Coverage]:
        """:meth:`coverage` of many channels at once, computed by the database.

        The union of each channel's segments is measured in SQL (an aggregate over the channel
        range index, and a window function for the channels with holes inside or backfill), so a
        province's week — millions of segments — never travels to Python: only one total per
        channel and one row per hole do. Central coverage (``synced_only`` and not ``exact``) reads
        the per-channel, per-day summary ``coverage_days`` and measures from the segments only the
        days neither wholly covered nor empty, and the window's partial first and last days.

        :param channels: the ``(device id, channel)`` pairs wanted (each gets a :class:`Coverage`,
            an empty one when nothing of it is catalogued); default: every catalogued channel.
        :param synced_only: count only segments in the central store (as :meth:`coverage`).
        :param exact: measure every channel's union with the window function. By default one plain
            aggregate serves the channels whose segments add up to the span from their first to
            their last one and hold no backfilled segment: that is exact as long as no two live
            segments overlap, which :meth:`add_segment` refuses unless ``allow_overlap``.
        :returns: the coverage of each channel, by ``(device id, channel)``.
        """
        a, b = utc(start, "start"), utc(end, "end")
        lo, hi = to_micros(a), to_micros(b)
        if hi < lo:
            raise ValueError(f"the window ends before it starts: [{a.isoformat()}, {b.isoformat()})")
        wanted = None if channels is None else sorted(set(channels))
        devices = None if wanted is None else sorted({device for device, _ in wanted})
        found = _Found()
        gaps: dict[tuple[str, int], list[GapRecord]] = {}
        with self._reading() as session:
            if wanted is None:
                query = select(ChannelRow.device_id, ChannelRow.channel).order_by(
                    ChannelRow.device_id, ChannelRow.channel
                )
                wanted = [(row.device_id, row.channel) for row in session.execute(query)]
            if hi > lo and wanted:
                if synced_only and not exact:
                    self._from_summary(session, lo, hi, wanted, found)
                else:
                    self._tally_or_measure(session, lo, hi, set(wanted), synced_only, exact, found)
                for gap in self._gaps_of(session, devices, a, b):
                    gaps.setdefault((gap.device_id, gap.channel), []).append(gap)
        result = {}
        for key in wanted:
            missing, last_end, backfilled = found.totals.get(key, (hi - lo, lo, 0))
            spans = found.holes.get(key, [])
            if last_end < hi:
                spans.append(Span(start=from_micros(last_end), end=b))
            result[key] = Coverage(
                device_id=key[0],
                channel=key[1],
                start=a,
                end=b,
                covered=timedelta(microseconds=hi - lo - missing),
                holes=tuple(spans),
                gaps=tuple(gaps.get(key, ())),
                backfilled=timedelta(microseconds=backfilled),
            )
        return result

    def _tally_or_measure(
        self,
        session: Session,
        lo: int,
        hi: int,
        channels: set[tuple[str, int]],
        synced_only: bool,
        exact: bool,
        found: _Found,
    ) -> None:
        """The coverage of ``channels`` in ``[lo, hi)`` (µs) from the segments: into ``found``.

        First a plain aggregate, one pass over the index: where a channel's segments add up to the
        span from its first to its last one and none is backfilled, they do not overlap (the
        catalog refuses overlapping live segments), so the only holes are before the first and
        after the last. The others (all of them when ``exact``) are measured by a window function.
        """
        inexact: set[tuple[str, int]] = set()
        for device, number, length, first, last, backfills in session.execute(
            self._tally(lo, hi, channels, synced_only)
        ):
            if (device, number) not in channels:
                continue
            length = int(length)  # PostgreSQL sums bigints as numeric
            if exact or backfills or length != min(last, hi) - max(first, lo):
                inexact.add((device, number))
                continue
            found.totals[(device, number)] = (hi - lo - length, last, 0)
            if first > lo:
                found.holes[(device, number)] = [Span(start=from_micros(lo), end=from_micros(first))]
        if inexact:
            self._measure(session, lo, hi, inexact, synced_only, found)

    def _from_summary(
        self,
        session: Session,
        lo: int,
        hi: int,
        wanted: list[tuple[str, int]],
        found: _Found,
    ) -> None:
        """Central coverage of ``wanted`` in ``[lo, hi)`` (µs) from ``coverage_days``, as
        :meth:`_tally_or_measure` would give it (every hole in ``found.holes``, ``hi`` as the last end).

        The window is cut at UTC midnights. A day with nothing central is a hole; a day of live
        segments whose ``central_us`` fills its central span (``first_us`` to ``last_us``: live
        segments do not overlap) is covered over that span, with holes before and after it only
        — a day wholly covered, or today, recorded up to now. Only the other parts are measured
        from the segments, one query per distinct part (the days with holes inside, backfill, or
        a span not known).
        """
        cuts = [lo, *range(lo - lo % DAY_US + DAY_US, hi, DAY_US), hi]
        parts = list(itertools.pairwise(cuts))
        channels = set(wanted)
        days: dict[tuple[str, int, int], tuple[int, int] | None] = {}
        query = select(
            CoverageDayRow.device_id,
            CoverageDayRow.channel,
            CoverageDayRow.day_us,
            CoverageDayRow.central_us,
            CoverageDayRow.backfilled_us,
            CoverageDayRow.first_us,
            CoverageDayRow.last_us,
        ).where(
            CoverageDayRow.device_id.in_(sorted({device for device, _ in wanted})),
            CoverageDayRow.day_us >= lo - lo % DAY_US,
            CoverageDayRow.day_us < hi,
        )
        for device, number, day_us, central, backfilled, first_us, last_us in session.execute(query):
            if (device, number) not in channels or not central:
                continue
            if first_us is None or last_us is None or backfilled or central != last_us - first_us:
                days[(device, number, day_us)] = None  # holes inside, backfill, or a span not known
            else:
                days[(device, number, day_us)] = (first_us, last_us)
        # Per channel and part: the part's covered span ((a, a) when none), or None (to measure).
        measured: dict[tuple[int, int], set[tuple[str, int]]] = {}
        state: dict[tuple[str, int, int], tuple[int, int] | None] = {}
        for key in channels:
            for part_lo, part_hi in parts:
                central_span = days.get((*key, part_lo - part_lo % DAY_US), (part_lo, part_lo))
                if central_span is None:
                    measured.setdefault((part_lo, part_hi), set()).add(key)
                    state[(*key, part_lo)] = None
                else:
                    first, last = max(central_span[0], part_lo), min(central_span[1], part_hi)
                    state[(*key, part_lo)] = (first, last) if first < last else (part_lo, part_lo)
        by_part: dict[tuple[int, int], _Found] = {}
        for (part_lo, part_hi), keys in measured.items():
            by_part[(part_lo, part_hi)] = _Found()
            self._tally_or_measure(session, part_lo, part_hi, keys, True, False, by_part[(part_lo, part_hi)])
        for key in channels:
            missing, backfilled, spans = 0, 0, list[Span]()
            for part_lo, part_hi in parts:
                covered = state[(*key, part_lo)]
                if covered is None:
                    part = by_part[(part_lo, part_hi)]
                    part_missing, last_end, part_backfilled = part.totals.get(
                        key, (part_hi - part_lo, part_lo, 0)
                    )
                    pieces = [(hole.start, hole.end) for hole in part.holes.get(key, [])]
                    if last_end < part_hi:
                        pieces.append((from_micros(last_end), from_micros(part_hi)))
                    missing, backfilled = missing + part_missing, backfilled + part_backfilled
                else:
                    first, last = covered
                    if first == last:  # nothing of the part
                        first = last = part_hi
                    holes = [(part_lo, first), (last, part_hi)]
                    pieces = [(from_micros(a), from_micros(b)) for a, b in holes if a < b]
                    missing += part_hi - part_lo - (last - first)
                for piece_start, piece_end in pieces:
                    if spans and spans[-1].end == piece_start:  # a hole across midnight is one hole
                        piece_start = spans.pop().start
                    spans.append(Span(start=piece_start, end=piece_end))
            found.totals[key] = (missing, hi, backfilled)
            if spans:
                found.holes[key] = spans

    def _measure(
        self,
        session: Session,
        lo: int,
        hi: int,
        channels: set[tuple[str, int]],
        synced_only: bool,
        found: _Found,
    ) -> None:
        """The exact union of ``channels``: into ``found``."""
        runs = self._runs(lo, hi, channels, synced_only)
        summary = select(
            runs.c.device_id,
            runs.c.channel,
            func.coalesce(func.sum(runs.c.hole), 0),
            func.max(runs.c.end_us),
            func.sum(runs.c.backfilled),
        ).group_by(runs.c.device_id, runs.c.channel)
        for device, number, hole_sum, last_end, backfilled in session.execute(summary):
            if (device, number) in channels:
                found.totals[(device, number)] = (
                    int(hole_sum) + max(hi - last_end, 0),
                    last_end,
                    int(backfilled),
                )
        starts = (
            select(runs.c.device_id, runs.c.channel, runs.c.before, runs.c.start_us)
            .where(runs.c.hole.is_not(None))
            .order_by(runs.c.device_id, runs.c.channel, runs.c.start_us)
        )
        for device, number, hole_start, hole_end in session.execute(starts):
            if (device, number) in channels:
                found.holes.setdefault((device, number), []).append(
                    Span(start=from_micros(hole_start), end=from_micros(hole_end))
                )

    def _tally(
        self, lo: int, hi: int, channels: set[tuple[str, int]] | None, synced_only: bool
    ) -> Select[Any]:
        """Per channel with segments overlapping ``[lo, hi)`` (µs): the sum of their lengths inside
        it, the first start, the last end, how many are backfilled. One pass over the index."""
        start, end = type_coerce(SegmentRow.start, BigInteger), type_coerce(SegmentRow.end, BigInteger)
        return (
            select(
                SegmentRow.device_id,
                SegmentRow.channel,
                func.sum(self._least(end, hi) - self._greatest(start, lo)),
                func.min(start),
                func.max(end),
                func.count(case((SegmentRow.source == SegmentSource.BACKFILL, 1))),
            )
            .where(*self._window(start, end, lo, hi, channels, synced_only))
            .group_by(SegmentRow.device_id, SegmentRow.channel)
        )

    @staticmethod
    def _window(
        start: Any, end: Any, lo: int, hi: int, channels: set[tuple[str, int]] | None, synced_only: bool
    ) -> list[ColumnElement[bool]]:
        """Segments overlapping ``[lo, hi)`` (of ``channels``; in the central store if ``synced_only``).

        The channels are asked as ``device_id IN (…) AND channel IN (…)``: both leading columns of
        ``ix_segments_channel_span`` bound, so each channel's scan is its ``start_us`` range only
        (with the devices alone it would read every channel's whole history). The few other
        channels of those devices that it also matches are the caller's to leave out.
        """
        terms = [start >= lo - MAX_SEGMENT_DURATION // _US, start < hi, end > lo]
        if synced_only:
            terms += [SegmentRow.sync_state == SyncState.SYNCED, SegmentRow.central_deleted_at.is_(None)]
        if channels is not None:
            terms.append(SegmentRow.device_id.in_(sorted({device for device, _ in channels})))
            terms.append(SegmentRow.channel.in_(sorted({number for _, number in channels})))
        return terms

    def outside_central(self, spans: Iterable[tuple[str, int, Span]]) -> Iterator[SegmentRecord]:
        """The segments overlapping the given spans of channels that are not in the central store.

        Those not synced yet, and those whose central copy was deleted: what explains a hole in
        central coverage that the recorder did fill. Each span is ``(device id, channel, span)``;
        a segment overlapping several spans comes once per span. Streamed (bounded memory), by
        channel and start within each batch of spans.
        """
        spans = list(spans)
        central = and_(SegmentRow.sync_state == SyncState.SYNCED, SegmentRow.central_deleted_at.is_(None))
        for first in range(0, len(spans), _SPANS_PER_QUERY):
            # One OR term per span: both databases scan ix_segments_channel_span once per term.
            terms = [
                _overlaps(device_id, channel, span.start, span.end)
                for device_id, channel, span in spans[first : first + _SPANS_PER_QUERY]
            ]
            query = (
                select(*_SEGMENT_STORED)
                .where(or_(*terms), not_(central))
                .order_by(SegmentRow.device_id, SegmentRow.channel, SegmentRow.start)
            )
            with self._guard(), self._engine.connect() as connection:
                result = connection.execution_options(yield_per=1000).execute(query)
                for rows in result.partitions():
                    yield from _segments_from_stored(rows)

    def _runs(self, lo: int, hi: int, channels: set[tuple[str, int]] | None, synced_only: bool) -> Any:
        """One row per segment overlapping ``[lo, hi)`` (µs), with the hole before it, if any.

        ``before`` is the furthest end of the channel's earlier segments (or ``lo``): the segment
        opens a hole ``[before, start_us)`` when it starts later (``hole`` is then its length,
        else NULL). ``backfilled`` is the part of a backfilled segment not covered by earlier
        ones. Ordering by ``(start, end)`` per channel is the order of ``ix_segments_channel_span``.
        """
        start, end = type_coerce(SegmentRow.start, BigInteger), type_coerce(SegmentRow.end, BigInteger)
        reach = func.max(end).over(
            partition_by=(SegmentRow.device_id, SegmentRow.channel), order_by=(start, end), rows=(None, -1)
        )
        inner = select(
            SegmentRow.device_id,
            SegmentRow.channel,
            start.label("start_us"),
            end.label("end_us"),
            SegmentRow.source,
            reach.label("reach"),
        ).where(*self._window(start, end, lo, hi, channels, synced_only))
        rows = inner.subquery()
        before = self._greatest(func.coalesce(rows.c.reach, lo), lo)
        covered_here = self._greatest(
            self._least(rows.c.end_us, hi) - self._greatest(rows.c.start_us, before), 0
        )
        return select(
            rows.c.device_id,
            rows.c.channel,
            rows.c.start_us,
            rows.c.end_us,
            before.label("before"),
            case((rows.c.start_us > before, rows.c.start_us - before)).label("hole"),
            case((rows.c.source == SegmentSource.BACKFILL, covered_here), else_=0).label("backfilled"),
        ).subquery()

    def _greatest(self, *values: Any) -> Any:
        return func.max(*values) if self._sqlite else func.greatest(*values)

    def _least(self, *values: Any) -> Any:
        return func.min(*values) if self._sqlite else func.least(*values)

    @staticmethod
    def _gaps_of(
        session: Session, devices: list[str] | None, a: datetime, b: datetime
    ) -> Iterator[GapRecord]:
        query = (
            select(*_GAP_COLUMNS)
            .where(GapRow.start < b, or_(GapRow.end.is_(None), GapRow.end > a))
            .order_by(GapRow.device_id, GapRow.channel, GapRow.start, GapRow.id)
        )
        if devices is not None:
            query = query.where(GapRow.device_id.in_(devices))
        for row in session.execute(query):
            yield _gap(row)

    @staticmethod
    def _gaps_in(
        session: Session, device_id: str, channel: int, a: datetime, b: datetime
    ) -> Iterator[GapRecord]:
        query = (
            select(*_GAP_COLUMNS)
            .where(
                GapRow.device_id == device_id,
                GapRow.channel == channel,
                GapRow.start < b,
                or_(GapRow.end.is_(None), GapRow.end > a),
            )
            .order_by(GapRow.start, GapRow.id)
        )
        for row in session.execute(query):
            yield _gap(row)

    # -- uploader queries ------------------------------------------------------------------------

    def segment_by_storage_key(self, storage_key: str) -> SegmentRecord | None:
        """The segment that owns ``storage_key`` in the central store, if any (the key is unique)."""
        query = select(*_SEGMENT_STORED).where(SegmentRow.storage_key == storage_key)
        with self._reading() as session:
            row = session.execute(query).first()
            return None if row is None else _segments_from_stored((row,))[0]

    def uploading(self, limit: int = 10_000) -> list[SegmentRecord]:
        """Segments left ``uploading``, oldest first: after a restart nobody is sending them."""
        query = (
            select(*_SEGMENT_STORED)
            .where(_NOT_SYNCED, SegmentRow.sync_state == SyncState.UPLOADING)
            .order_by(SegmentRow.start, SegmentRow.id)
            .limit(limit)
        )
        with self._reading() as session:
            return _segments_from_stored(session.execute(query))

    # -- backfill --------------------------------------------------------------------------------

    def fill_gap(self, gap_id: int, filled: Iterable[Span], *, filled_by: str) -> list[GapRecord]:
        """Shrink a closed gap to what the ``filled`` spans (footage recorded since) leave of it.

        The gap's row keeps the first part still missing, new rows with the same cause and detail
        take the others, and a gap nothing is left of is removed. A part that now ends where
        filled footage begins is ``closed_by`` ``filled_by`` (e.g. ``backfill:<device>``); the part
        that ends where the gap ended keeps how it ended. Returns what is left, in order.

        :raises NotInCatalog: no such gap.
        :raises InvalidChange: the gap is still open.
        """
        with self._writing() as session:
            row = session.get(GapRow, gap_id, with_for_update=True)
            if row is None:
                raise NotInCatalog(f"gap {gap_id} is not in the catalog")
            if row.end is None:
                raise InvalidChange(f"gap {gap_id} is still open: fill it once it has closed")
            left = [(row.start, row.end)]
            for span in filled:
                a, b = utc(span.start, "start"), utc(span.end, "end")
                left = [p for s, e in left for p in ((s, min(e, a)), (max(s, b), e)) if p[0] < p[1]]
            if not left:
                session.delete(row)
                return []
            end, closed_by = row.end, row.closed_by
            rows = []
            for index, (start, stop) in enumerate(left):
                piece = row
                if index:
                    piece = GapRow(
                        device_id=row.device_id, channel=row.channel, cause=row.cause, detail=row.detail
                    )
                    session.add(piece)
                piece.start, piece.end = start, stop
                piece.closed_by = closed_by if stop == end else filled_by
                rows.append(piece)
            session.flush()
            return [_gap(piece) for piece in rows]
