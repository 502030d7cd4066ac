"""Every capability, over real HTTP (Digest) to the Hikvision simulator on loopback: IPC and NVR.

No mocks: the adapter talks to :class:`camhub.testing.hikvision.HikvisionSimulator`, which
answers in the real devices' document shapes and serves the recorded peer captures verbatim.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from hik_harness import PASSWORD, adapter_for, events_while, ipc, nvr, rig, run

from camhub.adapter import Capability, ChannelInfo, DeviceEvent, EventKind, RecordingSpan, StreamProfile
from camhub.errors import DeviceUnsupported
from camhub.model import ChannelKind, DeviceKind
from camhub.net import parse_xml
from camhub.testing.hikvision import SNAPSHOT_JPEG, capture, capture_alert_sequence
from camhub.testing.simulator import SimulatedEvent, default_recordings
from camhub_hikvision import HikvisionAdapter
from camhub_hikvision.config import RecordingClock
from camhub_hikvision.events import parse_alert, parse_triggers


def test_declares_every_capability() -> None:
    assert set(Capability) == HikvisionAdapter.capabilities


# -- identity and time ---------------------------------------------------------------------------
@pytest.mark.parametrize("recorder", [False, True], ids=["ipc", "nvr"])
def test_identity(recorder: bool) -> None:
    async def scenario() -> None:
        profile = nvr() if recorder else ipc()
        async with rig(profile) as r:
            identity = await r.adapter.identity()
            assert identity.vendor == "hikvision"
            assert (identity.model, identity.serial, identity.firmware, identity.mac) == (
                profile.model,
                profile.serial,
                profile.firmware,  # firmwareVersion + firmwareReleasedDate: "V5.7.14 build 231028"
                profile.mac,
            )
            assert identity.name == profile.name

    run(scenario)


@pytest.mark.parametrize("skew", [timedelta(minutes=5), timedelta(seconds=-93), timedelta(0)])
def test_time_reports_the_clock_skew(skew: timedelta) -> None:
    async def scenario() -> None:
        async with rig(ipc(clock_skew=skew)) as r:
            measured = await r.adapter.time()
            # The device writes whole seconds: the offset is the skew to within about a second.
            assert abs(measured.offset - skew) < timedelta(seconds=1.5)
            assert measured.device_time.utcoffset() == timedelta(0)
            assert measured.timezone == "UTC+07:00"
            health = await r.adapter.health()
            assert health.clock_skew is not None and abs(health.clock_skew - skew) < timedelta(seconds=1.5)

    run(scenario)


def test_time_zone_other_than_vietnam() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            r.sim.utc_offset = timedelta(hours=5, minutes=30)  # CST-5:30:00
            measured = await r.adapter.time()
            assert measured.timezone == "UTC+05:30"
            assert abs(measured.offset) < timedelta(seconds=1.5)

    run(scenario)


# -- channels -----------------------------------------------------------------------------------
def test_ipc_channels_with_audio_and_a_microphone() -> None:
    async def scenario() -> None:
        async with rig(ipc(channels=2)) as r:
            r.sim.microphones = 1
            r.sim.channel_names[1] = "Quầy tiếp nhận số 1"
            assert await r.adapter.channels() == [
                ChannelInfo(id=1, name="Quầy tiếp nhận số 1", audio=True),
                ChannelInfo(id=2, name="Camera 02", audio=True),
                ChannelInfo(id=3, kind=ChannelKind.MICROPHONE, name="Camera 03", audio=True),
            ]
            r.sim.profile.audio = False
            r.sim.microphones = 0
            # The layout is kept between sweeps: a new adapter (or a later read) sees the change.
            assert await r.adapter.channels() != await adapter_for(r.sim, r.client).channels()
            assert [c.audio for c in await adapter_for(r.sim, r.client).channels()] == [False, False]

    run(scenario)


def test_nvr_channels_are_its_proxied_cameras_with_online_state() -> None:
    async def scenario() -> None:
        async with rig(nvr(4)) as r:
            r.sim.offline_channels = {3}
            channels = await r.adapter.channels()
            assert [(c.id, c.name, c.online, c.audio) for c in channels] == [
                (1, "IPCamera 01", True, True),
                (2, "IPCamera 02", True, True),
                (3, "IPCamera 03", False, True),
                (4, "IPCamera 04", True, True),
            ]
            assert "GET /ISAPI/ContentMgmt/InputProxy/channels/status" in r.sim.requests

    run(scenario)


def test_an_nvr_configured_as_a_camera_is_recognised_by_its_device_type() -> None:
    async def scenario() -> None:
        async with rig(nvr(2), kind=DeviceKind.CAMERA) as r:
            assert [c.online for c in await r.adapter.channels()] == [True, True]

    run(scenario)


def test_nvr_without_channel_status_still_lists_channels() -> None:
    async def scenario() -> None:
        async with rig(nvr(2)) as r:
            r.sim.unsupported.add("/ISAPI/ContentMgmt/InputProxy/channels/status")
            assert [(c.id, c.online) for c in await r.adapter.channels()] == [(1, None), (2, None)]

    run(scenario)


# -- live and snapshot ----------------------------------------------------------------------------
def test_live_stream_uris_keep_credentials_apart() -> None:
    async def scenario() -> None:
        async with rig(nvr(4)) as r:
            main = await r.adapter.stream(3)
            sub = await r.adapter.stream(3, StreamProfile.SUB)
            assert main.url == "rtsp://127.0.0.1:8554/Streaming/Channels/301"
            assert sub.url == "rtsp://127.0.0.1:8554/Streaming/Channels/302"
            assert PASSWORD not in repr(main) and PASSWORD not in main.url
            assert (
                main.authenticated_url()
                == "rtsp://admin:Hik-S%C3%AFm-p4ss%237@127.0.0.1:8554/Streaming/Channels/301"
            )
            # The simulator's own live path is the same one (its RTSP server serves it).
            assert r.sim.stream_url(3).endswith("/Streaming/Channels/301")
        async with rig(ipc(), host="::1") as r:
            assert (await r.adapter.stream(1)).url == "rtsp://[::1]:8554/Streaming/Channels/101"
            with pytest.raises(ValueError, match="start at 1"):
                await r.adapter.stream(0)

    run(scenario)


def test_ipc_snapshot() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            assert await r.adapter.snapshot(1) == SNAPSHOT_JPEG
            assert "GET /ISAPI/Streaming/channels/101/picture" in r.sim.requests
            assert not any("StreamingProxy" in line for line in r.sim.requests)

    run(scenario)


def test_nvr_snapshot_falls_back_to_the_streaming_proxy() -> None:
    async def scenario() -> None:
        async with rig(nvr(4)) as r:
            assert await r.adapter.snapshot(2) == SNAPSHOT_JPEG
            assert r.sim.requests[-2:] == [
                "GET /ISAPI/Streaming/channels/201/picture",  # 403 notSupport
                "GET /ISAPI/ContentMgmt/StreamingProxy/channels/201/picture",
            ]
            r.sim.nvr_own_pictures = True
            r.sim.requests.clear()
            assert await r.adapter.snapshot(2) == SNAPSHOT_JPEG
            assert r.sim.requests == ["GET /ISAPI/Streaming/channels/201/picture"]

    run(scenario)


def test_snapshot_of_a_missing_channel_is_unsupported() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            with pytest.raises(DeviceUnsupported, match="no snapshot of channel 9") as caught:
                await r.adapter.snapshot(9)
            # Both answers are kept: the camera's invalidID and its refusal of the NVR-only path.
            assert "Streaming/channels/901/picture: the device answered HTTP 404" in str(caught.value)
            assert "StreamingProxy/channels/901/picture: not supported" in str(caught.value)

    run(scenario)


def test_a_refusal_answered_with_200_in_place_of_a_picture_falls_back() -> None:
    async def scenario() -> None:
        async with rig(nvr(2)) as r:
            r.sim.nvr_own_pictures = True
            refusal = (
                b'<ResponseStatus xmlns="http://www.hikvision.com/ver20/XMLSchema"><statusCode>4</statusCode>'
                b"<subStatusCode>notSupport</subStatusCode></ResponseStatus>"
            )
            r.sim.override_body("/ISAPI/Streaming/channels/101/picture", refusal, status=200)
            assert await r.adapter.snapshot(1) == SNAPSHOT_JPEG
            assert r.sim.requests[-1] == "GET /ISAPI/ContentMgmt/StreamingProxy/channels/101/picture"

    run(scenario)


# -- events ------------------------------------------------------------------------------------
def not_heartbeat(event: DeviceEvent) -> bool:
    return event.kind is not EventKind.HEARTBEAT


@pytest.mark.parametrize("recorder", [False, True], ids=["ipc", "nvr"])
def test_events_are_normalised(recorder: bool) -> None:
    emitted = [
        SimulatedEvent(EventKind.MOTION, True, 2),
        SimulatedEvent(EventKind.VIDEO_LOSS, True, 2),
        SimulatedEvent(EventKind.VIDEO_LOSS, False, 2),  # the loss ends: not a keep-alive
        SimulatedEvent(EventKind.TAMPER, True, 1),
        SimulatedEvent(EventKind.STORAGE_FAULT, True),
        SimulatedEvent(EventKind.LOGIN_FAILURE, True),
        SimulatedEvent(EventKind.OTHER, True, 1),
    ]

    async def scenario() -> None:
        async with rig(nvr(2) if recorder else ipc(channels=2)) as r:

            def emit_all() -> None:
                for event in emitted:
                    r.sim.emit(event)

            events = await events_while(r, len(emitted), emit_all, keep=not_heartbeat)
            assert [(e.kind, e.active, e.channel) for e in events] == [
                (s.kind, s.active, s.channel) for s in emitted
            ]
            assert [e.vendor_type for e in events] == [
                "VMD",
                "videoloss",
                "videoloss",
                "shelteralarm",
                "diskerror",
                "illaccess",
                "linedetection",
            ]
            channel_tag = "<dynChannelID>2</dynChannelID>" if recorder else "<channelID>2</channelID>"
            assert channel_tag in events[0].payload
            assert all(e.device_id == "hik-1" and e.time.utcoffset() == timedelta(0) for e in events)
            assert abs(events[0].time - r.sim.now()) < timedelta(seconds=5)

    run(scenario)


@pytest.mark.parametrize("recorder", [False, True], ids=["ipc", "nvr"])
def test_keepalives_are_heartbeats_and_keep_the_stream_alive(recorder: bool) -> None:
    async def scenario() -> None:
        async with rig(nvr(2) if recorder else ipc(), heartbeat_interval=0.1, event_idle_timeout=3.0) as r:
            events = await events_while(r, 6, lambda: None)
            assert {(e.kind, e.active, e.channel, e.vendor_type) for e in events} == {
                (EventKind.HEARTBEAT, False, None, "videoloss")
            }

    run(scenario)


def test_boundary_only_framing_through_the_adapter() -> None:
    async def scenario() -> None:
        # Without Content-Length a part ends where the next begins: the next keep-alive delimits it.
        async with rig(ipc(), heartbeat_interval=0.1) as r:
            r.sim.multipart_content_length = False
            emit = lambda: r.sim.emit(SimulatedEvent(EventKind.MOTION, True, 1))  # noqa: E731
            events = await events_while(r, 1, emit, keep=not_heartbeat)
            assert (events[0].kind, events[0].channel) == (EventKind.MOTION, 1)

    run(scenario)


def test_alert_stream_not_offered_is_unsupported() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            r.sim.unsupported.add("/ISAPI/Event/notification/alertStream")
            with pytest.raises(DeviceUnsupported, match="notSupport"):
                await anext(r.adapter.events())

    run(scenario)


def test_event_triggers_from_the_simulator() -> None:
    async def scenario() -> None:
        async with rig(nvr(2)) as r:
            triggers = await r.adapter.event_triggers()
            motion = [t for t in triggers if t.kind is EventKind.MOTION]
            assert [(t.channel, t.notifies_center) for t in motion] == [(1, True), (2, True)]

    run(scenario)


# -- the real captures, served by the simulator through the adapter ---------------------------
def test_recorded_alert_sequence_through_the_adapter_is_parsed_identically() -> None:
    async def scenario() -> None:
        async with rig(ipc(), heartbeat_interval=60) as r:
            r.sim.serve_capture_events = True
            sequence = capture_alert_sequence()
            events = await events_while(r, len(sequence), lambda: None)
            assert events == [parse_alert("hik-1", body) for body in sequence]
            assert {e.kind for e in events} == {EventKind.HEARTBEAT}

    run(scenario)


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "boundary-only"])
def test_recorded_alerts_through_the_adapter_are_parsed_identically(length: bool) -> None:
    names = [
        "alert_videoloss_inactive_heartbeat_ipc.xml",
        "alert_vmd_active_ipc.xml",
        "alert_linedetection_active_ipc.xml",
        "alert_vmd_active_nvr_dynChannelID.xml",
        "alert_videoloss_active_nvr.xml",
        "alert_fielddetection_active_ptz.xml",
    ]

    async def scenario() -> None:
        async with rig(nvr(16), heartbeat_interval=60) as r:
            r.sim.multipart_content_length = length

            def replay() -> None:
                for name in names:
                    r.sim.emit_alert_xml(capture(name))
                if not length:  # without Content-Length the last part ends where the next begins
                    r.sim.emit(SimulatedEvent(EventKind.MOTION, True, 1))

            events = await events_while(r, len(names), replay)
            assert events == [parse_alert("hik-1", capture(name)) for name in names]
            assert [(e.kind, e.channel) for e in events] == [
                (EventKind.HEARTBEAT, None),
                (EventKind.MOTION, 1),
                (EventKind.OTHER, 1),
                (EventKind.MOTION, 15),
                (EventKind.VIDEO_LOSS, 16),
                (EventKind.OTHER, 1),
            ]

    run(scenario)


def test_recorded_triggers_through_the_adapter_are_parsed_identically() -> None:
    async def scenario() -> None:
        async with rig(nvr(16)) as r:
            r.sim.serve_capture_triggers = True
            document = capture("isapi_event_triggers_nvr_hiksink.xml")
            assert await r.adapter.event_triggers() == parse_triggers("hik-1", parse_xml("hik-1", document))

    run(scenario)


# -- recordings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("recorder", [False, True], ids=["ipc", "nvr"])
def test_search_reads_every_page(recorder: bool) -> None:
    async def scenario() -> None:
        async with rig(nvr(2) if recorder else ipc(), search_page_size=3) as r:
            r.sim.recordings = default_recordings(r.sim, hours=4, span_minutes=30)  # 8 spans a channel
            await r.adapter.identity()  # log in first: the Digest challenge is a request too
            r.sim.requests.clear()
            now = r.sim.now()
            spans = await r.adapter.search_recordings(2 if recorder else 1, now - timedelta(hours=5), now)
            expected = [rec for rec in r.sim.recordings if rec.channel == (2 if recorder else 1)]
            assert [(s.channel, s.start, s.end) for s in spans] == [
                (e.channel, e.start, e.end) for e in expected
            ]
            assert r.sim.requests.count("POST /ISAPI/ContentMgmt/search") == 3  # 3 + 3 + 2, MORE twice
            assert all(s.size == 1800 * 250_000 for s in spans)
            assert spans[0].token.startswith(
                f"rtsp://127.0.0.1/Streaming/tracks/{spans[0].channel}01/?starttime="
            )

    run(scenario)


def test_search_narrow_window_and_no_matches() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            r.sim.recordings = default_recordings(r.sim, hours=2, span_minutes=30)
            first = r.sim.recordings[0]
            spans = await r.adapter.search_recordings(
                1, first.start + timedelta(minutes=40), first.start + timedelta(minutes=50)
            )
            assert [(s.start, s.end) for s in spans] == [(r.sim.recordings[1].start, r.sim.recordings[1].end)]
            long_ago = first.start - timedelta(days=30)
            assert await r.adapter.search_recordings(1, long_ago, long_ago + timedelta(hours=1)) == []
            assert await r.adapter.search_recordings(1, first.end, first.start) == []

    run(scenario)


def test_recording_rebuilds_the_playback_uri_on_the_configured_address() -> None:
    async def scenario() -> None:
        async with rig(nvr(2)) as r:
            r.sim.recordings = default_recordings(r.sim, hours=1, span_minutes=30)
            now = r.sim.now()
            span = (await r.adapter.search_recordings(2, now - timedelta(hours=2), now))[0]
            source = await r.adapter.recording(span)
            start, end = span.start.strftime("%Y%m%dT%H%M%SZ"), span.end.strftime("%Y%m%dT%H%M%SZ")
            assert source.url == (
                f"rtsp://127.0.0.1:8554/Streaming/tracks/201/?starttime={start}&endtime={end}"
                "&name=ch02_00000000000000002&size=450000000"  # the device's third file
            )
            assert PASSWORD not in repr(source) and source.password is not None
            # A caller may narrow a span: the playback URI follows it.
            narrowed = RecordingSpan(
                channel=2, start=span.start + timedelta(minutes=5), end=span.end, token=span.token
            )
            url = (await r.adapter.recording(narrowed)).url
            assert f"starttime={(span.start + timedelta(minutes=5)).strftime('%Y%m%dT%H%M%SZ')}" in url
            # Without a token, the track's URI is built.
            bare = RecordingSpan(channel=1, start=span.start, end=span.end, token="")
            assert (await r.adapter.recording(bare)).url == (
                f"rtsp://127.0.0.1:8554/Streaming/tracks/101/?starttime={start}&endtime={end}"
            )
            # Whole seconds only: a span's fractional start is rounded down, its end up (covered).
            fraction = RecordingSpan(
                channel=1,
                start=span.start + timedelta(seconds=3.25),
                end=span.start + timedelta(seconds=9.75),
                token="",
            )
            url = (await r.adapter.recording(fraction)).url
            assert f"starttime={(span.start + timedelta(seconds=3)).strftime('%Y%m%dT%H%M%SZ')}" in url
            assert f"endtime={(span.start + timedelta(seconds=10)).strftime('%Y%m%dT%H%M%SZ')}" in url

    run(scenario)


def test_firmware_that_searches_in_local_time() -> None:
    async def scenario() -> None:
        async with rig(ipc(), recording_clock=RecordingClock.LOCAL) as r:
            r.sim.search_times_local = True
            r.sim.recordings = default_recordings(r.sim, hours=1, span_minutes=30)
            now = r.sim.now()
            spans = await r.adapter.search_recordings(1, now - timedelta(hours=2), now)
            assert [(s.start, s.end) for s in spans] == [(e.start, e.end) for e in r.sim.recordings]
            local = (spans[0].start + timedelta(hours=7)).strftime("%Y%m%dT%H%M%SZ")
            assert f"starttime={local}" in (await r.adapter.recording(spans[0])).url

    run(scenario)


# -- health ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "expected"), [("ok", "ok"), ("idle", "ok"), ("error", "fault"), ("unformatted", "unformatted")]
)
def test_health_reports_storage(status: str, expected: str) -> None:
    async def scenario() -> None:
        async with rig(nvr(2)) as r:
            r.sim.storage_status = status
            r.sim.storage_disks = 2
            health = await r.adapter.health()
            assert (health.reachable, health.auth_ok, health.error) == (True, True, "")
            assert [(s.id, s.status) for s in health.storage] == [("hdd1", expected), ("hdd2", expected)]
            assert health.storage[0].capacity_bytes == 1907729 * 1024 * 1024

    run(scenario)


def test_health_of_a_camera_without_storage_and_of_a_dead_device() -> None:
    async def scenario() -> None:
        async with rig(ipc(), timeout=0.5) as r:
            r.sim.unsupported.add("/ISAPI/ContentMgmt/Storage")
            health = await r.adapter.health()
            assert (health.reachable, health.auth_ok, health.storage, health.error) == (True, True, (), "")
            r.sim.faults.delay = 2.0
            dead = await r.adapter.health()
            assert (dead.reachable, dead.auth_ok) == (False, False)
            assert "within 0.5 s" in dead.error

    run(scenario)


def test_concurrent_requests_share_one_login() -> None:
    async def scenario() -> None:
        async with rig(nvr(4)) as r:
            await r.adapter.identity()
            results = await asyncio.gather(
                *(r.adapter.snapshot(c) for c in range(1, 5)), r.adapter.channels()
            )
            assert results[:4] == [SNAPSHOT_JPEG] * 4
            assert r.sim.failed_logins == 0

    run(scenario)
