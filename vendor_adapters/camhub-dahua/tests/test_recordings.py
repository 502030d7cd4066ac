"""Recording search (mediaFileFind) and fetch (RPC_Loadfile) against the simulators."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
from dahua_support import PROFILES, nvr, rig, run

from camhub.adapter import RecordingSpan
from camhub.errors import DeviceProtocolError
from camhub.testing.media import make_clip
from camhub.testing.simulator import SimulatedRecording, default_recordings
from camhub_dahua.adapter import SEARCH_PAGE


def spans_of(recordings: list[SimulatedRecording], channel: int) -> list[tuple[datetime, datetime]]:
    return sorted((r.start, r.end) for r in recordings if r.channel == channel)


@pytest.mark.parametrize("kind", sorted(PROFILES))
def test_search_finds_the_channels_files_in_utc(kind: str) -> None:
    async def scenario() -> None:
        async with rig(PROFILES[kind]()) as r:
            r.sim.recordings = default_recordings(r.sim, hours=2, span_minutes=30)
            last = r.sim.profile.channels
            now = r.sim.now()
            found = await r.adapter.search_recordings(last, now - timedelta(hours=3), now)
            assert [(s.start, s.end) for s in found] == spans_of(r.sim.recordings, last)
            assert all(s.channel == last and s.token.startswith("/mnt/") and s.size for s in found)
            # The query is 1-based; the listing the device sent was 0-based.
            assert any(f"condition.Channel={last}&" in line for line in r.sim.requests)
            assert r.sim.open_finders == 0, "the search object is closed and destroyed"

    run(scenario)


def test_search_in_a_device_west_of_greenwich() -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.sim.timezone_index = 27  # GMT-07:00
            r.sim.recordings = default_recordings(r.sim, hours=1, span_minutes=20)
            now = r.sim.now()
            found = await r.adapter.search_recordings(1, now - timedelta(hours=2), now)
            assert [(s.start, s.end) for s in found] == spans_of(r.sim.recordings, 1)
            local = f"{(now - timedelta(hours=2)).astimezone(r.sim.tz):%H:%M:%S}"
            assert any("condition.StartTime=" in line and f"%20{local}" in line for line in r.sim.requests)

    run(scenario)


def test_search_only_returns_spans_overlapping_the_range() -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.sim.recordings = default_recordings(r.sim, hours=2, span_minutes=30)
            first = min(rec.start for rec in r.sim.recordings)
            found = await r.adapter.search_recordings(
                1, first + timedelta(minutes=40), first + timedelta(minutes=50)
            )
            assert [(s.start, s.end) for s in found] == [
                (first + timedelta(minutes=30), first + timedelta(minutes=60))
            ]

    run(scenario)


@pytest.mark.parametrize("lie", [None, 0, SEARCH_PAGE, 7])
def test_paging_trusts_the_items_not_found(lie: int | None) -> None:
    async def scenario() -> None:
        async with rig(nvr()) as r:
            r.sim.found_lie = lie
            start = r.sim.now().replace(second=0, microsecond=0) - timedelta(hours=5)
            r.sim.recordings = [
                SimulatedRecording(
                    channel=2, start=start + timedelta(minutes=i), end=start + timedelta(minutes=i + 1)
                )
                for i in range(2 * SEARCH_PAGE + 37)
            ] + [SimulatedRecording(channel=1, start=start, end=start + timedelta(hours=4))]
            found = await r.adapter.search_recordings(2, start, start + timedelta(hours=6))
            assert len(found) == 2 * SEARCH_PAGE + 37
            assert [s.start for s in found] == sorted(s.start for s in found)
            assert sum("findNextFile" in line for line in r.sim.requests) == 3
            assert r.sim.open_finders == 0

    run(scenario)


def test_empty_search_and_refused_search_still_destroy_the_finder() -> None:
    async def scenario() -> None:
        async with rig() as r:
            now = r.sim.now()
            assert await r.adapter.search_recordings(1, now - timedelta(hours=1), now) == []
            r.sim.refuse.add("mediaFileFind.cgi:findFile")
            assert await r.adapter.search_recordings(1, now - timedelta(hours=1), now) == []
            assert r.sim.open_finders == 0
            assert sum("action=destroy" in line for line in r.sim.requests) == 2

    run(scenario)


def test_search_arguments_are_checked() -> None:
    async def scenario() -> None:
        async with rig() as r:
            now = datetime.now(UTC)
            with pytest.raises(ValueError, match="timezone-aware"):
                await r.adapter.search_recordings(1, now.replace(tzinfo=None), now)
            assert await r.adapter.search_recordings(1, now, now - timedelta(hours=1)) == []
            assert r.sim.requests == []

    run(scenario)


def remux(url: str, out: Path) -> tuple[int, str]:
    """What the recorder's backfill does: demux the device file over HTTP and copy it into MP4."""
    with av.open(url, options={"rw_timeout": "5000000"}) as source, av.open(str(out), "w") as target:
        video = source.streams.video[0]
        copied = target.add_stream_from_template(video)
        packets = 0
        for packet in source.demux(video):
            if packet.dts is None:
                continue
            packet.stream = copied
            target.mux(packet)
            packets += 1
        return packets, video.codec_context.name


@pytest.mark.parametrize("kind", sorted(PROFILES))
def test_a_found_file_is_fetched_over_http_and_remuxed_with_pyav(kind: str, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "footage.ts", seconds=2, width=320, height=180, audio=None)

    async def scenario() -> None:
        async with rig(PROFILES[kind]()) as r:
            now = r.sim.now().replace(microsecond=0)
            r.sim.recordings = [
                SimulatedRecording(channel=1, start=now - timedelta(minutes=9), end=now - timedelta(minutes=7),
                                   path=str(clip)),
            ]  # fmt: skip
            [span] = await r.adapter.search_recordings(1, now - timedelta(hours=1), now)
            assert span.size == clip.stat().st_size
            source = await r.adapter.recording(span)
            assert source.url.startswith(f"http://127.0.0.1:{r.sim.port}/cgi-bin/RPC_Loadfile/mnt/")
            assert r.sim.profile.password not in source.url + repr(source)
            # PyAV (FFmpeg) answers the Digest challenge itself, with the percent-encoded password.
            packets, codec = await asyncio.to_thread(remux, source.authenticated_url(), tmp_path / "out.mp4")
            assert (packets, codec) == (50, "h264")
            assert r.sim.failed_logins == 0

    run(scenario)


def test_a_token_that_is_not_a_path_is_refused() -> None:
    async def scenario() -> None:
        async with rig() as r:
            span = RecordingSpan(channel=1, start=datetime.now(UTC), end=datetime.now(UTC), token="rtsp://x")
            with pytest.raises(DeviceProtocolError):
                await r.adapter.recording(span)

    run(scenario)


def test_playback_by_time_is_an_rtsp_url_in_device_local_time() -> None:
    async def scenario() -> None:
        async with rig() as r:
            start = datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC)
            source = await r.adapter.playback(3, start, start + timedelta(minutes=5))
            assert source.url == (
                "rtsp://127.0.0.1:8554/cam/playback?channel=3&subtype=0"
                "&starttime=2024_01_01_07_00_00&endtime=2024_01_01_07_05_00"
            )

    run(scenario)
