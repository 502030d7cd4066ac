"""Retention: which copies of which segments may go, deleting them, and recording every deletion.

A segment has up to two copies: the file in the hub's local spool and the object in the central
store. Each tier has its policy (:class:`RetentionPolicy`): the local copy goes once the segment
is synced and ``spool_days`` old; the central object once it is ``central_days`` old, never
less than the 7 days of Article 6.2 (the floor). One predicate, :func:`protection`, decides
for every path (the periodic pass, disk pressure, the CLI); it is asked again about a fresh read
of the segment and its holds right before each delete. Nothing is ever deleted that is:

- **unsynced**: the segment has not reached the central store (or must be sent again);
- **inside the floor**: a central object younger than 7 days, whatever the policy says;
- **held**: an active hold (an export, an incident, a manual hold with its reason) overlaps it;
  a hold freezes every copy, local and central.

Every deletion is written to the catalog's deletion audit (:meth:`Catalog.deletions
<camhub.catalog.Catalog.deletions>`) with the rule that allowed it and who made it; when no copy
of a segment is left, its catalog row goes and the audit keeps what it was. A central store that
refuses a delete itself (:class:`~camhub.storage.ObjectLocked`: an object lock or legal hold)
is reported as *refused* and the object stays: it is not an error.

**Disk pressure.** When the spool is over ``storage.spool_max_gb`` or its filesystem has less
than ``storage.spool_min_free_gb`` free, a pass logs a WARNING and deletes local copies that are
already synced, oldest first, even inside ``spool_days`` (they are safe centrally), until the
spool is a tenth of its limit below it. If that is not enough (only unsynced or held footage is
left), the pass reports ``degraded``: the hub then pauses recording, with a gap of cause
``other`` ("disk full"), rather than delete anything protected; it resumes when a pass finds
room again.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from camhub.catalog import (
    HoldKind,
    HoldRecord,
    InvalidChange,
    NotInCatalog,
    SegmentRecord,
    StorageTier,
    SyncState,
)
from camhub.log import get_logger
from camhub.model import MIN_CENTRAL_RETENTION_DAYS
from camhub.storage import ObjectLocked, ObjectNotFound, Storage, StorageError, StorageUnsupported

if TYPE_CHECKING:
    from camhub.catalog import Catalog
    from camhub.province import ProvinceConfig

__all__ = [
    "FLOOR",
    "Action",
    "Pressure",
    "Retention",
    "RetentionPolicy",
    "RetentionReport",
    "protection",
    "spool_usage",
]

#: The central floor (Article 6.2): no central object younger than this is ever deleted.
FLOOR = timedelta(days=MIN_CENTRAL_RETENTION_DAYS)
_GB = 1024**3

# Outcomes of an :class:`Action`.
DELETED = "deleted"
WOULD_DELETE = "would delete"
REFUSED = "refused by the store"


@attrs.frozen(kw_only=True)
class RetentionPolicy:
    """How long each copy is kept, and the spool's limits.

    :param central_days: days a central object is kept (at least 7: Article 6.2).
    :param spool_days: days a synced segment's local copy is kept.
    :param spool_max_bytes: most bytes the spool may hold before disk pressure.
    :param spool_min_free_bytes: least free space its filesystem must keep.
    :param batch: segments read from the catalog at a time.
    :raises ValueError: ``central_days`` below the floor, or a negative value.
    """

    central_days: int = 30
    spool_days: int = 1
    spool_max_bytes: int = 100 * _GB
    spool_min_free_bytes: int = _GB
    batch: int = 500

    def __attrs_post_init__(self) -> None:
        if self.central_days < MIN_CENTRAL_RETENTION_DAYS:
            raise ValueError(
                f"central_days={self.central_days}: central retention is at least "
                f"{MIN_CENTRAL_RETENTION_DAYS} days (Article 6.2)"
            )
        if min(self.spool_days, self.spool_max_bytes, self.spool_min_free_bytes) < 0 or self.batch < 1:
            raise ValueError("spool_days, spool limits and batch must not be negative")

    @classmethod
    def from_config(cls, province: ProvinceConfig) -> RetentionPolicy:
        """The policy of a configuration (``retention:`` and ``storage:``)."""
        return cls(
            central_days=province.retention.central_days,
            spool_days=province.retention.spool_days,
            spool_max_bytes=int(province.storage.spool_max_gb * _GB),
            spool_min_free_bytes=int(province.storage.spool_min_free_gb * _GB),
        )

    def keep_for(self, tier: StorageTier) -> timedelta:
        """How long the policy keeps a copy in ``tier`` (the central one never under the floor)."""
        if tier is StorageTier.LOCAL:
            return timedelta(days=self.spool_days)
        return max(timedelta(days=self.central_days), FLOOR)

    def rule(self, tier: StorageTier) -> str:
        """The rule recorded with a deletion by this policy, e.g. ``central_days=30``."""
        return (
            f"spool_days={self.spool_days}"
            if tier is StorageTier.LOCAL
            else f"central_days={self.central_days}"
        )


def protection(
    segment: SegmentRecord,
    tier: StorageTier,
    holds: Iterable[HoldRecord],
    *,
    now: datetime,
    keep_for: timedelta,
) -> str | None:
    """Why the ``tier`` copy of ``segment`` must be kept at ``now``; ``None`` when it may go.

    The one place where retention decides; every deletion path asks it, and asks it again
    right before deleting.

    :param holds: holds to check (those of other devices, channels, spans and released ones are
        ignored, so a batch's holds can be given for each of its segments).
    :param keep_for: the policy's age for this tier (for a central copy never less than
        :data:`FLOOR`; disk pressure passes zero for local copies).
    """
    if tier is StorageTier.LOCAL and segment.local_path is None:
        return "no local copy"
    if tier is StorageTier.CENTRAL and (
        segment.storage_key is None or segment.central_deleted_at is not None
    ):
        return "no central copy"
    if segment.sync_state is not SyncState.SYNCED:
        return f"unsynced ({segment.sync_state.value})"
    if tier is StorageTier.CENTRAL and segment.end > now - FLOOR:
        return f"inside the {FLOOR.days}-day floor"
    if segment.end > now - keep_for:
        return f"younger than the policy's {keep_for.days} day(s)"
    for hold in holds:
        if (
            hold.active
            and hold.device_id == segment.device_id
            and hold.channel in (None, segment.channel)
            and hold.start < segment.end
            and hold.end > segment.start
        ):
            return f"held (hold {hold.id}, {hold.kind.value}: {hold.reason})"
    return None


@attrs.frozen(kw_only=True)
class Action:
    """One copy retention deleted, would delete (dry run), or was refused by the store.

    :param outcome: ``deleted``, ``would delete`` or ``refused by the store``.
    :param rule: the rule that allowed it (``spool_days=1``, ``central_days=30``, ``disk pressure …``).
    :param detail: anything worth knowing (the store's refusal, an object it no longer had).
    """

    outcome: str
    tier: StorageTier
    segment_id: int
    device_id: str
    channel: int
    start: datetime
    end: datetime
    location: str
    size: int
    rule: str
    detail: str = ""


@attrs.frozen(kw_only=True)
class Pressure:
    """The spool's disk use as a pass found it, and what was done.

    :param level: ``ok``; ``relieved`` (it was short of space and synced local copies were
        deleted early until it was not); ``degraded`` (still short: only protected footage is
        left, recording must pause).
    :param spool_bytes: bytes in the spool at the start of the pass.
    :param free_bytes: free bytes on its filesystem at the start of the pass.
    :param freed_bytes: bytes the pass freed early because of the pressure.
    """

    level: str = "ok"
    spool_bytes: int = 0
    free_bytes: int = 0
    freed_bytes: int = 0

    @property
    def degraded(self) -> bool:
        """True when recording must pause to protect the footage kept."""
        return self.level == "degraded"


@attrs.define(kw_only=True)
class RetentionReport:
    """What one pass did: the copies deleted (or that would be), refused, and kept (by reason)."""

    started: datetime
    dry_run: bool
    actions: list[Action] = attrs.Factory(list)
    kept: Counter[str] = attrs.Factory(Counter)
    pressure: Pressure = attrs.Factory(Pressure)
    errors: list[str] = attrs.Factory(list)

    def count(self, outcome: str, tier: StorageTier | None = None) -> int:
        """How many actions had ``outcome`` (in ``tier``)."""
        return sum(1 for a in self.actions if a.outcome == outcome and tier in (None, a.tier))

    def status(self) -> dict[str, Any]:
        """A summary for ``status.json``."""
        return {
            "last_pass": self.started.isoformat(),
            "deleted_local": self.count(DELETED, StorageTier.LOCAL),
            "deleted_central": self.count(DELETED, StorageTier.CENTRAL),
            "refused": self.count(REFUSED),
            "pressure": self.pressure.level,
            "spool_bytes": self.pressure.spool_bytes,
            "free_bytes": self.pressure.free_bytes,
            "errors": self.errors[-5:],
        }


def spool_usage(spool: Path) -> tuple[int, int]:
    """``(bytes in the spool's files, free bytes on its filesystem)``; a missing spool is empty."""
    total = 0
    stack = [spool]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:  # deleted while we walked
                continue
    probe = spool if spool.exists() else spool.parent
    return total, shutil.disk_usage(probe).free


class _StoreDown(Exception):
    """The central store failed: the central sweep stops for this pass."""


class Retention:
    """Applies a :class:`RetentionPolicy` to a catalog, its spool and its central store.

    :param catalog: the catalog.
    :param storage: the central store (``None``: only local copies are looked after).
    :param spool: the hub's spool folder (for disk pressure).
    :param by: who deletes: recorded with each deletion (a hub's id, or a person).
    :param clock: the source of "now" (tests move it).
    """

    def __init__(
        self,
        catalog: Catalog,
        storage: Storage | None,
        spool: Path,
        policy: RetentionPolicy,
        *,
        by: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.catalog = catalog
        self.storage = storage
        self.spool = spool
        self.policy = policy
        self.by = by
        self.clock = clock
        self._log = get_logger(__name__)

    # -- one pass --------------------------------------------------------------------------------
    def run(self, *, dry_run: bool = False) -> RetentionReport:
        """One pass: local copies past ``spool_days``, central objects past ``central_days``, then
        disk pressure. With ``dry_run`` nothing is deleted; the report says what would be."""
        report = RetentionReport(started=self.clock(), dry_run=dry_run)
        self._sweep(StorageTier.LOCAL, self.policy.keep_for(StorageTier.LOCAL), None, report)
        if self.storage is not None:
            try:
                self._sweep(StorageTier.CENTRAL, self.policy.keep_for(StorageTier.CENTRAL), None, report)
            except _StoreDown as exc:
                report.errors.append(str(exc))
                self._log.warning("retention.store_failed", error=str(exc))
        self._relieve(report)
        refused = report.count(REFUSED)
        if refused:  # one line per pass, not one per object: a locked store is not an error storm
            self._log.info("retention.refused_by_store", count=refused)
        self._log.info(
            "retention.pass",
            dry_run=dry_run,
            deleted=report.count(WOULD_DELETE if dry_run else DELETED),
            refused=refused,
            pressure=report.pressure.level,
        )
        return report

    def _relieve(self, report: RetentionReport) -> None:
        """The disk-pressure policy (see the module documentation)."""
        used, free = spool_usage(self.spool)
        if report.dry_run:  # what the sweep before would have freed
            used = max(used - sum(a.size for a in report.actions if a.tier is StorageTier.LOCAL), 0)
        short = max(used - self.policy.spool_max_bytes, self.policy.spool_min_free_bytes - free)
        if short <= 0:
            report.pressure = Pressure(spool_bytes=used, free_bytes=free)
            return
        self._log.warning(
            "retention.disk_pressure",
            spool=str(self.spool),
            spool_bytes=used,
            limit_bytes=self.policy.spool_max_bytes,
            free_bytes=free,
        )
        target = short + self.policy.spool_max_bytes // 10  # room enough not to be back next pass
        start = len(report.actions)

        def freed() -> int:
            return sum(a.size for a in report.actions[start:] if a.outcome != REFUSED)

        rule = f"disk pressure: spool at {used} bytes, limit {self.policy.spool_max_bytes}, {free} free"
        self._sweep(StorageTier.LOCAL, timedelta(0), rule, report, enough=lambda: freed() >= target)
        done = freed()
        level = "relieved" if done >= short else "degraded"
        report.pressure = Pressure(level=level, spool_bytes=used, free_bytes=free, freed_bytes=done)
        if level == "degraded":
            self._log.warning(
                "retention.degraded",
                spool=str(self.spool),
                short_bytes=short - done,
                detail="only unsynced or held footage is left in the spool: recording pauses",
            )

    def _sweep(
        self,
        tier: StorageTier,
        keep_for: timedelta,
        rule: str | None,
        report: RetentionReport,
        *,
        enough: Callable[[], bool] = lambda: False,
    ) -> None:
        """Delete (or list) every copy in ``tier`` older than ``keep_for`` that is not protected."""
        now = report.started
        listed = {a.segment_id for a in report.actions if a.tier is tier}  # a dry run lists each copy once
        after: tuple[datetime, int] | None = None
        while not enough():
            batch = self.catalog.retention_candidates(
                tier, now - keep_for, after=after, limit=self.policy.batch
            )
            if not batch:
                return
            after = (batch[-1].start, batch[-1].id)
            holds = self.catalog.active_holds_of(
                [s.device_id for s in batch], min(s.start for s in batch), max(s.end for s in batch)
            )
            for segment in batch:
                if enough():
                    return
                if segment.id in listed:
                    continue
                reason = protection(segment, tier, holds, now=now, keep_for=keep_for)
                if reason is None:
                    self._delete(segment.id, tier, keep_for, rule or self.policy.rule(tier), report)
                else:
                    report.kept[reason] += 1
            if len(batch) < self.policy.batch:
                return

    def _delete(
        self, segment_id: int, tier: StorageTier, keep_for: timedelta, rule: str, report: RetentionReport
    ) -> None:
        checked: list[SegmentRecord] = []

        def keep(segment: SegmentRecord, holds: list[HoldRecord]) -> str | None:
            # The double check: the segment and its holds read again, right before the delete.
            checked.append(segment)
            return protection(segment, tier, holds, now=report.started, keep_for=keep_for)

        def act(outcome: str, detail: str = "") -> None:
            segment = checked[-1]
            location = segment.local_path if tier is StorageTier.LOCAL else segment.storage_key
            report.actions.append(
                Action(
                    outcome=outcome,
                    tier=tier,
                    segment_id=segment.id,
                    device_id=segment.device_id,
                    channel=segment.channel,
                    start=segment.start,
                    end=segment.end,
                    location=location or "",
                    size=segment.size,
                    rule=rule,
                    detail=detail,
                )
            )

        if report.dry_run:
            segment = self.catalog.segment(segment_id)
            if segment is None:
                return
            holds = self.catalog.holds(
                device_id=segment.device_id, channel=segment.channel, start=segment.start, end=segment.end
            )
            reason = keep(segment, holds)
            if reason is None:
                act(WOULD_DELETE)
            else:
                report.kept[reason] += 1
            return
        details: list[str] = []

        def remove(location: str) -> None:
            if tier is StorageTier.LOCAL:
                Path(location).unlink()  # FileNotFoundError: see below
                return
            assert self.storage is not None
            try:
                self.storage.delete(location)
            except ObjectNotFound:
                details.append("the store no longer had it")
            except ObjectLocked:
                raise
            except StorageError as exc:
                raise _StoreDown(f"the central store failed to delete {location!r}: {exc}") from exc

        try:
            # A hold placed meanwhile either is seen by keep() or waits until the deletion is done.
            outcome = self.catalog.delete_copy(
                segment_id, tier, keep=keep, remove=remove, rule=rule, by=self.by
            )
        except FileNotFoundError:
            # Not in this hub's spool (another hub's, with a shared catalog, or another working
            # folder): that hub's retention deletes it; here the catalog is left as it is.
            report.kept["local file not found here"] += 1
            return
        except ObjectLocked as exc:
            act(REFUSED, str(exc))
            return
        except (InvalidChange, NotInCatalog):  # changed meanwhile by a writer outside retention
            report.kept["changed meanwhile"] += 1
            return
        if isinstance(outcome, str):
            report.kept[outcome] += 1
        elif outcome is not None:
            act(DELETED, "".join(details))

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
    ) -> tuple[HoldRecord, int]:
        """Hold footage (see :meth:`Catalog.add_hold <camhub.catalog.Catalog.add_hold>`), and put a
        legal hold on its central objects where the store offers one.

        :returns: the hold, and how many central objects the store now holds for it.
        """
        hold = self.catalog.add_hold(device_id, channel, start, end, kind=kind, reason=reason, by=by)
        return hold, self._legal_hold(hold, on=True)

    def release_hold(self, hold_id: int, *, by: str) -> tuple[HoldRecord, int]:
        """Release a hold, and lift the store's legal hold from its central objects that no other
        active hold covers.

        :returns: the released hold, and how many central objects were released by the store.
        """
        hold = self.catalog.release_hold(hold_id, by=by)
        return hold, self._legal_hold(hold, on=False)

    def _legal_hold(self, hold: HoldRecord, *, on: bool) -> int:
        if self.storage is None or not self.storage.capabilities.legal_hold:
            return 0
        channels = (
            [hold.channel]
            if hold.channel is not None
            else [c.channel for c in self.catalog.channels(hold.device_id)]
        )
        others = [] if on else self.catalog.holds(device_id=hold.device_id, start=hold.start, end=hold.end)
        changed = 0
        for channel in channels:
            for segment in self.catalog.segments(hold.device_id, channel, hold.start, hold.end):
                if segment.storage_key is None or segment.central_deleted_at is not None:
                    continue  # not (or no longer) in the central store
                if not on and any(
                    h.channel in (None, channel) and h.start < segment.end and h.end > segment.start
                    for h in others
                ):
                    continue
                try:
                    self.storage.hold(segment.storage_key, on)
                except (ObjectNotFound, StorageUnsupported) as exc:
                    self._log.warning("retention.legal_hold_failed", key=segment.storage_key, error=str(exc))
                    continue
                changed += 1
        return changed
