"""Every ONVIF peer capture, parsed directly and, where it is a service answer, served by the simulator.

The two readings must agree: what the parser makes of the bytes is what the adapter reports
when a device sends exactly those bytes over HTTP (with its private addresses rebased onto the
configured host, as for a device behind NAT).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from onvif_testing import RTSP_PORT, onvif_device, run

from camhub.adapter import ChannelInfo, EventKind, StreamProfile
from camhub.errors import DeviceProtocolError, DeviceUnsupported
from camhub.testing.onvif import AGSH_CAPTURES, DAHUA_CAPTURES, load_capture
from camhub.testing.simulator import SimulatedEvent
from camhub_onvif import discover
from camhub_onvif.adapter import parse_device_information
from camhub_onvif.client import parse_capabilities, parse_services, parse_system_date_and_time, rebase
from camhub_onvif.discovery import parse_probe_matches
from camhub_onvif.events import PullPoint, PullPointOptions
from camhub_onvif.media import MediaProfile, channels_of, parse_media_uri, parse_profiles
from camhub_onvif.soap import answer_of, parse_datetime


def answer(name: str, operation: str) -> object:
    return answer_of("capture", operation, 200, load_capture(name))


def test_agsh_system_date_and_time() -> None:
    parsed, zone = parse_system_date_and_time(
        "c", answer_of("c", "GetSystemDateAndTime", 200, load_capture("agsh_GetSystemDateAndTime.xml"))
    )
    assert parsed == datetime(2014, 12, 24, 19, 14, 37, tzinfo=UTC)
    assert zone == "MoroccoStandardTime0"

    async def scenario() -> None:
        async with onvif_device(captures={"GetSystemDateAndTime": "agsh_GetSystemDateAndTime.xml"}) as (
            _,
            adapter,
        ):
            measured = await adapter.time()
            assert (measured.device_time, measured.timezone) == (parsed, zone)
            assert measured.offset.days < -3000  # the device lives in 2014
            # The device's clock is the captured one, so WS-Security still works with the offset.
            assert (await adapter.identity()).serial == "SN0042"

    run(scenario())


def test_agsh_device_information() -> None:
    parsed = parse_device_information(
        answer_of("c", "GetDeviceInformation", 200, load_capture("agsh_GetDeviceInformation.xml"))
    )
    assert (parsed.vendor, parsed.model, parsed.firmware, parsed.serial) == (
        "Mockup Manufacturer",
        "Mockup Model",
        "Mockup_15_14_13",
        "00000000",
    )

    async def scenario() -> None:
        async with onvif_device(captures={"GetDeviceInformation": "agsh_GetDeviceInformation.xml"}) as (
            _,
            adapter,
        ):
            served = await adapter.identity()
            assert (served.vendor, served.model, served.firmware, served.serial) == (
                parsed.vendor,
                parsed.model,
                parsed.firmware,
                parsed.serial,
            )
            assert served.mac == "00:1a:2b:3c:4d:5e"  # from the simulator's GetNetworkInterfaces

    run(scenario())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "agsh_GetCapabilities.xml",
            dict.fromkeys(("device", "events", "media"), "http://192.168.68.111/onvif/services"),
        ),
        (
            "dahua_GetCapabilities_go2rtc.xml",
            {
                "device": "http://192.168.1.123/onvif/device_service",
                "events": "http://192.168.1.123/onvif/event_service",
                "media": "http://192.168.1.123/onvif/media_service",
            },
        ),
    ],
)
def test_capabilities(name: str, expected: dict[str, str]) -> None:
    parsed = parse_capabilities(answer_of("c", "GetCapabilities", 200, load_capture(name)))
    assert parsed == expected

    async def scenario() -> None:
        # A device without GetServices: the adapter falls back to GetCapabilities.
        async with onvif_device(captures={"GetCapabilities": name}, unsupported={"GetServices"}) as (
            device,
            adapter,
        ):
            services = await adapter.onvif.services()
            assert services.events == rebase(parsed["events"], device.url)
            assert services.media == rebase(parsed["media"], device.url)
            assert services.media2 is None and services.search is None
            assert [c.id for c in await adapter.channels()] == [1, 2]  # Media1 through the rebased address

    run(scenario())


def test_agsh_services() -> None:
    parsed = parse_services(answer_of("c", "GetServices", 200, load_capture("agsh_GetServices.xml")))
    assert parsed == dict.fromkeys(("device", "media", "events"), "http://192.168.68.111/onvif/services")

    async def scenario() -> None:
        async with onvif_device(captures={"GetServices": "agsh_GetServices.xml"}) as (device, adapter):
            services = await adapter.onvif.services()
            assert services.media == services.events == f"{device.url}/onvif/services"
            assert services.device == f"{device.url}/onvif/device_service"  # the configured path
            assert services.media2 is None

    run(scenario())


def test_agsh_profiles() -> None:
    parsed = parse_profiles(answer_of("c", "GetProfiles", 200, load_capture("agsh_GetProfiles.xml")))
    assert parsed == [
        MediaProfile(
            token="main",
            name="main",
            source_token="vidsrc0",
            source_config_token="vscfg0",
            source_name="vscfg0",
            width=1920,
            height=1080,
            encoding="H264",
            audio=False,
        )
    ]

    async def scenario() -> None:
        captures = {k: AGSH_CAPTURES[k] for k in ("GetServices", "GetProfiles")}
        async with onvif_device(captures=captures) as (_, adapter):
            assert await adapter.channels() == [ChannelInfo(id=1, name="vscfg0", audio=False)]
            with pytest.raises(DeviceUnsupported, match="no sub stream"):
                await adapter.stream(1, StreamProfile.SUB)

    run(scenario())


@pytest.mark.parametrize(
    ("name", "uri", "served"),
    [
        ("agsh_GetStreamUri.xml", "rtsp://192.168.68.111/h264main", f"rtsp://127.0.0.1:{RTSP_PORT}/h264main"),
        (
            "dahua_GetStreamUri_go2rtc.xml",
            "rtsp://192.168.1.123:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif",
            f"rtsp://127.0.0.1:{RTSP_PORT}/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif",
        ),
    ],
)
def test_stream_uris(name: str, uri: str, served: str) -> None:
    assert parse_media_uri(answer_of("c", "GetStreamUri", 200, load_capture(name))) == uri  # &amp; decoded

    async def scenario() -> None:
        async with onvif_device(captures={"GetStreamUri": name}) as (_, adapter):
            source = await adapter.stream(1)
            assert source.url == served
            assert source.username == "admin"

    run(scenario())


def test_dahua_snapshot_uri() -> None:
    uri = parse_media_uri(
        answer_of("c", "GetSnapshotUri", 200, load_capture("dahua_GetSnapshotUri_go2rtc.xml"))
    )
    assert uri == "http://192.168.1.123/onvifsnapshot/media_service/snapshot?channel=1&subtype=1"

    async def scenario() -> None:
        async with onvif_device(captures=DAHUA_CAPTURES, unsupported={"GetServices"}) as (device, adapter):
            picture = await adapter.snapshot(1)
            assert picture.startswith(b"\xff\xd8\xff")
            assert "GET /onvifsnapshot/media_service/snapshot?channel=1&subtype=1" in device.requests

    run(scenario())


def test_agsh_snapshot_uri_is_not_well_formed() -> None:
    with pytest.raises(DeviceProtocolError, match="unbound prefix"):
        answer_of("c", "GetSnapshotUri", 200, load_capture("agsh_GetSnapshotUri.xml"))

    async def scenario() -> None:
        async with onvif_device(captures={"GetSnapshotUri": "agsh_GetSnapshotUri.xml"}) as (_, adapter):
            with pytest.raises(DeviceProtocolError) as caught:
                await adapter.snapshot(1)
            assert "GetSnapshotUri: the answer is not usable XML: malformed XML: unbound prefix" in str(
                caught.value
            )
            assert caught.value.device_id == "cam-onvif-1"

    run(scenario())


def test_agsh_probe_matches() -> None:
    template = load_capture("agsh_Probe.xml")
    filled = template.replace(b"RELATES_TO", b"urn:uuid:1").replace(
        b"SERVICE_URI", b"http://192.0.2.9/onvif/device_service"
    )
    [found] = parse_probe_matches(filled, "urn:uuid:1")
    assert found.endpoint == "uuid:c9790c3a-701b-464d-a189-0060351c8ada"
    assert found.xaddrs == ("http://192.0.2.9/onvif/device_service",)
    assert (found.name, found.hardware) == ("PREDATOR", "HD_PREDATOR")
    assert found.types == ("dn:NetworkVideoTransmitter", "tds:Device")
    assert parse_probe_matches(filled, "urn:uuid:someone-else") == []  # answers another probe

    async def scenario() -> None:
        async with onvif_device(captures={"Probe": "agsh_Probe.xml"}) as (device, _):
            port = await device.start_discovery()
            [served] = await discover("127.0.0.1", timeout=0.5, multicast=False, port=port)
            assert (served.endpoint, served.name, served.hardware, served.scopes) == (
                found.endpoint,
                found.name,
                found.hardware,
                found.scopes,
            )
            assert served.xaddrs == (device.service_url("device"),)

    run(scenario())


def test_pull_point_without_address_and_with_1970_times() -> None:
    created = answer_of(
        "c",
        "CreatePullPointSubscription",
        200,
        load_capture("zeepasync_CreatePullPointSubscription_missing_address_1970.xml"),
    )
    assert parse_datetime("1970-01-01T00:00:00Z") == datetime(1970, 1, 1, tzinfo=UTC)
    assert created.find(".//{http://www.w3.org/2005/08/addressing}Address") is not None

    async def scenario() -> None:
        captures = {
            "CreatePullPointSubscription": "zeepasync_CreatePullPointSubscription_missing_address_1970.xml"
        }
        async with onvif_device(captures=captures) as (device, adapter):
            services = await adapter.onvif.services()
            assert services.events is not None
            options = PullPointOptions(pull_timeout=__import__("datetime").timedelta(seconds=1))
            pull_point = PullPoint(adapter.onvif, services.events, lambda token: 1, options)
            await pull_point.create()
            assert pull_point.address == services.events  # empty address: the event service itself
            assert pull_point.relative_times_broken  # 1970 == 1970: renew on the fixed period instead
            device.emit(SimulatedEvent(EventKind.MOTION, True, 1))
            events, _ = await pull_point.pull()
            assert [e.kind for e in events] == [EventKind.MOTION]
            await pull_point.close()
            assert device.unsubscribes == 1

    run(scenario())


def test_pull_messages_with_minute_61() -> None:
    pulled = answer_of(
        "c", "PullMessages", 200, load_capture("zeepasync_PullMessages_invalid_TerminationTime_00-61-16.xml")
    )
    assert parse_datetime("2024-08-17T00:61:16Z") is None
    assert pulled.find("{http://www.onvif.org/ver10/events/wsdl}TerminationTime") is not None

    async def scenario() -> None:
        captures = {"PullMessages": "zeepasync_PullMessages_invalid_TerminationTime_00-61-16.xml"}
        async with onvif_device(captures=captures) as (device, adapter):
            adapter.pull_point_options = PullPointOptions(
                pull_timeout=__import__("datetime").timedelta(seconds=1)
            )
            stream = adapter.events()
            first = await asyncio.wait_for(anext(stream), 5)
            assert first.kind is EventKind.HEARTBEAT  # no messages, a broken time: tolerated
            assert first.time == datetime(2024, 8, 17, 0, 56, 16, tzinfo=UTC)  # CurrentTime is valid
            del device.captures["PullMessages"]  # the device recovers; the subscription was kept
            device.emit(SimulatedEvent(EventKind.VIDEO_LOSS, True, 2))
            kinds = []
            while EventKind.VIDEO_LOSS not in kinds:
                kinds.append((await asyncio.wait_for(anext(stream), 5)).kind)
            await stream.aclose()  # type: ignore[attr-defined]
            assert device.unsubscribes == 1

    run(scenario())


def test_every_onvif_capture_is_exercised() -> None:
    from pathlib import Path

    import camhub.testing

    folder = Path(camhub.testing.__file__).parent / "captures" / "onvif"
    exercised = (
        set(AGSH_CAPTURES.values())
        | set(DAHUA_CAPTURES.values())
        | {
            "zeepasync_CreatePullPointSubscription_missing_address_1970.xml",
            "zeepasync_PullMessages_invalid_TerminationTime_00-61-16.xml",
        }
    )
    assert {p.name for p in folder.glob("*.xml")} == exercised
    source = Path(__file__).read_text(encoding="utf-8")
    assert all(
        name in source or any(k in source for k in ("AGSH_CAPTURES", "DAHUA_CAPTURES")) for name in exercised
    )


def test_channels_of_takes_the_largest_picture_as_main() -> None:
    def profile(token: str, source: str, width: int) -> MediaProfile:
        return MediaProfile(
            token=token,
            name=token,
            source_token=source,
            source_config_token="c" + source,
            width=width,
            height=width * 9 // 16,
        )

    channels = channels_of(
        [
            profile("sub1", "A", 640),
            profile("main1", "A", 2560),
            profile("only2", "B", 1280),
            profile("third1", "A", 1280),
        ]
    )
    assert [(c.id, c.source_token, c.main.token, c.sub.token if c.sub else None) for c in channels] == [
        (1, "A", "main1", "third1"),
        (2, "B", "only2", None),
    ]
