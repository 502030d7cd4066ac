"""The catalog's retention side: holds, the deletion audit, and the queries retention runs.

A mixin of :class:`~camhub.catalog.Catalog` (kept in its own module: the policy lives in
:mod:`camhub.retention`; these are only the reads and writes it needs, each one transaction).

Candidate queries walk the segments oldest first in batches, resumed after the last
``(start, id)`` seen (keyset pagination: each batch is one bounded index range, whatever the
size of the catalog), and never decide anything: :func:`camhub.retention.protection` does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import URL, BigInteger, and_, case, literal, null, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from camhub.catalog._errors import InvalidChange, NotInCatalog
from camhub.catalog._records import (
    DeletionRecord,
    HoldKind,
    HoldRecord,
    SegmentRecord,
    SegmentSource,
    StorageTier,
    SyncState,
)
from camhub.catalog._schema import CoverageDayRow, DeletionRow, DeviceRow, HoldRow, SegmentRow
from camhub.catalog._types import UtcMicros, to_micros, utc

__all__ = ["DAY_US", "RetentionCatalog", "count_central", "in_central", "segment_record"]

#: One UTC day in microseconds: the unit of ``coverage_days``.
DAY_US = 86_400_000_000


def in_central(row: SegmentRow) -> bool:
    """Whether the segment's copy is in the central store (synced, not deleted from it since)."""
    return row.sync_state is SyncState.SYNCED and row.central_deleted_at is None


def count_central(session: Session, row: SegmentRow, sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) the segment's central presence in ``coverage_days``.

    Called in the transaction of the change, once per change of :func:`in_central`. Each UTC day
    the segment touches gets its own part; ``INSERT … ON CONFLICT DO UPDATE SET x = x + d`` so that
    concurrent writers of one day add up instead of overwriting each other. The day's central span
    (``first_us``, ``last_us``) widens to take an added part in (or starts with it, in a day that
    had none); a part taken away at either end of it leaves the span unknown (NULL): the coverage
    report then measures that day from the segments.
    """
    start, end = to_micros(row.start), to_micros(row.end)
    backfill = row.source is SegmentSource.BACKFILL
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    day = start - start % DAY_US
    while day < end:
        first, last = max(start, day), min(end, day + DAY_US)
        piece = sign * (last - first)
        statement = insert(CoverageDayRow).values(
            device_id=row.device_id,
            channel=row.channel,
            day_us=day,
            central_us=piece,
            backfilled_us=piece if backfill else 0,
            segments=sign,
            first_us=first,
            last_us=last,
        )
        added = statement.excluded
        known = CoverageDayRow.segments > 0
        if sign > 0:
            span = {
                "first_us": case(
                    (~known, added.first_us),
                    (CoverageDayRow.first_us > added.first_us, added.first_us),
                    else_=CoverageDayRow.first_us,
                ),
                "last_us": case(
                    (~known, added.last_us),
                    (CoverageDayRow.last_us < added.last_us, added.last_us),
                    else_=CoverageDayRow.last_us,
                ),
            }
        else:
            at_an_end = or_(
                CoverageDayRow.first_us >= added.first_us, CoverageDayRow.last_us <= added.last_us
            )
            span = {
                "first_us": case((at_an_end, null()), else_=CoverageDayRow.first_us),
                "last_us": case((at_an_end, null()), else_=CoverageDayRow.last_us),
            }
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[CoverageDayRow.device_id, CoverageDayRow.channel, CoverageDayRow.day_us],
                set_={
                    "central_us": CoverageDayRow.central_us + added.central_us,
                    "backfilled_us": CoverageDayRow.backfilled_us + added.backfilled_us,
                    "segments": CoverageDayRow.segments + added.segments,
                    **span,
                },
            )
        )
        day += DAY_US


def _converter(cls: type[Any]) -> Callable[[Any], Any]:
    names = tuple(field.name for field in attrs.fields(cls))
    return lambda row: cls(**{name: getattr(row, name) for name in names})


_hold: Callable[[HoldRow], HoldRecord] = _converter(HoldRecord)
_deletion: Callable[[DeletionRow], DeletionRecord] = _converter(DeletionRecord)


def segment_record(row: SegmentRow) -> SegmentRecord:
    """The :class:`SegmentRecord` of an ORM row (the bulk reads build theirs from stored values)."""
    return SegmentRecord(**{name: getattr(row, name) for name in SegmentRecord._fields})


def _forget_copy(
    session: Session, row: SegmentRow, tier: StorageTier, location: str, rule: str, by: str, when: datetime
) -> DeletionRecord:
    """In ``session``: the segment forgets its ``tier`` copy at ``location`` (its row goes with the
    last copy), and the deletion is audited."""
    if tier is StorageTier.LOCAL:
        if row.local_path != location:
            raise InvalidChange(f"segment {row.id} has no local copy at {location!r}")
        row.local_path = None
    else:
        if row.storage_key != location or row.central_deleted_at is not None:
            raise InvalidChange(f"segment {row.id} has no central copy under {location!r}")
        if in_central(row):
            count_central(session, row, -1)
        row.central_deleted_at = when
    audit = DeletionRow(
        segment_id=row.id,
        device_id=row.device_id,
        channel=row.channel,
        start=row.start,
        end=row.end,
        tier=tier,
        location=location,
        sha256=row.sha256,
        size=row.size,
        rule=rule,
        deleted_at=when,
        deleted_by=by,
    )
    session.add(audit)
    central_left = row.storage_key is not None and row.central_deleted_at is None
    if row.local_path is None and not central_left:
        session.delete(row)
    session.flush()
    return _deletion(audit)


class RetentionCatalog:
    """Holds, deletions and retention candidates (methods of :class:`~camhub.catalog.Catalog`)."""

    _clock: Callable[[], datetime]
    _sqlite: bool
    _url: URL

    if TYPE_CHECKING:  # provided by Catalog

        def _writing(self) -> contextlib.AbstractContextManager[Session]: ...
        def _reading(self) -> contextlib.AbstractContextManager[Session]: ...

    # -- holds -----------------------------------------------------------------------------------

    def add_hold(
        self,
        device_id: str,
        channel: int | None,
        start: datetime,
        end: datetime,
        *,
        kind: HoldKind,
        reason: str,
        by: str,
        at: datetime | None = None,
    ) -> HoldRecord:
        """Hold ``[start, end)`` of a device's channel (every channel when ``channel`` is ``None``).

        Held footage is never deleted until the hold is released (:meth:`release_hold`).

        :param kind: why: an export, an incident, or a manual hold.
        :param reason: what for, in words (required: a hold nobody can explain is never released).
        :param by: who placed it (a person's id or name, or a hub).
        :raises ValueError: an empty reason or ``by``, or ``end`` not after ``start``.
        :raises NotInCatalog: the device is not in the catalog.
        """
        a, b = utc(start, "start"), utc(end, "end")
        if not reason.strip():
            raise ValueError("a hold needs a reason (what it is for, e.g. an incident or export number)")
        if not by.strip():
            raise ValueError("a hold needs the name of who places it")
        if b <= a:
            raise ValueError(f"a hold must end after it starts: [{a.isoformat()}, {b.isoformat()})")
        when = utc(at, "at") if at is not None else self._clock()
        # Locked: a deletion in progress on the device (delete_copy) ends before the hold exists.
        with self._holds_locked(), self._writing() as session:
            if session.get(DeviceRow, device_id, with_for_update={"key_share": True}) is None:
                raise NotInCatalog(f"device {device_id!r} is not in the catalog")
            row = HoldRow(
                device_id=device_id,
                channel=channel,
                start=a,
                end=b,
                kind=kind,
                reason=reason.strip(),
                created_by=by,
                created_at=when,
                released_at=None,
                released_by=None,
            )
            session.add(row)
            session.flush()
            return _hold(row)

    def release_hold(self, hold_id: int, *, by: str, at: datetime | None = None) -> HoldRecord:
        """Release a hold (the row stays, with who released it and when).

        :raises NotInCatalog: no such hold.
        :raises InvalidChange: it was already released.
        """
        when = utc(at, "at") if at is not None else self._clock()
        with self._writing() as session:
            row = session.get(HoldRow, hold_id, with_for_update=True)
            if row is None:
                raise NotInCatalog(f"hold {hold_id} is not in the catalog")
            if row.released_at is not None:
                raise InvalidChange(
                    f"hold {hold_id} was already released by {row.released_by} at {row.released_at.isoformat()}"
                )
            row.released_at, row.released_by = when, by
            session.flush()
            return _hold(row)

    def hold(self, hold_id: int) -> HoldRecord | None:
        """The hold, or ``None`` when there is none with this id."""
        with self._reading() as session:
            row = session.get(HoldRow, hold_id)
            return None if row is None else _hold(row)

    def holds(
        self,
        *,
        device_id: str | None = None,
        channel: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        active_only: bool = True,
    ) -> list[HoldRecord]:
        """Holds (active ones only, unless ``active_only`` is false), by device, start and id.

        :param device_id: only this device's holds.
        :param channel: only holds covering this channel (its own, and the device-wide ones).
        :param start: with ``end``: only holds overlapping ``[start, end)``.
        """
        query = select(HoldRow).order_by(HoldRow.device_id, HoldRow.start, HoldRow.id)
        if active_only:
            query = query.where(HoldRow.released_at.is_(None))
        if device_id is not None:
            query = query.where(HoldRow.device_id == device_id)
        if channel is not None:
            query = query.where(or_(HoldRow.channel.is_(None), HoldRow.channel == channel))
        if start is not None:
            query = query.where(HoldRow.end > utc(start, "start"))
        if end is not None:
            query = query.where(HoldRow.start < utc(end, "end"))
        with self._reading() as session:
            return [_hold(row) for row in session.scalars(query)]

    def active_holds_of(self, devices: list[str], start: datetime, end: datetime) -> list[HoldRecord]:
        """The active holds of any of ``devices`` overlapping ``[start, end)`` (one query for a batch)."""
        if not devices:
            return []
        query = (
            select(HoldRow)
            .where(
                HoldRow.released_at.is_(None),
                HoldRow.device_id.in_(sorted(set(devices))),
                HoldRow.end > utc(start, "start"),
                HoldRow.start < utc(end, "end"),
            )
            .order_by(HoldRow.id)
        )
        with self._reading() as session:
            return [_hold(row) for row in session.scalars(query)]

    # -- retention candidates ----------------------------------------------------------------------

    def retention_candidates(
        self,
        tier: StorageTier,
        ended_before: datetime,
        *,
        after: tuple[datetime, int] | None = None,
        limit: int = 500,
    ) -> list[SegmentRecord]:
        """Up to ``limit`` synced segments with a copy in ``tier`` that ended by ``ended_before``.

        Oldest first (by start, then id); pass the last one's ``(start, id)`` as ``after`` for the
        next batch. Holds are not looked at here (the caller's policy decides).
        """
        cutoff = utc(ended_before, "ended_before")
        copy = (
            SegmentRow.local_path.is_not(None)
            if tier is StorageTier.LOCAL
            else and_(SegmentRow.storage_key.is_not(None), SegmentRow.central_deleted_at.is_(None))
        )
        # ``start < cutoff`` is implied by ``end <= cutoff``; it bounds the scan of the start index.
        query = (
            select(SegmentRow)
            .where(
                copy,
                SegmentRow.sync_state == SyncState.SYNCED,
                SegmentRow.start < cutoff,
                SegmentRow.end <= cutoff,
            )
            .order_by(SegmentRow.start, SegmentRow.id)
            .limit(limit)
        )
        if after is not None:
            # The time typed as the column: a bare datetime would be bound as text on SQLite.
            resume = tuple_(literal(utc(after[0], "after"), UtcMicros()), literal(after[1], BigInteger()))
            query = query.where(tuple_(SegmentRow.start, SegmentRow.id) > resume)
        with self._reading() as session:
            return [segment_record(row) for row in session.scalars(query)]

    # -- the deletion audit ------------------------------------------------------------------------

    def record_deletion(
        self,
        segment_id: int,
        tier: StorageTier,
        *,
        location: str,
        rule: str,
        by: str,
        at: datetime | None = None,
    ) -> DeletionRecord:
        """Record that the ``tier`` copy of a segment at ``location`` was deleted, in one transaction.

        The segment forgets that copy (``local_path`` becomes ``None``, or ``central_deleted_at`` is
        set); when no copy is left, its row is removed: the audit row keeps what it was (device,
        channel, span, SHA-256, size), and coverage no longer counts footage that is gone.
        Retention deletes through :meth:`delete_copy`, which also rules out a hold placed meanwhile.

        :param location: the local path or the storage key deleted (must be the segment's own).
        :param rule: the policy that allowed it, e.g. ``central_days=30``.
        :param by: who deleted it (a hub, or the person running the command).
        :raises NotInCatalog: no such segment.
        :raises InvalidChange: the segment has no such copy (already deleted, or another location).
        """
        when = utc(at, "at") if at is not None else self._clock()
        with self._writing() as session:
            row = session.get(SegmentRow, segment_id, with_for_update=True)
            if row is None:
                raise NotInCatalog(f"segment {segment_id} is not in the catalog")
            return _forget_copy(session, row, tier, location, rule, by, when)

    def delete_copy(
        self,
        segment_id: int,
        tier: StorageTier,
        *,
        keep: Callable[[SegmentRecord, list[HoldRecord]], str | None],
        remove: Callable[[str], None],
        rule: str,
        by: str,
        at: datetime | None = None,
    ) -> DeletionRecord | str | None:
        """Delete the ``tier`` copy of a segment and record it, with no hold placed in between.

        While it runs, :meth:`add_hold` on the segment's device waits: on PostgreSQL the device's
        row is locked for one transaction; on SQLite a lock file beside the database is held
        (its write lock would stop every recorder's writes while a central copy is deleted). The
        segment and the active holds over it are read again, and ``keep(segment, holds)``
        decides: a reason to keep the copy is returned as it is, and nothing is deleted.
        Otherwise ``remove(location)`` deletes the copy (the local path or the storage key); if
        it raises, nothing is recorded and the exception propagates. Then the deletion is
        recorded as by :meth:`record_deletion`.

        :returns: the deletion's audit record; ``keep``'s reason; or ``None`` when the segment is
            no longer in the catalog.
        """
        when = utc(at, "at") if at is not None else self._clock()

        def check(session: Session, lock: bool) -> tuple[SegmentRow, str] | str | None:
            found = session.get(SegmentRow, segment_id)
            if found is None:
                return None
            if lock:
                # FOR NO KEY UPDATE: excludes add_hold's, not the inserts that refer to the device.
                session.get(DeviceRow, found.device_id, with_for_update={"key_share": True})
                locked = session.get(SegmentRow, segment_id, with_for_update=True, populate_existing=True)
                if locked is None:
                    return None
                found = locked
            holds = session.scalars(
                select(HoldRow).where(
                    HoldRow.released_at.is_(None),
                    HoldRow.device_id == found.device_id,
                    or_(HoldRow.channel.is_(None), HoldRow.channel == found.channel),
                    HoldRow.start < found.end,
                    HoldRow.end > found.start,
                )
            )
            reason = keep(segment_record(found), [_hold(hold) for hold in holds])
            if reason is not None:
                return reason
            location = found.local_path if tier is StorageTier.LOCAL else found.storage_key
            if location is None:
                raise InvalidChange(f"segment {segment_id} has no {tier.value} copy")
            return found, location

        if not self._sqlite:
            with self._writing() as session:
                checked = check(session, lock=True)
                if not isinstance(checked, tuple):
                    return checked
                row, location = checked
                remove(location)
                return _forget_copy(session, row, tier, location, rule, by, when)
        with self._holds_locked():
            with self._reading() as session:
                checked = check(session, lock=False)
            if not isinstance(checked, tuple):
                return checked
            location = checked[1]
            remove(location)
            with self._writing() as session:
                current = session.get(SegmentRow, segment_id)
                if current is None:
                    raise NotInCatalog(f"segment {segment_id} is not in the catalog")
                return _forget_copy(session, current, tier, location, rule, by, when)

    @contextlib.contextmanager
    def _holds_locked(self) -> Iterator[None]:
        """SQLite: holds and deletions exclude each other, across processes, through an exclusive
        ``flock`` on ``<database>.holds.lock`` (nothing when the catalog is PostgreSQL's)."""
        if not self._sqlite:
            yield
            return
        database = Path(self._url.database or "")
        fd = os.open(database.with_name(database.name + ".holds.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def deletions(
        self,
        *,
        device_id: str | None = None,
        channel: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        deleted_since: datetime | None = None,
        deleted_before: datetime | None = None,
        tier: StorageTier | None = None,
        limit: int = 10_000,
    ) -> list[DeletionRecord]:
        """The deletion audit, by deletion time: what was deleted, where, by which rule, by whom.

        :param device_id: with ``channel``: only that device (channel).
        :param start: with ``end``: only segments overlapping ``[start, end)``.
        :param deleted_since: with ``deleted_before``: only deletions made in that period.
        :param tier: only deletions of local copies, or of central objects.
        """
        query = select(DeletionRow).order_by(DeletionRow.deleted_at, DeletionRow.id).limit(limit)
        if device_id is not None:
            query = query.where(DeletionRow.device_id == device_id)
        if channel is not None:
            query = query.where(DeletionRow.channel == channel)
        if start is not None:
            query = query.where(DeletionRow.end > utc(start, "start"))
        if end is not None:
            query = query.where(DeletionRow.start < utc(end, "end"))
        if tier is not None:
            query = query.where(DeletionRow.tier == tier)
        if deleted_since is not None:
            query = query.where(DeletionRow.deleted_at >= utc(deleted_since, "deleted_since"))
        if deleted_before is not None:
            query = query.where(DeletionRow.deleted_at < utc(deleted_before, "deleted_before"))
        with self._reading() as session:
            return [_deletion(row) for row in session.scalars(query)]
