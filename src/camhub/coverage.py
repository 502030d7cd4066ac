"""Central coverage (R-6.2): how much of each channel's retention window is in the central store,
what is missing and why, and whether the central objects still hold what the catalog says.

What ``camhub coverage`` prints::

    from datetime import UTC, datetime, timedelta
    from camhub.coverage import report

    end = datetime.now(UTC)
    result = report(province, catalog, end - timedelta(days=7), end, unit="huyen-a")
    for channel in result.channels:
        print(channel.device_id, channel.channel, f"{channel.ratio:.2%}")
        for missing in channel.missing:
            print("   ", missing.start, missing.end, missing.cause)

A span counts as present when a segment covering it is in the central store: synced (the store
confirmed its SHA-256) and not deleted from it since. Backfilled segments count like live ones;
:attr:`ChannelCoverage.backfilled` says how much of the coverage they give. Every missing span
gets the most telling cause the catalog has, in this order:

1. ``unsynced`` (:attr:`GapCause.UNSYNCED <camhub.catalog.GapCause>`): recorded, but the segment
   has not reached the central store (it waits in a hub's spool);
2. ``deleted``: the segment reached the central store and was deleted from it;
3. the cause of the recorder's gap row over the span (``unreachable``, ``stall``, …);
4. ``unrecorded``: the catalog knows nothing of the span (no hub was recording the channel).

:func:`verify` re-reads every central object of the window through the store and recomputes its
SHA-256: a flipped bit, a truncated or missing object, or one the store cannot deliver is reported
with its key and channel. It streams each object (one chunk in memory per worker) with a bounded
number of workers, and changes nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import attrs

from camhub.catalog import Catalog, Coverage, GapCause, SegmentRecord, SyncState
from camhub.model import Channel, ChannelKind, DeviceConfig
from camhub.province import ProvinceConfig
from camhub.storage import CHUNK_SIZE, ObjectNotFound, Storage, StorageError

__all__ = [
    "DELETED",
    "UNRECORDED",
    "ChannelCoverage",
    "CoverageReport",
    "Missing",
    "ObjectProblem",
    "Verification",
    "report",
    "to_json",
    "verify",
]

#: The cause of a missing span the catalog knows nothing of.
UNRECORDED = "unrecorded"
#: The cause of a missing span whose segment was deleted from the central store.
DELETED = "deleted"


@attrs.frozen(kw_only=True)
class Missing:
    """A span of a channel that is not in the central store, and why.

    :param cause: a :class:`~camhub.catalog.GapCause` value (``unsynced`` for footage recorded
        but not yet uploaded), :data:`DELETED` or :data:`UNRECORDED`.
    :param detail: the gap row's detail, or what the segments say (``3 segments pending``).
    :param gap_id: the recorder's gap row behind the cause, if any.
    """

    start: datetime
    end: datetime
    cause: str
    detail: str = ""
    gap_id: int | None = None

    @property
    def duration(self) -> timedelta:
        """``end - start``."""
        return self.end - self.start


@attrs.frozen(kw_only=True)
class ChannelCoverage:
    """The central coverage of one configured channel over the report's window.

    :param unit: the unit (by id) the channel's device belongs to.
    :param covered: how much of the window is in the central store.
    :param backfilled: the part of ``covered`` that backfilled segments give.
    :param missing: every span not in the central store, in order, with its cause.
    """

    unit: str
    device_id: str
    channel: int
    name: str
    kind: ChannelKind
    start: datetime
    end: datetime
    covered: timedelta
    backfilled: timedelta
    missing: tuple[Missing, ...]

    @property
    def ratio(self) -> float:
        """The share of the window in the central store, 0.0 to 1.0 (1.0 for an empty window)."""
        window = self.end - self.start
        return 1.0 if window <= timedelta(0) else self.covered / window

    @property
    def complete(self) -> bool:
        """True when nothing of the window is missing."""
        return not self.missing


@attrs.frozen(kw_only=True)
class CoverageReport:
    """Central coverage of every configured channel of a unit subtree (or the province)."""

    province: str
    unit: str | None
    start: datetime
    end: datetime
    channels: tuple[ChannelCoverage, ...]

    @property
    def ratio(self) -> float:
        """The share of all channels' windows in the central store (1.0 with no channel)."""
        window = (self.end - self.start) * len(self.channels)
        if window <= timedelta(0):
            return 1.0
        return sum((channel.covered for channel in self.channels), timedelta()) / window

    @property
    def complete(self) -> bool:
        """True when no channel misses anything."""
        return all(channel.complete for channel in self.channels)


def _scope(province: ProvinceConfig, unit: str | None) -> list[tuple[DeviceConfig, Channel]]:
    """The configured channels of ``unit`` and the units below it (all of them without a unit)."""
    if unit is None:
        devices: Iterable[DeviceConfig] = province.devices
    else:
        try:
            units = list(province.subtree(unit))
        except KeyError:
            raise ValueError(f"there is no unit {unit!r} in province {province.province.id!r}") from None
        devices = [device for member in units for device in province.devices_of(member.id)]
    return [(device, channel) for device in devices for channel in device.effective_channels()]


def report(
    province: ProvinceConfig, catalog: Catalog, start: datetime, end: datetime, *, unit: str | None = None
) -> CoverageReport:
    """The central coverage of each configured channel in ``[start, end)``.

    Channels come in configuration order (unit tree, then devices, then channels); a configured
    channel the catalog never saw is wholly ``unrecorded``. The shares are computed by the
    database (:meth:`Catalog.coverages <camhub.catalog.Catalog.coverages>`); only the holes are
    looked at one by one.

    :param unit: only this unit and the units below it.
    :raises ValueError: no such unit in the province.
    """
    scope = _scope(province, unit)
    keys = [(device.id, channel.id) for device, channel in scope]
    central = catalog.coverages(start, end, channels=keys, synced_only=True)
    holes = [(*key, hole) for key in keys for hole in central[key].holes]
    recorded: dict[tuple[str, int], list[SegmentRecord]] = {}
    for segment in catalog.outside_central(holes):
        recorded.setdefault((segment.device_id, segment.channel), []).append(segment)
    channels = []
    for device, channel in scope:
        coverage = central[(device.id, channel.id)]
        channels.append(
            ChannelCoverage(
                unit=device.unit or "",
                device_id=device.id,
                channel=channel.id,
                name=channel.name,
                kind=channel.kind,
                start=coverage.start,
                end=coverage.end,
                covered=coverage.covered,
                backfilled=coverage.backfilled,
                missing=tuple(_explain(coverage, recorded.get((device.id, channel.id), []))),
            )
        )
    return CoverageReport(
        province=province.province.id,
        unit=unit,
        start=central[keys[0]].start if keys else start,
        end=central[keys[0]].end if keys else end,
        channels=tuple(channels),
    )


# A label over a span: (rank, cause, detail, gap id); the lowest rank wins where labels overlap.
_Label = tuple[int, str, str, int | None]


def _explain(coverage: Coverage, recorded: list[SegmentRecord]) -> Iterator[Missing]:
    """Cut each hole of ``coverage`` into spans of one cause (see the module documentation)."""
    labels: list[tuple[datetime, datetime, _Label]] = []
    for segment in sorted(recorded, key=lambda segment: segment.start):
        if segment.sync_state is SyncState.SYNCED:
            label: _Label = (1, DELETED, "deleted from the central store", None)
        else:
            label = (0, GapCause.UNSYNCED.value, segment.sync_state.value, None)
        if labels and labels[-1][2] == label and labels[-1][1] >= segment.start:
            # A run of segments with the same state is one label (a week of backlog is one span).
            labels[-1] = (labels[-1][0], max(labels[-1][1], segment.end), label)
        else:
            labels.append((segment.start, segment.end, label))
    for gap in coverage.gaps:
        labels.append((gap.start, gap.end or coverage.end, (2, gap.cause.value, gap.detail, gap.id)))
    unknown: _Label = (3, UNRECORDED, "", None)
    for hole in coverage.holes:
        inside = [
            (max(a, hole.start), min(b, hole.end), label)
            for a, b, label in labels
            if a < hole.end and b > hole.start
        ]
        cuts = sorted({hole.start, hole.end, *(a for a, _, _ in inside), *(b for _, b, _ in inside)})
        pieces: list[Missing] = []
        for a, b in itertools.pairwise(cuts):
            _, cause, detail, gap_id = min(
                (label for x, y, label in inside if x <= a and b <= y), default=unknown
            )
            if pieces and pieces[-1].end == a and (pieces[-1].cause, pieces[-1].gap_id) == (cause, gap_id):
                pieces[-1] = attrs.evolve(pieces[-1], end=b)
            else:
                pieces.append(Missing(start=a, end=b, cause=cause, detail=detail, gap_id=gap_id))
        yield from pieces


# -- verification ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ObjectProblem:
    """A central object that does not hold what the catalog says.

    :param problem: ``mismatch`` (the bytes have another SHA-256 or size), ``missing`` (no object
        under the key) or ``unreadable`` (the store failed to deliver it).
    :param detail: what was found instead, or the store's error.
    """

    key: str
    device_id: str
    channel: int
    segment_id: int
    start: datetime
    problem: str
    detail: str


@attrs.frozen(kw_only=True)
class Verification:
    """What :func:`verify` found: how many objects it read, and every problem, in report order."""

    checked: int
    size: int
    problems: tuple[ObjectProblem, ...]

    @property
    def ok(self) -> bool:
        """True when every object read back with its catalogued SHA-256 and size."""
        return not self.problems


def verify(
    report: CoverageReport,
    catalog: Catalog,
    storage: Storage,
    *,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> Verification:
    """Re-read every central object of the report's channels and window and check its SHA-256.

    Each object is streamed through :meth:`Storage.open <camhub.storage.Storage.open>` in chunks
    and hashed; at most ``workers`` objects are read at once, and at most ``2 × workers`` segment
    records wait for a worker, so memory stays bounded whatever the number of objects. Segments
    are taken channel by channel from the catalog.

    :param progress: called with the number of objects checked so far, after each one.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    problems: list[tuple[int, ObjectProblem]] = []
    counted = [0, 0]  # objects, bytes
    failures: list[BaseException] = []
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(2 * workers)  # segments handed to the pool, not yet checked

    def check(order: int, segment: SegmentRecord) -> None:
        try:
            problem = _check(storage, segment)
            with lock:
                counted[0] += 1
                counted[1] += segment.size
                if problem is not None:
                    problems.append((order, problem))
                done = counted[0]
            if progress is not None:
                progress(done)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            failures.append(exc)
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="camhub-verify") as pool:
        for order, segment in enumerate(_central_segments(report, catalog)):
            slots.acquire()
            if failures:
                break
            pool.submit(check, order, segment)
    if failures:
        raise failures[0]
    return Verification(
        checked=counted[0], size=counted[1], problems=tuple(problem for _, problem in sorted(problems))
    )


def _central_segments(report: CoverageReport, catalog: Catalog) -> Iterator[SegmentRecord]:
    """The report's central segments, one channel's window at a time (a week is ~10,000 rows)."""
    for channel in report.channels:
        for segment in catalog.segments(channel.device_id, channel.channel, report.start, report.end):
            if (
                segment.sync_state is SyncState.SYNCED
                and segment.central_deleted_at is None
                and segment.storage_key
            ):
                yield segment


def _check(storage: Storage, segment: SegmentRecord) -> ObjectProblem | None:
    key = segment.storage_key or ""

    def problem(kind: str, detail: str) -> ObjectProblem:
        return ObjectProblem(
            key=key,
            device_id=segment.device_id,
            channel=segment.channel,
            segment_id=segment.id,
            start=segment.start,
            problem=kind,
            detail=detail,
        )

    digest, size = hashlib.sha256(), 0
    try:
        with storage.open(key) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
    except ObjectNotFound:
        return problem("missing", "no object under the key")
    except (StorageError, OSError) as exc:
        return problem("unreadable", str(exc))
    if digest.hexdigest() != segment.sha256 or size != segment.size:
        return problem(
            "mismatch",
            f"read {size} bytes with SHA-256 {digest.hexdigest()}, "
            f"the catalog has {segment.size} bytes with SHA-256 {segment.sha256}",
        )
    return None


def to_json(report: CoverageReport, verification: Verification | None = None) -> dict[str, Any]:
    """The report (and the verification) as JSON-ready data (``camhub coverage --json``)."""

    def span(start: datetime, end: datetime) -> dict[str, Any]:
        return {"start": start.isoformat(), "end": end.isoformat(), "seconds": (end - start).total_seconds()}

    document: dict[str, Any] = {
        "province": report.province,
        "unit": report.unit,
        "window": span(report.start, report.end),
        "coverage": report.ratio,
        "complete": report.complete,
        "channels": [
            {
                "unit": channel.unit,
                "device": channel.device_id,
                "channel": channel.channel,
                "name": channel.name,
                "kind": channel.kind.value,
                "coverage": channel.ratio,
                "covered_seconds": channel.covered.total_seconds(),
                "backfilled_seconds": channel.backfilled.total_seconds(),
                "missing": [
                    {**span(m.start, m.end), "cause": m.cause, "detail": m.detail, "gap_id": m.gap_id}
                    for m in channel.missing
                ],
            }
            for channel in report.channels
        ],
        "verification": None,
    }
    if verification is not None:
        document["verification"] = {
            "checked": verification.checked,
            "bytes": verification.size,
            "ok": verification.ok,
            "problems": [
                {
                    "key": p.key,
                    "device": p.device_id,
                    "channel": p.channel,
                    "segment_id": p.segment_id,
                    "start": p.start.isoformat(),
                    "problem": p.problem,
                    "detail": p.detail,
                }
                for p in verification.problems
            ],
        }
    return document
