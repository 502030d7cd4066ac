"""The catalog's value objects: what its methods return (frozen attrs classes and one named tuple,
never ORM rows).

Every time is an aware :class:`~datetime.datetime` in UTC; every span is half-open, ``[start, end)``:
two segments that touch (one's end is the other's start) do not overlap.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import NamedTuple

import attrs

from camhub.model import ChannelKind, DeviceKind

__all__ = [
    "Backlog",
    "ChannelRecord",
    "Coverage",
    "DeletionRecord",
    "DeviceRecord",
    "GapCause",
    "GapRecord",
    "HoldKind",
    "HoldRecord",
    "LeaseRecord",
    "SegmentRecord",
    "SegmentSource",
    "Span",
    "StateRecord",
    "StorageTier",
    "SyncState",
]


class SyncState(enum.Enum):
    """Where a segment stands on its way to the central store (DESIGN §5).

    ``pending`` → ``uploading`` → ``synced``, or ``failed`` (and back to ``uploading`` on a retry).
    A synced segment goes back to ``pending`` only when its central copy has to be sent again
    (a verification found it damaged).
    """

    PENDING = "pending"
    UPLOADING = "uploading"
    SYNCED = "synced"
    FAILED = "failed"


class SegmentSource(enum.Enum):
    """How a segment was recorded: from the live stream, or fetched later from a device's storage."""

    LIVE = "live"
    BACKFILL = "backfill"


class GapCause(enum.Enum):
    """Why a span of a channel has no recording (every outage is a gap with its cause, DESIGN §4)."""

    UNREACHABLE = "unreachable"  # the device or its stream could not be reached
    AUTH = "auth"  # credentials refused
    STALL = "stall"  # the stream stopped delivering (socket timeout)
    STREAM_ENDED = "stream_ended"  # the live source sent EOF
    CODEC_CHANGE = "codec_change"  # the stream's codecs changed: the segment was cut
    UNSYNCED = "unsynced"  # recorded, but the footage never reached the central store
    OTHER = "other"


class HoldKind(enum.Enum):
    """Why footage is held beyond its retention policy (a held span is never deleted)."""

    EXPORT = "export"  # evidence was extracted from it (Article 8: commendation or discipline)
    INCIDENT = "incident"  # an incident is being investigated
    MANUAL = "manual"  # a person put it on hold, with a reason


class StorageTier(enum.Enum):
    """Where a copy of a segment lives: the hub's local spool, or the central (provincial) store."""

    LOCAL = "local"
    CENTRAL = "central"


@attrs.frozen(kw_only=True)
class Span:
    """A half-open time span ``[start, end)``."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        """``end - start``."""
        return self.end - self.start


@attrs.frozen(kw_only=True)
class DeviceRecord:
    """A device as the hub has seen it (its identity as last read, when it was first and last seen)."""

    id: str
    unit: str
    vendor: str
    kind: DeviceKind
    host: str
    name: str
    model: str | None
    serial: str | None
    firmware: str | None
    mac: str | None
    first_seen: datetime
    last_seen: datetime


@attrs.frozen(kw_only=True)
class ChannelRecord:
    """A camera or microphone of a device, as recorded."""

    device_id: str
    channel: int
    kind: ChannelKind
    name: str
    audio: bool


class SegmentRecord(NamedTuple):
    """One recorded file: a keyframe-aligned fragmented MP4 covering ``[start, end)`` of a channel.

    ``duration`` is the media duration the recorder measured; ``end - start`` is the wall span it
    covers (they differ by timestamp jitter only). ``audio_source_codec`` is the codec the device
    sent when the audio was transcoded (``pcm_mulaw`` → ``aac``), else ``None``.

    A named tuple, unlike the catalog's other records: a channel-day is 1,440 of them, and a tuple
    is built in one step where an attrs instance is built field by field (the decision "Segment
    records are named tuples" explains it). Immutable, compared and hashed by value; ``_replace``
    and ``_asdict`` work as for any named tuple.
    """

    id: int
    device_id: str
    channel: int
    start: datetime
    end: datetime
    duration: timedelta
    size: int
    sha256: str
    video_codec: str | None
    audio_codec: str | None
    audio_source_codec: str | None
    container: str
    local_path: str | None
    storage_key: str | None
    sync_state: SyncState
    synced_at: datetime | None
    sync_failures: int
    sync_error: str | None
    source: SegmentSource
    backfill_source: str | None
    created_at: datetime
    central_deleted_at: datetime | None = None

    @property
    def span(self) -> Span:
        """``[start, end)``."""
        return Span(start=self.start, end=self.end)


@attrs.frozen(kw_only=True)
class GapRecord:
    """A span of a channel without recording, with its cause; ``end`` is ``None`` while it lasts."""

    id: int
    device_id: str
    channel: int
    start: datetime
    end: datetime | None
    cause: GapCause
    detail: str
    closed_by: str | None

    @property
    def is_open(self) -> bool:
        """True while the outage lasts."""
        return self.end is None


@attrs.frozen(kw_only=True)
class StateRecord:
    """One entry of a device's state history (``online``, ``unreachable``, ``auth_failed``, …)."""

    id: int
    device_id: str
    at: datetime
    state: str
    detail: str


@attrs.frozen(kw_only=True)
class Coverage:
    """How much of ``[start, end)`` of one channel has recordings, and what explains the rest.

    ``covered`` is the length of the union of the segments inside the window (overlapping segments
    count once); ``holes`` are the uncovered spans, in order; ``gaps`` are the gap rows that
    overlap the window (the causes of the holes, where they are known). ``backfilled`` is the part
    of ``covered`` that backfilled segments (fetched later from a device's own storage) provide.
    """

    device_id: str
    channel: int
    start: datetime
    end: datetime
    covered: timedelta
    holes: tuple[Span, ...]
    gaps: tuple[GapRecord, ...]
    backfilled: timedelta = timedelta(0)

    @property
    def covered_seconds(self) -> float:
        """``covered`` in seconds."""
        return self.covered.total_seconds()

    @property
    def ratio(self) -> float:
        """The covered share of the window, 0.0 to 1.0 (1.0 for an empty window)."""
        window = self.end - self.start
        return 1.0 if window <= timedelta(0) else self.covered / window


@attrs.frozen(kw_only=True)
class Backlog:
    """Segments not yet in the central store: how many, how many bytes, the oldest one's start."""

    count: int
    size: int
    oldest: datetime | None


@attrs.frozen(kw_only=True)
class HoldRecord:
    """A hold on ``[start, end)`` of a device's channel (every channel when ``channel`` is ``None``).

    Footage under a hold that is not released is never deleted, whatever the retention policy says.
    """

    id: int
    device_id: str
    channel: int | None
    start: datetime
    end: datetime
    kind: HoldKind
    reason: str
    created_by: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None

    @property
    def active(self) -> bool:
        """True until the hold is released."""
        return self.released_at is None


@attrs.frozen(kw_only=True)
class DeletionRecord:
    """The audit entry of one deleted copy of a segment: which copy, where, why, when and by whom."""

    id: int
    segment_id: int
    device_id: str
    channel: int
    start: datetime
    end: datetime
    tier: StorageTier
    location: str
    sha256: str
    size: int
    rule: str
    deleted_at: datetime
    deleted_by: str


@attrs.frozen(kw_only=True)
class LeaseRecord:
    """Which hub records a channel (scale-out): held by ``holder`` until ``expires_at``.

    ``token`` grows by one at every change of holder (a fencing token: a hub that lost its lease
    sees a newer token and stops writing).
    """

    device_id: str
    channel: int
    holder: str
    token: int
    acquired_at: datetime
    expires_at: datetime
