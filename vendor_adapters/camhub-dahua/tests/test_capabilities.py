"""Every capability of the Dahua adapter against the IPC and NVR simulators, over loopback HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dahua_support import PROFILES, rig, run

from camhub.adapter import Capability, StreamProfile
from camhub.errors import DeviceProtocolError, DeviceUnsupported
from camhub_dahua import DahuaAdapter
from camhub_dahua.adapter import jpeg_picture

KINDS = sorted(PROFILES)


def test_declares_every_capability() -> None:
    assert DahuaAdapter.capabilities == frozenset(Capability)


@pytest.mark.parametrize("kind", KINDS)
def test_identity(kind: str) -> None:
    async def scenario() -> None:
        async with rig(PROFILES[kind]()) as r:
            identity = await r.adapter.identity()
            p = r.sim.profile
            assert (identity.vendor, identity.model, identity.serial, identity.firmware) == (
                "dahua",
                p.model,
                p.serial,
                p.firmware,
            )
            assert identity.mac == p.mac
            assert identity.name == p.name  # UTF-8 (Vietnamese) survives

    run(scenario)


def test_identity_falls_back_to_device_type_and_serial_when_system_info_is_refused() -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.sim.refuse.add("magicBox.cgi:getSystemInfo")
            identity = await r.adapter.identity()
            assert (identity.model, identity.serial) == (r.sim.profile.model, r.sim.profile.serial)
            assert any("getDeviceType" in line for line in r.sim.requests)
            assert any("getSerialNo" in line for line in r.sim.requests)

    run(scenario)


def test_identity_takes_type_and_serial_from_system_info_alone() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.adapter.identity()
            asked = [line for line in r.sim.requests if "magicBox.cgi" in line]
            assert any("getSystemInfo" in line for line in asked)
            assert not any("getDeviceType" in line or "getSerialNo" in line for line in asked)

    run(scenario)


@pytest.mark.parametrize(("kind", "zone_index", "zone"), [("ipc", 12, "UTC+07:00"), ("nvr", 25, "UTC-05:00")])
def test_time_is_utc_with_the_device_offset(kind: str, zone_index: int, zone: str) -> None:
    async def scenario() -> None:
        profile = PROFILES[kind]()
        profile.clock_skew = timedelta(minutes=-3, seconds=7)
        async with rig(profile) as r:
            r.sim.timezone_index = zone_index
            before = datetime.now(UTC)
            measured = await r.adapter.time()
            assert measured.device_time.utcoffset() == timedelta(0)
            assert abs(measured.offset - profile.clock_skew) < timedelta(seconds=1.5)
            assert abs(measured.device_time - (before + profile.clock_skew)) < timedelta(seconds=2)
            assert measured.timezone == zone

    run(scenario)


def test_time_assumes_vietnam_when_the_zone_cannot_be_read() -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.sim.refuse.add("configManager.cgi:getConfig")  # NTP (and every config) refused
            measured = await r.adapter.time()
            assert measured.timezone == "UTC+07:00 (assumed)"
            assert abs(measured.offset) < timedelta(seconds=1.5)  # the simulator is on UTC+7

    run(scenario)


def test_channels_of_a_camera() -> None:
    async def scenario() -> None:
        async with rig(PROFILES["ipc"]()) as r:
            [channel] = await r.adapter.channels()
            assert (channel.id, channel.name, channel.audio, channel.online) == (1, "Cổng chính", True, None)
            # A camera has no remote inputs: MaxRemoteInputChannels answers Error, getCollect counts.
            assert any("devVideoInput.cgi?action=getCollect" in line for line in r.sim.requests)

    run(scenario)


def test_channels_of_an_nvr() -> None:
    async def scenario() -> None:
        async with rig(PROFILES["nvr"]()) as r:
            r.sim.offline_channels = {3}
            r.sim.titles[1] = "Phòng một cửa"
            channels = await r.adapter.channels()
            assert [c.id for c in channels] == [1, 2, 3, 4]
            assert channels[1].name == "Phòng một cửa"
            assert [c.online for c in channels] == [True, True, False, True]
            assert not any(c.audio for c in channels)

    run(scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_live_stream_uris(kind: str) -> None:
    async def scenario() -> None:
        async with rig(PROFILES[kind]()) as r:
            main = await r.adapter.stream(2)
            sub = await r.adapter.stream(2, StreamProfile.SUB)
            assert main.url == "rtsp://127.0.0.1:8554/cam/realmonitor?channel=2&subtype=0"
            assert sub.url == "rtsp://127.0.0.1:8554/cam/realmonitor?channel=2&subtype=1"
            password = r.sim.profile.password
            assert password not in main.url and password not in repr(main)
            assert main.authenticated_url().startswith("rtsp://admin:")
            assert r.sim.requests == [], "stream URIs are built, not asked for"
            with pytest.raises(DeviceUnsupported, match="1-based"):
                await r.adapter.stream(0)

    run(scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_snapshot_is_a_jpeg_of_the_1_based_channel(kind: str) -> None:
    async def scenario() -> None:
        async with rig(PROFILES[kind]()) as r:
            last = r.sim.profile.channels
            picture = await r.adapter.snapshot(last)
            assert picture.startswith(b"\xff\xd8") and picture.endswith(b"\xff\xd9")
            assert f"dahua channel {last}".encode() in picture
            assert r.sim.requests[-1] == f"GET /cgi-bin/snapshot.cgi?channel={last}"
            with pytest.raises(DeviceUnsupported, match="Error"):
                await r.adapter.snapshot(last + 1)  # the device answers Error, with HTTP 200

    run(scenario)


def test_snapshot_checks() -> None:
    body = b"\xff\xd8" + b"x" * 200 + b"\xff\xd9"
    assert jpeg_picture("d", body + b"dhav\x01\x02\x03\x04", "snapshot") == body  # a VTO's trailer
    assert jpeg_picture("d", body + b"\x00\x00", "snapshot") == body
    for broken in (b"<html>busy</html>", body[:-2], body + b"more picture data"):
        with pytest.raises(DeviceProtocolError):
            jpeg_picture("d", broken, "snapshot")


@pytest.mark.parametrize("kind", KINDS)
def test_health(kind: str) -> None:
    async def scenario() -> None:
        profile = PROFILES[kind]()
        profile.clock_skew = timedelta(seconds=30)
        async with rig(profile) as r:
            health = await r.adapter.health()
            assert health.reachable and health.auth_ok and not health.error
            assert health.clock_skew is not None
            assert abs(health.clock_skew - timedelta(seconds=30)) < timedelta(seconds=1.5)
            [disk] = health.storage
            assert disk.status == "ok"
            assert disk.capacity_bytes and disk.free_bytes and disk.free_bytes < disk.capacity_bytes
            r.sim.storage_fault = True
            assert [d.status for d in (await r.adapter.health()).storage] == ["fault"]

    run(scenario)


def test_health_of_a_device_that_went_away() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sim.stop()
            health = await r.adapter.health()
            assert (health.reachable, health.auth_ok) == (False, False)
            assert "cannot connect" in health.error

    run(scenario)
