"""The eventManager stream: the real peer capture, framing edge cases, normalisation and faults."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from dahua_support import PROFILES, rig, run, take_events
from hypothesis import given, settings
from hypothesis import strategies as st

from camhub.adapter import DeviceEvent, EventKind
from camhub.errors import DeviceProtocolError, DeviceTimeout, DeviceUnsupported
from camhub.testing.dahua import capture_bytes
from camhub.testing.simulator import SimulatedEvent
from camhub_dahua.events import PartFramer, iter_parts, parse_event_body, split_parts, to_device_event

RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)  # stands out if an event time is not the device's


def capture_events(data: bytes) -> list[DeviceEvent]:
    return [to_device_event("dahua-1", part, received=RECEIVED) for part in split_parts(data)]


def test_capture_parses_directly() -> None:
    start, stop = capture_events(capture_bytes())
    assert (start.kind, start.active, start.channel, start.vendor_type) == (
        EventKind.MOTION,
        True,
        1,
        "VideoMotion",
    )
    assert (stop.kind, stop.active, stop.channel) == (EventKind.MOTION, False, 1)
    # "UTC": 1691815050 in the data; LocaleTime 21:37:30 is the device's own (UTC-7) time.
    assert start.time == datetime(2023, 8, 12, 4, 37, 30, tzinfo=UTC)
    assert stop.time == datetime(2023, 8, 12, 4, 37, 46, tzinfo=UTC)
    # The Stop part declares 146 bytes but is 164 long (its unknown key was added by hand):
    # the boundary wins, the payload is kept whole, the unknown key tolerated.
    assert stop.payload.startswith("Code=VideoMotion;action=Stop;index=0;test=doesnotexist;data={")
    assert stop.payload.endswith('"SmartMotionEnable":\ttrue\n}')
    assert parse_event_body(stop.payload).fields["test"] == "doesnotexist"
    assert parse_event_body(stop.payload).data["Name"] == "IPC"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(capture_bytes()) - 1), max_size=12, unique=True))
def test_capture_parses_the_same_however_it_is_chunked(cuts: list[int]) -> None:
    data = capture_bytes()
    bounds = [0, *sorted(cuts), len(data)]

    async def chunks() -> AsyncIterator[bytes]:
        for a, b in itertools.pairwise(bounds):
            yield data[a:b]

    async def parts() -> list[bytes]:
        return [part async for part in iter_parts("dahua-1", chunks(), idle_timeout=1)]

    # Including a cut exactly at the lying Content-Length: the rest follows within the grace.
    assert asyncio.run(parts()) == split_parts(data)


def test_capture_replayed_through_simulator_and_adapter_gives_the_same_events() -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.sim.replay_capture()
            replayed = await take_events(r.adapter, 2, sim=r.sim)
        direct = capture_events(capture_bytes())
        assert replayed == direct

    run(scenario)


def test_framing_tolerates_bare_lf_no_length_and_a_closing_boundary() -> None:
    stream = (
        b"--myboundary\nContent-Type: text/plain\n\nCode=VideoLoss;action=Start;index=2\n"
        b"--myboundary\r\nContent-Length: 9\r\n\r\nHeartbeat\r\n\r\n--myboundary--\r\n"
    )
    assert split_parts(stream) == [b"Code=VideoLoss;action=Start;index=2", b"Heartbeat"]


def test_framing_prefers_the_boundary_over_a_length_that_is_too_long() -> None:
    framer = PartFramer()
    framer.feed(b"--myboundary\r\nContent-Length: 500\r\n\r\nCode=A;action=Start\r\n\r\n--myboundary\r\n")
    assert framer.next_part() == b"Code=A;action=Start"


def test_a_part_is_delivered_at_its_length_without_waiting_for_the_next_boundary() -> None:
    framer = PartFramer()
    framer.feed(b"--myboundary\r\nContent-Length: 9\r\n\r\nHeartbeat\r\n\r\n")
    assert framer.next_part() == b"Heartbeat"
    assert framer.next_part() is None


@pytest.mark.parametrize(
    "stream",
    [
        b"--myboundary\r\nContent-Length: 40\r\n\r\nCode=VideoMotion;act",
        b"--myboundary\r\nContent-Type: text/plain\r\n\r\nCode=VideoMotion;action=St",
        b"--myboundary\r\nContent-Typ",
    ],
)
def test_a_stream_cut_inside_a_part_is_a_protocol_error(stream: bytes) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield stream

    async def drain() -> None:
        async for _ in iter_parts("dahua-1", chunks(), idle_timeout=1):
            pass

    with pytest.raises(DeviceProtocolError, match="dahua-1"):
        asyncio.run(drain())


def test_an_oversized_part_is_refused_without_being_buffered() -> None:
    framer = PartFramer(max_part=1024)
    framer.feed(b"--myboundary\r\nContent-Length: 999999999\r\n\r\n")
    with pytest.raises(Exception, match="exceeds"):
        framer.next_part()


@pytest.mark.parametrize(
    ("body", "kind", "channel", "active"),
    [
        ("Code=VideoMotion;action=Start;index=3;data={}", EventKind.MOTION, 4, True),
        ("Code=VideoLoss;action=Stop;index=0", EventKind.VIDEO_LOSS, 1, False),
        ("Code=VideoBlind;action=Start;index=1", EventKind.TAMPER, 2, True),
        ("Code=StorageFailure;action=Start;index=0", EventKind.STORAGE_FAULT, None, True),
        ("Code=StorageNotExist;action=Pulse;index=0", EventKind.STORAGE_FAULT, None, True),
        ("Code=StorageLowSpace;action=Start;index=1", EventKind.STORAGE_FAULT, None, True),
        ('Code=LoginFailure;action=Pulse;index=0;data={"Name":"admin"}', EventKind.LOGIN_FAILURE, None, True),
        ("Code=CrossLineDetection;action=Start;index=0;data={not json", EventKind.OTHER, 1, True),
        ("Heartbeat", EventKind.HEARTBEAT, None, True),
        ("garbage without any key", EventKind.OTHER, None, True),
    ],
)
def test_normalisation(body: str, kind: EventKind, channel: int | None, active: bool) -> None:
    event = to_device_event("dahua-1", body.encode(), received=RECEIVED)
    assert (event.kind, event.channel, event.active) == (kind, channel, active)
    assert event.payload == body
    assert event.time == RECEIVED  # no (or no usable) UTC in these bodies


def test_deeply_nested_data_does_not_break_the_parser() -> None:
    body = b"Code=VideoMotion;action=Start;index=0;data=" + b"[" * 100_000
    assert to_device_event("dahua-1", body, received=RECEIVED).kind is EventKind.MOTION


@pytest.mark.parametrize("kind", sorted(PROFILES))
def test_simulator_events_through_the_adapter(kind: str) -> None:
    async def scenario() -> None:
        async with rig(PROFILES[kind]()) as r:
            last = r.sim.profile.channels
            at = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
            emitted = [
                SimulatedEvent(EventKind.MOTION, True, last, at),
                SimulatedEvent(EventKind.VIDEO_LOSS, True, 1, at),
                SimulatedEvent(EventKind.TAMPER, False, 1, at),
                SimulatedEvent(EventKind.STORAGE_FAULT, True, None, at),
                SimulatedEvent(EventKind.MOTION, False, last, at),
            ]

            def trigger() -> None:
                for event in emitted:
                    r.sim.emit(event)

            got = await take_events(r.adapter, len(emitted), started=trigger, sim=r.sim)
            assert [(e.kind, e.active, e.channel) for e in got] == [
                (e.kind, e.active, e.channel) for e in emitted
            ]
            # On the wire the index is 0-based.
            assert f"index={last - 1};" in got[0].payload
            assert all(e.time == at and e.device_id == "dahua-1" for e in got)  # the device's UTC

    run(scenario)


def test_heartbeats_arrive_as_asked() -> None:
    async def scenario() -> None:
        async with rig() as r:
            [beat] = await take_events(r.adapter, 1, sim=r.sim, skip_heartbeats=False)
            assert (beat.kind, beat.payload, beat.channel) == (EventKind.HEARTBEAT, "Heartbeat", None)
            assert any("heartbeat=1" in line and "codes=[All]" in line for line in r.sim.requests)

    run(scenario)


def test_a_silent_stream_times_out() -> None:
    async def scenario() -> None:
        async with rig(timeout=0.5, event_heartbeat=1) as r:
            r.sim.heartbeats = False
            started = asyncio.get_running_loop().time()
            with pytest.raises(DeviceTimeout, match="dahua-1"):
                await take_events(r.adapter, 1, sim=r.sim, skip_heartbeats=False)
            assert asyncio.get_running_loop().time() - started < 4.5

    run(scenario)


def test_a_stream_dropped_mid_part_is_a_protocol_error() -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.sim.faults.drop_stream_after_bytes = 40  # inside the first part
            with pytest.raises(DeviceProtocolError, match="dahua-1"):
                await take_events(
                    r.adapter,
                    1,
                    sim=r.sim,
                    started=lambda: r.sim.emit(SimulatedEvent(EventKind.MOTION, True, 1)),
                )

    run(scenario)


def test_an_event_stream_refused_with_error_is_unsupported() -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.sim.refuse.add("eventManager.cgi:attach")
            with pytest.raises(DeviceUnsupported, match="Bad Request"):
                await take_events(r.adapter, 1)

    run(scenario)
