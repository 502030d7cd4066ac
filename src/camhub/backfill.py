"""Backfill: footage that a device kept on its own storage fills the gaps in the recording (R-6.2).

When the stream from a site is cut (an uplink down, a stalled stream) while the camera's card or
the site's NVR keeps recording, the hub's catalog holds a gap. :func:`backfill_gaps` finds those
gaps, asks each device's adapter (capability ``recordings``) what it holds for the span, fetches
it — Hikvision playback and ONVIF replay over RTSP, Dahua file downloads over HTTP — and remuxes
it with the recorder's own code (:meth:`~camhub.recorder.ChannelRecorder.record_span`) into
the same keyframe-aligned fragmented-MP4 segments, on the channel's grid. The segments are
catalogued with ``source=backfill`` and ``backfill_source`` naming the device and span, so the
uploader sends them to the central store like live ones, and the gap shrinks to what is still
missing (:meth:`~camhub.catalog.Catalog.fill_gap`, ``closed_by`` ``backfill:<device>``).

Invariants: a backfilled segment never overlaps a catalogued one (it stays inside the gap; the
catalog refuses overlaps); a gap still open (the recorder is still cut off) is left alone; a
device that cannot be asked, or has nothing, is reported and its gap kept — nothing is lost.

Timing: an RTSP playback starts at a keyframe at or before the time asked for, and the device's
answer to ``PLAY`` says which (``Range: clock=…``, read by :class:`~camhub.recorder.replay.RtspRelay`);
a downloaded file starts at the start of the span the device listed. Packets then keep their own
timestamps. A device that names neither is taken to start where asked (within one GOP).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from camhub.adapter import Capability, DeviceAdapter, MediaSource, RecordingSpan
from camhub.catalog import (
    MAX_SEGMENT_DURATION,
    Catalog,
    GapRecord,
    InvalidChange,
    NotInCatalog,
    SegmentOverlap,
    SegmentSource,
    Span,
)
from camhub.devices import ClientPool, open_adapter
from camhub.errors import CamhubError, DeviceError, DeviceUnsupported
from camhub.log import get_logger
from camhub.model import ChannelKind, DeviceConfig
from camhub.plugins import PluginHost
from camhub.province import ProvinceConfig
from camhub.recorder import ChannelKey, ChannelRecorder, GapCause, RecorderState, SealedSegment
from camhub.recorder.replay import RtspRelay
from camhub.recorder.segmenter import PARTIAL_SUFFIX

__all__ = ["BackfillEntry", "BackfillReport", "BackfillStatus", "backfill_gaps"]


class BackfillStatus(enum.Enum):
    """What happened to one gap."""

    FILLED = "filled"  # all of it is recorded now
    PARTIAL = "partial"  # some of it (the device had part of the span, or fetching broke off)
    NOT_ON_DEVICE = "not_on_device"  # the device holds nothing for the span
    PLANNED = "planned"  # dry run: the device holds footage for (part of) the span
    STILL_OPEN = "still_open"  # the outage goes on: backfilled once the recorder is back
    UNSUPPORTED = "unsupported"  # the device or its adapter offers no recordings
    UNREACHABLE = "unreachable"  # the device could not be asked, or its footage not fetched


@attrs.frozen(kw_only=True)
class BackfillEntry:
    """One gap of one channel, and what backfill did about it.

    :param gap_id: the gap's row in the catalog; ``cause`` its cause.
    :param start: the gap's start as it was before backfill.
    :param end: its end (``None`` while the outage lasts).
    :param status: what backfill did.
    :param found: the spans the device holds within the gap.
    :param filled: the spans now recorded by backfilled segments.
    :param remaining: what is still missing of the gap.
    :param segments: how many segments were catalogued.
    :param detail: why, for a gap not (fully) filled.
    """

    device_id: str
    channel: int
    gap_id: int
    cause: GapCause
    start: datetime
    end: datetime | None
    status: BackfillStatus
    found: tuple[Span, ...] = ()
    filled: tuple[Span, ...] = ()
    remaining: tuple[Span, ...] = ()
    segments: int = 0
    detail: str = ""

    @property
    def filled_seconds(self) -> float:
        """Seconds of the gap recorded by backfill."""
        return sum((s.duration for s in self.filled), timedelta(0)).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (times in UTC ISO 8601)."""

        def spans(values: tuple[Span, ...]) -> list[list[str]]:
            return [[s.start.isoformat(), s.end.isoformat()] for s in values]

        return {
            "device": self.device_id,
            "channel": self.channel,
            "gap": self.gap_id,
            "cause": self.cause.value,
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end else None,
            "status": self.status.value,
            "found": spans(self.found),
            "filled": spans(self.filled),
            "remaining": spans(self.remaining),
            "segments": self.segments,
            "filled_seconds": round(self.filled_seconds, 3),
            "detail": self.detail,
        }


@attrs.frozen(kw_only=True)
class BackfillReport:
    """Every gap looked at in ``[since, until)``, with what was done (``dry_run``: nothing)."""

    since: datetime
    until: datetime
    dry_run: bool
    entries: tuple[BackfillEntry, ...]

    @property
    def failed(self) -> tuple[BackfillEntry, ...]:
        """Gaps a device could not be asked about, or whose footage could not be fetched."""
        return tuple(e for e in self.entries if e.status is BackfillStatus.UNREACHABLE)

    @property
    def filled_seconds(self) -> float:
        """Seconds recorded by backfill, over all gaps."""
        return sum(e.filled_seconds for e in self.entries)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "dry_run": self.dry_run,
            "filled_seconds": round(self.filled_seconds, 3),
            "gaps": [e.as_dict() for e in self.entries],
        }


async def backfill_gaps(
    province: ProvinceConfig,
    catalog: Catalog,
    host: PluginHost,
    folder: Path,
    *,
    since: datetime,
    until: datetime | None = None,
    unit: str | None = None,
    devices: Collection[str] | None = None,
    segment_seconds: float = 60.0,
    socket_timeout: float = 10.0,
    dry_run: bool = False,
    pool: ClientPool | None = None,
) -> BackfillReport:
    """Fill the closed gaps of ``[since, until)`` from the devices' own recordings.

    :param folder: where backfilled segments are written (``<device>/<channel>/<UTC date>/``);
        the hub uses ``backfill/`` in its data folder, beside (not in) the live spool.
    :param unit: only the devices of this unit and the units below it.
    :param devices: only these device ids.
    :param segment_seconds: the segment grid (the hub's).
    :param socket_timeout: seconds of silence after which a fetch counts as broken off.
    :param dry_run: only search the devices' recordings; write and change nothing.
    :param pool: HTTP clients for the adapters (default: a pool made and closed here).
    :raises CamhubError: an unknown unit or device.
    """
    end = until or datetime.now(UTC)
    chosen = _devices(province, unit, devices)
    work = _Backfill(province, catalog, host, folder, segment_seconds, socket_timeout, dry_run)
    own_pool = pool is None
    clients = pool or ClientPool()
    entries: list[BackfillEntry] = []
    try:
        for device in chosen:
            entries += await work.device(device, since, end, clients)
    finally:
        if own_pool:
            await clients.aclose()
    return BackfillReport(since=since, until=end, dry_run=dry_run, entries=tuple(entries))


def _devices(
    province: ProvinceConfig, unit: str | None, devices: Collection[str] | None
) -> list[DeviceConfig]:
    chosen = list(province.devices)
    if unit is not None:
        try:
            units = {u.id for u in province.subtree(unit)}
        except KeyError:
            raise CamhubError(f"no unit {unit!r} in the configuration") from None
        chosen = [d for d in chosen if d.unit in units]
    if devices:
        known = {d.id for d in province.devices}
        missing = sorted(set(devices) - known)
        if missing:
            raise CamhubError(f"no device {missing[0]!r} in the configuration")
        chosen = [d for d in chosen if d.id in devices]
    return chosen


class _Backfill:
    def __init__(
        self,
        province: ProvinceConfig,
        catalog: Catalog,
        host: PluginHost,
        folder: Path,
        segment_seconds: float,
        socket_timeout: float,
        dry_run: bool,
    ) -> None:
        self.province = province
        self.catalog = catalog
        self.host = host
        self.folder = folder
        self.segment_seconds = segment_seconds
        self.socket_timeout = socket_timeout
        self.dry_run = dry_run
        self._log = get_logger(__name__)

    async def device(
        self, device: DeviceConfig, since: datetime, until: datetime, pool: ClientPool
    ) -> list[BackfillEntry]:
        """Every gap of the device's cameras in the window, each backfilled if it can be."""
        gaps = [
            gap
            for channel in device.effective_channels()
            if channel.kind is not ChannelKind.MICROPHONE
            for gap in self.catalog.gaps(device.id, channel.id, since, until)
        ]
        entries = [_entry(g, BackfillStatus.STILL_OPEN, "the outage goes on") for g in gaps if g.end is None]
        closed = [g for g in gaps if g.end is not None]
        if not closed:
            return entries
        try:
            adapter = open_adapter(self.province, device.id, self.host, pool)
        except CamhubError as exc:
            return entries + [_entry(g, BackfillStatus.UNSUPPORTED, str(exc)) for g in closed]
        try:
            if Capability.RECORDINGS not in adapter.capabilities:
                detail = f"the {device.vendor} adapter has no recordings capability"
                return entries + [_entry(g, BackfillStatus.UNSUPPORTED, detail) for g in closed]
            for gap in closed:
                entries.append(await self.gap(device, adapter, gap))
        finally:
            await adapter.aclose()
        return entries

    async def gap(self, device: DeviceConfig, adapter: DeviceAdapter, gap: GapRecord) -> BackfillEntry:
        """Search the device for the gap's span, fetch what it has, catalogue it, shrink the gap."""
        assert gap.end is not None
        try:
            spans = await adapter.search_recordings(gap.channel, gap.start, gap.end)
        except DeviceUnsupported as exc:
            return _entry(gap, BackfillStatus.UNSUPPORTED, exc.detail)
        except DeviceError as exc:
            return _entry(gap, BackfillStatus.UNREACHABLE, f"recording search failed: {exc.detail}")
        found = _clip(spans, gap.start, gap.end)
        if not found:
            return _entry(gap, BackfillStatus.NOT_ON_DEVICE, "the device holds no footage of the span")
        if self.dry_run:
            return _entry(gap, BackfillStatus.PLANNED, found=tuple(Span(start=a, end=b) for _, a, b in found))
        sealed: list[SealedSegment] = []
        problems = []
        for span, start, stop in found:
            try:
                sealed += await self._fetch(device, adapter, gap, span, start, stop)
            except _FetchBroke as broke:  # what was sealed before it broke off is kept
                sealed += broke.segments
                problems.append(broke.error.detail)
            except DeviceError as exc:
                problems.append(exc.detail)
        filled = tuple(s for s in (self._catalogue(device, segment) for segment in sealed) if s is not None)
        remaining = [Span(start=gap.start, end=gap.end)]
        if filled:
            try:
                rows = self.catalog.fill_gap(gap.id, filled, filled_by=f"backfill:{device.id}")
            except (NotInCatalog, InvalidChange):  # another backfill (another hub) took the gap meanwhile
                rows = []
            remaining = [Span(start=r.start, end=r.end) for r in rows if r.end is not None]
        if filled:
            status = BackfillStatus.PARTIAL if remaining else BackfillStatus.FILLED
        else:
            status = BackfillStatus.UNREACHABLE if problems else BackfillStatus.NOT_ON_DEVICE
        detail = "; ".join(problems)
        if remaining and not detail:
            detail = "the footage fetched does not cover all of it (a segment starts at a keyframe)"
        self._log.info(
            "backfill_gap",
            device=device.id,
            channel=gap.channel,
            gap=gap.id,
            status=status.value,
            segments=len(filled),
            detail=detail,
        )
        return _entry(
            gap,
            status,
            detail,
            found=tuple(Span(start=s, end=e) for _, s, e in found),
            filled=filled,
            remaining=tuple(remaining),
            segments=len(filled),
        )

    async def _fetch(
        self,
        device: DeviceConfig,
        adapter: DeviceAdapter,
        gap: GapRecord,
        span: RecordingSpan,
        start: datetime,
        stop: datetime,
    ) -> list[SealedSegment]:
        """Remux the device's footage of ``[start, stop)`` (within ``span``) into sealed segments."""
        source = await adapter.recording(attrs.evolve(span, start=start, end=stop))
        key = ChannelKey(device.id, gap.channel)
        before = self.catalog.segments(device.id, gap.channel, gap.start - MAX_SEGMENT_DURATION, gap.start)
        origin = before[-1].start if before else None
        shown = f"{device.vendor}://{device.host}/channel/{gap.channel}/recording"
        running: list[ChannelRecorder] = []
        work = asyncio.ensure_future(
            asyncio.to_thread(self._remux, key, shown, source, span.start, (start, stop), origin, running)
        )
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:  # the hub stops: end the fetch, keep nothing uncatalogued
            for recorder in running:
                recorder.request_stop()
            try:
                segments = await work
            except _FetchBroke as broke:
                segments = broke.segments
            except Exception:  # noqa: BLE001 - stopping: nothing more to keep
                segments = []
            for segment in segments:
                segment.path.unlink(missing_ok=True)
            raise

    def _remux(
        self,
        key: ChannelKey,
        shown: str,
        source: MediaSource,
        listed_start: datetime,
        window: tuple[datetime, datetime],
        origin: datetime | None,
        running: list[ChannelRecorder],
    ) -> list[SealedSegment]:
        url = source.authenticated_url()
        relay: RtspRelay | None = None
        starts_at = listed_start  # a download starts where the device's listing says
        if url.lower().startswith("rtsp://"):
            headers: Callable[..., dict[str, str]] | None = getattr(source, "rtsp_headers", None)
            relay = RtspRelay(
                source.url, headers(fast=True) if headers else None, timeout=self.socket_timeout
            )
            url = relay.url_for(url)
            starts_at = window[0]  # a playback starts where asked, or where the device says
        sink = _Sealed()
        try:
            self._discard_partials(key)
            recorder = ChannelRecorder(
                key,
                lambda: url,
                shown,
                self.folder,
                sink,
                segment_seconds=self.segment_seconds,
                socket_timeout=self.socket_timeout,
                clock=lambda: (relay.played_from if relay is not None else None) or starts_at,
                grid_origin=origin,
            )
            running.append(recorder)
            recorder.record_span(*window)
        except DeviceError as exc:
            detail = (
                relay.error if relay is not None and relay.error else f"fetching the recording: {exc.detail}"
            )
            raise _FetchBroke(type(exc)(key.device_id, detail), sink.segments) from None
        finally:
            if relay is not None:
                relay.close()
        return sink.segments

    def _discard_partials(self, key: ChannelKey) -> None:
        """Remove what an interrupted backfill of this channel left: its gap is still there."""
        for partial in (self.folder / key.device_id / str(key.channel)).glob(f"*/*{PARTIAL_SUFFIX}"):
            partial.unlink(missing_ok=True)

    def _catalogue(self, device: DeviceConfig, segment: SealedSegment) -> Span | None:
        """Catalogue a backfilled segment; a segment that would overlap one is removed instead."""
        source = (
            f"{device.id} ({device.vendor}) ch{segment.key.channel} recording "
            f"{_zulu(segment.start)}/{_zulu(segment.end)}"
        )
        try:
            record = self.catalog.add_segment(
                **segment.catalog_fields(), source=SegmentSource.BACKFILL, backfill_source=source[:255]
            )
        except SegmentOverlap as exc:
            self._log.warning("backfill_overlap", path=str(segment.path), error=str(exc))
            segment.path.unlink(missing_ok=True)
            return None
        self.host.notify_segment_sealed(record)
        return record.span


class _FetchBroke(Exception):
    """A fetch broke off (``error``) after sealing ``segments``, which are kept."""

    def __init__(self, error: DeviceError, segments: list[SealedSegment]) -> None:
        super().__init__(error.detail)
        self.error = error
        self.segments = segments


class _Sealed:
    """Recorder callbacks that keep the sealed segments (a span's recorder reports no gaps)."""

    def __init__(self) -> None:
        self.segments: list[SealedSegment] = []

    def segment_sealed(self, segment: SealedSegment) -> None:
        self.segments.append(segment)

    def gap_opened(self, key: ChannelKey, start: datetime, cause: GapCause, detail: str) -> None:
        pass

    def gap_closed(self, key: ChannelKey, end: datetime) -> None:
        pass

    def state_changed(self, key: ChannelKey, state: RecorderState, detail: str) -> None:
        pass


def _clip(
    spans: list[RecordingSpan], start: datetime, end: datetime
) -> list[tuple[RecordingSpan, datetime, datetime]]:
    """Each found span with the part of it inside ``[start, end)``, in order, without overlaps."""
    parts = []
    cursor = start
    for span in sorted(spans, key=lambda s: s.start):
        a, b = max(span.start, cursor), min(span.end, end)
        if a < b:
            parts.append((span, a, b))
            cursor = b
    return parts


def _entry(gap: GapRecord, status: BackfillStatus, detail: str = "", **fields: Any) -> BackfillEntry:
    return BackfillEntry(
        device_id=gap.device_id,
        channel=gap.channel,
        gap_id=gap.id,
        cause=gap.cause,
        start=gap.start,
        end=gap.end,
        status=status,
        detail=detail,
        **fields,
    )


def _zulu(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
