"""Backfill: a gap made by cutting the uplink is filled from the simulated devices' own recordings.

Real parts only: the Hikvision, Dahua and ONVIF simulators with their media served by the
pure-Python RTSP server, the hub recording them with PyAV, a real catalog, and the adapters
fetching the devices' recordings (Hikvision playback, Dahua download, ONVIF replay).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import peers
import pytest
from test_catalog import database_url

from camhub import PluginHost, load_config
from camhub.backfill import BackfillReport, BackfillStatus, backfill_gaps
from camhub.catalog import Catalog, GapCause, SegmentRecord, SegmentSource, Span, SyncState
from camhub.hub import Hub, HubSettings
from camhub.model import Channel, DeviceKind
from camhub.testing.fleet import Fleet
from camhub.testing.media import read_frame_index
from camhub.testing.rtsp import RtspServer
from provinces import REPO

postgres_server = peers.postgres_server
__all__ = ["database_url"]  # the fixture of test_catalog (SQLite and PostgreSQL), used here by name
PASSWORD = "nvr-Pässword-5"
VENDORS = ("hikvision", "dahua", "onvif")
SEGMENT = 4.0  # the grid: short, so that the outage spans several segments' worth
FPS = 25


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _province(tmp_path: Path, devices: list[str]) -> Path:
    (tmp_path / "pw").write_text(PASSWORD, encoding="utf-8")
    path = tmp_path / "province.yaml"
    path.write_text(
        "\n".join(
            [
                "camhub: 1",
                "province: {id: thu, name: Tỉnh Thử}",
                "levels: [{id: province, name: Tỉnh}]",
                'bodies: [{id: hcc, name: Trung tâm HCC, level: province, article5: "5.3"}]',
                "credentials: {site: {username: admin, password: {$file: pw}}}",
                "units:",
                "  - id: thu",
                "    name: Trung tâm Hành chính công",
                "    level: province",
                "    managing_body: hcc",
                "    devices:",
                *(f"      - {device}" for device in devices),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def _camera(vendor: str, port: int | None = None) -> str:
    port = port or _free_port()
    return (
        f"{{id: {vendor}-1, vendor: {vendor}, kind: camera, host: 127.0.0.1, port: {port}, "
        f"rtsp_port: {_free_port()}, credentials: site, channels: [{{id: 1, audio: true}}]}}"
    )


async def _until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


def _first_frame(segment: SegmentRecord) -> tuple[bool, int, int]:
    """(the first packet is a keyframe, its burnt-in frame index, frames decoded)."""
    assert segment.local_path is not None
    with av.open(segment.local_path) as container:
        stream = container.streams.video[0]
        first = next(p for p in container.demux(stream) if p.size)
        keyframe = first.is_keyframe
    with av.open(segment.local_path) as container:
        frames = list(container.decode(video=0))
    return keyframe, read_frame_index(frames[0]), len(frames)


def test_backfill_closes_the_gap_of_a_cut_uplink(tmp_path: Path, host: PluginHost) -> None:
    """The acceptance test: record, cut every device's media for a few seconds while the devices
    keep recording, then backfill: each gap closes (but for less than a GOP at its edges) with
    keyframe-aligned, decodable segments from the device's footage of that very time, marked
    backfill with their source, contiguous with the live ones, queued for the central store."""
    province = load_config(_province(tmp_path, [_camera(v) for v in VENDORS]), host=host)
    data = tmp_path / "hub"
    channels = [(f"{v}-1", 1) for v in VENDORS]
    media: dict[str, tuple[RtspServer, str]] = {}

    async def scenario() -> tuple[Catalog, datetime, datetime, BackfillReport]:
        async with Fleet(province) as fleet:
            catalog = Catalog.open(str(data / "catalog.db"))
            settings = HubSettings(data_dir=data, segment_seconds=SEGMENT, socket_timeout=2.0, upload=False)
            hub = Hub(province, host, catalog, settings)
            stop = asyncio.Event()
            began = datetime.now(UTC)
            task = asyncio.create_task(hub.run(stop))
            try:

                def recorded() -> bool:
                    return all(catalog.segments(d, c, began, datetime.now(UTC)) for d, c in channels)

                await _until(recorded, 30, "a live segment of every channel")
                for device, _ in channels:
                    fleet.cut(device)  # the uplink is cut: the devices record on
                await asyncio.sleep(6)
                for device, _ in channels:
                    fleet.restore(device)

                def reconnected() -> bool:
                    now = datetime.now(UTC)
                    return all(
                        (gaps := catalog.gaps(d, c, began, now))
                        and all(g.end is not None for g in gaps)
                        and catalog.segments(d, c, max(g.end for g in gaps if g.end), now)
                        for d, c in channels
                    )

                await _until(reconnected, 40, "every channel recording again after its gap")
                await asyncio.sleep(SEGMENT)
            finally:
                stop.set()
                await task
            ended = datetime.now(UTC)
            for device, _ in channels:
                fleet.keep_recordings(device, began, ended, tmp_path / "device-storage")
                media[device] = (fleet.media[device], fleet.main_path(device, 1))
            report = await backfill_gaps(
                province, catalog, host, data / "backfill", since=began, until=ended, segment_seconds=SEGMENT
            )
            return catalog, began, ended, report

    catalog, began, ended, report = asyncio.run(scenario())
    try:
        assert report.failed == ()
        entries = report.entries
        for device, channel in channels:
            mine = [e for e in entries if e.device_id == device]
            assert all(e.end is not None for e in mine), mine
            outage = [
                (e, (e.end or e.start) - e.start)
                for e in mine
                if (e.end or e.start) - e.start >= timedelta(seconds=3)
            ]
            assert outage, f"{device}: no gap of the cut in {mine}"
            for entry, length in outage:
                assert entry.status in (BackfillStatus.FILLED, BackfillStatus.PARTIAL), entry
                # What is left is at most the edges: before the first keyframe, after the last frame.
                assert entry.filled_seconds >= length.total_seconds() - 2.5, entry
                assert all(r.duration.total_seconds() <= 2.1 for r in entry.remaining), entry
                # At the end, at most a frame or two (packets interleave): the footage is fetched to
                # the gap's end, not to a whole second before it (Hikvision playback URIs name
                # whole seconds; the live side may place the gap's end anywhere in a second).
                tail = [r for r in entry.remaining if r.start > entry.start]
                assert all(r.duration.total_seconds() <= 2 / FPS for r in tail), entry

            segments = catalog.segments(device, channel, began, ended)
            live = [s for s in segments if s.source is SegmentSource.LIVE]
            backfilled = [s for s in segments if s.source is SegmentSource.BACKFILL]
            assert backfilled, device
            # The cut's footage lies between live segments (a gap at the hub's start may be filled too).
            assert any(live[0].end <= b.start and b.end <= live[-1].start for b in backfilled), device
            gaps = catalog.gaps(device, channel, began, ended)
            # Contiguous: segments and the gaps left account for the whole recorded time (the
            # recorder counts a gap from the last packet's start, so edges share a frame or so).
            first, last = segments[0].start, segments[-1].end
            total = sum(((s.end - s.start) for s in segments), timedelta(0)) + sum(
                (max(timedelta(0), min(g.end or last, last) - max(g.start, first)) for g in gaps),
                timedelta(0),
            )
            assert abs(total - (last - first)) < timedelta(seconds=0.05 * (len(gaps) + 1)), device
            for hole in catalog.coverage(device, channel, first, last).holes:
                assert any(
                    g.start - timedelta(seconds=0.05) <= hole.start and hole.end <= (g.end or last)
                    for g in gaps
                )
            for gap in gaps:
                assert gap.end is not None and gap.closed_by is not None
            assert any(g.closed_by == f"backfill:{device}" for g in gaps) or not gaps

            for segment in backfilled:
                assert segment.backfill_source is not None and segment.backfill_source.startswith(device)
                assert segment.sync_state is SyncState.PENDING  # the uploader sends it like a live one
                keyframe, index, frames = _first_frame(segment)
                assert keyframe, (
                    f"{device}: backfilled segment {segment.start} does not start with a keyframe"
                )
                assert frames >= (segment.end - segment.start).total_seconds() * FPS - 3
                # The footage is the device's own recording of that very time (within a frame).
                server, path = media[device]
                truth = server.frame_at(path, segment.start)
                assert min((index - truth) % 250, (truth - index) % 250) <= 1, (device, segment.start, index)
    finally:
        catalog.close()


def test_backfill_reports_devices_it_cannot_ask_and_keeps_their_gaps(
    tmp_path: Path, host: PluginHost, database_url: str
) -> None:
    """A device without the recordings capability and an unreachable one are reported, each gap
    kept as it was; a gap still open is left for later; a dry run changes nothing."""
    dead_port = _free_port()
    config = _province(
        tmp_path,
        [
            "{id: enc-1, vendor: rtsp, kind: encoder, host: 127.0.0.1, rtsp_port: 1, credentials: site, "
            "channels: [{id: 1}], streams: [{channel: 1, main: /cam}]}",
            _camera("hikvision", dead_port),
        ],
    )
    province = load_config(config, host=host)
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    with Catalog.open(database_url) as catalog:
        for device in province.devices:
            catalog.upsert_device(
                device.id, unit="thu", vendor=device.vendor, kind=device.kind, host=device.host
            )
            catalog.upsert_channels(device.id, [Channel(id=1)])
        for name in ("enc-1", "hikvision-1"):
            gap = catalog.open_gap(name, 1, t0, GapCause.UNREACHABLE, "uplink down")
            catalog.close_gap(gap, t0 + timedelta(minutes=2), closed_by="reconnected")
        still = catalog.open_gap("hikvision-1", 1, t0 + timedelta(minutes=5), GapCause.STALL, "stalled")

        for dry_run in (True, False):
            report = asyncio.run(
                backfill_gaps(
                    province,
                    catalog,
                    host,
                    tmp_path / "backfill",
                    since=t0 - timedelta(hours=1),
                    dry_run=dry_run,
                )
            )
            by_device = {(e.device_id, e.end is None): e for e in report.entries}
            unsupported = by_device[("enc-1", False)]
            assert unsupported.status is BackfillStatus.UNSUPPORTED
            assert "no recordings capability" in unsupported.detail
            unreachable = by_device[("hikvision-1", False)]
            assert unreachable.status is BackfillStatus.UNREACHABLE
            assert "recording search failed" in unreachable.detail
            assert report.failed == (unreachable,)
            assert by_device[("hikvision-1", True)].status is BackfillStatus.STILL_OPEN
            assert PASSWORD not in repr(report.as_dict())
        for name in ("enc-1", "hikvision-1"):
            gaps = catalog.gaps(name, 1, t0 - timedelta(hours=1), datetime.now(UTC))
            assert [(g.start, g.closed_by) for g in gaps if g.end is not None] == [(t0, "reconnected")]
        assert catalog.gap(still) is not None and catalog.gap(still).end is None  # type: ignore[union-attr]
        assert not list((tmp_path / "backfill").rglob("*.mp4"))


def test_fill_gap_shrinks_splits_and_removes(database_url: str) -> None:
    """The catalog side: what backfill fills is taken out of a gap, the rest stays with its cause."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    with Catalog.open(database_url) as catalog:
        catalog.upsert_device("nvr-1", unit="u", vendor="hikvision", kind=DeviceKind.NVR, host="127.0.0.1")
        catalog.upsert_channels("nvr-1", [Channel(id=1)])
        gap = catalog.open_gap("nvr-1", 1, at(0), GapCause.STALL, "no data")
        catalog.close_gap(gap, at(60), closed_by="reconnected")
        left = catalog.fill_gap(
            gap, [Span(start=at(10), end=at(20)), Span(start=at(20), end=at(30))], filled_by="backfill:nvr-1"
        )
        assert [(g.start, g.end, g.closed_by, g.cause) for g in left] == [
            (at(0), at(10), "backfill:nvr-1", GapCause.STALL),
            (at(30), at(60), "reconnected", GapCause.STALL),
        ]
        assert left[0].id == gap
        assert (
            catalog.fill_gap(left[1].id, [Span(start=at(25), end=at(61))], filled_by="backfill:nvr-1") == []
        )
        assert catalog.gap(left[1].id) is None
        assert [g.id for g in catalog.gaps("nvr-1", 1, at(0), at(60))] == [gap]
        still = catalog.open_gap("nvr-1", 1, at(100), GapCause.STALL)
        with pytest.raises(Exception, match="still open"):
            catalog.fill_gap(still, [Span(start=at(100), end=at(101))], filled_by="backfill:nvr-1")


def test_cli_backfill_dry_run_and_failure_exit(tmp_path: Path) -> None:
    """``camhub backfill`` prints the report; an unreachable device makes the exit status 1."""
    config = _province(tmp_path, [_camera("hikvision")])
    data = tmp_path / "data"
    with Catalog.open(str(data / "catalog.db")) as catalog:
        catalog.upsert_device(
            "hikvision-1", unit="thu", vendor="hikvision", kind=DeviceKind.CAMERA, host="127.0.0.1"
        )
        catalog.upsert_channels("hikvision-1", [Channel(id=1)])
        now = datetime.now(UTC)
        gap = catalog.open_gap("hikvision-1", 1, now - timedelta(hours=2), GapCause.UNREACHABLE, "uplink")
        catalog.close_gap(gap, now - timedelta(hours=1), closed_by="reconnected")
    command = [
        sys.executable,
        "-m",
        "camhub",
        "backfill",
        str(config),
        "--data-dir",
        str(data),
        "--since",
        "1d",
    ]
    done = subprocess.run(
        [*command, "--dry-run", "--json"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert '"status": "unreachable"' in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    shown = subprocess.run(
        [*command, "--device", "nope"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 1 and "no device 'nope'" in shown.stderr
    assert "Traceback" not in shown.stderr


def test_hub_backfills_a_gap_by_itself_once_it_closes(tmp_path: Path, host: PluginHost) -> None:
    """With ``backfill_after``, the hub fills a channel's gap from the device soon after it closes."""
    province = load_config(_province(tmp_path, [_camera("onvif")]), host=host)
    data = tmp_path / "hub"

    async def scenario() -> list[SegmentRecord]:
        async with Fleet(province) as fleet:
            with Catalog.open(str(data / "catalog.db")) as catalog:
                settings = HubSettings(
                    data_dir=data,
                    segment_seconds=SEGMENT,
                    socket_timeout=2.0,
                    upload=False,
                    backfill_after=1.0,
                )
                hub = Hub(province, host, catalog, settings)
                stop = asyncio.Event()
                began = datetime.now(UTC)
                task = asyncio.create_task(hub.run(stop))
                try:
                    # The device records all along (its recording's end lies ahead: it goes on).
                    fleet.keep_recordings("onvif-1", began, began + timedelta(minutes=5), tmp_path)
                    await _until(
                        lambda: catalog.segments("onvif-1", 1, began, datetime.now(UTC)), 30, "recording"
                    )
                    cut = datetime.now(UTC)
                    fleet.cut("onvif-1")
                    await asyncio.sleep(5)
                    fleet.restore("onvif-1")
                    restored = datetime.now(UTC)

                    def backfilled() -> list[SegmentRecord]:
                        # Only the cut's gap counts: a slow first connection can leave a gap of
                        # its own at the start, which the hub backfills too.
                        segments = catalog.segments("onvif-1", 1, cut, restored)
                        return [s for s in segments if s.source is SegmentSource.BACKFILL]

                    def filled() -> float:
                        return sum((s.end - s.start).total_seconds() for s in backfilled())

                    await _until(lambda: filled() >= 2.0, 40, "two seconds of the cut backfilled")
                finally:
                    stop.set()
                    await task
                return backfilled()

    segments = asyncio.run(scenario())
    assert segments and all(s.backfill_source and s.backfill_source.startswith("onvif-1") for s in segments)
