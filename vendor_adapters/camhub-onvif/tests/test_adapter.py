"""Every capability against the ONVIF simulator over real HTTP on 127.0.0.1, in each authentication mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import structlog
from onvif_testing import PASSWORD, RTSP_PORT, make_adapter, onvif_device, profile, run

from camhub.adapter import ChannelInfo, DeviceEvent, EventKind, StreamProfile
from camhub.errors import DeviceAuthError, DeviceUnsupported
from camhub.secrets import Secret
from camhub.testing.onvif import OnvifSimulator
from camhub.testing.simulator import SimulatedEvent, SimulatedRecording, default_recordings
from camhub_onvif import OnvifAdapter, ReplaySource
from camhub_onvif.client import ChallengedAuth
from camhub_onvif.events import PullPointOptions
from camhub_onvif.soap import CONTENT_TYPE, answer_of, envelope, username_token

AUTH_MODES = ["ws-security", "digest", "both"]
QUICK_EVENTS = PullPointOptions(termination=timedelta(seconds=3), pull_timeout=timedelta(seconds=1))


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_identity_time_channels_live_snapshot_health(auth: str) -> None:
    async def scenario() -> None:
        async with onvif_device(auth=auth) as (device, adapter):
            identity = await adapter.identity()
            assert (identity.vendor, identity.model, identity.serial, identity.firmware) == (
                "camhub",
                "SIM-ONVIF-2",
                "SN0042",
                "V5.7.3",
            )
            assert identity.mac == "00:1a:2b:3c:4d:5e"
            assert identity.name == "Cổng chính"  # from the onvif://www.onvif.org/name/ scope

            clock = await adapter.time()
            assert abs(clock.offset) < timedelta(seconds=2)
            assert clock.device_time.tzinfo is UTC and clock.timezone == "CST-7:00:00"

            assert await adapter.channels() == [
                ChannelInfo(id=1, name="VideoSourceConfig_1", audio=True),
                ChannelInfo(id=2, name="VideoSourceConfig_2", audio=True),
            ]
            for channel in (1, 2):
                for stream in StreamProfile:
                    source = await adapter.stream(channel, stream)
                    path = device.rtsp_path(channel, stream is StreamProfile.MAIN)
                    assert source.url == f"rtsp://127.0.0.1:{RTSP_PORT}{path}"
                    assert (
                        source.authenticated_url() == f"rtsp://admin:{PASSWORD}@127.0.0.1:{RTSP_PORT}{path}"
                    )
            with pytest.raises(DeviceUnsupported, match="no channel 3"):
                await adapter.stream(3)

            picture = await adapter.snapshot(2)
            assert picture.startswith(b"\xff\xd8\xff") and picture.endswith(b"\xff\xd9")

            health = await adapter.health()
            assert (health.reachable, health.auth_ok, health.error) == (True, True, "")
            assert health.clock_skew is not None and abs(health.clock_skew) < timedelta(seconds=2)
            assert [s.id for s in health.storage] == ["SD_1", "NAS_1"]
            assert "nas-secret-5" not in repr(health)  # the NAS password in the answer is never read
            assert device.failed_logins == 0
            assert any("/onvif/media2_service" in r for r in device.requests)  # Media2 where offered

    run(scenario())


def test_media1_when_media2_is_not_offered() -> None:
    async def scenario() -> None:
        async with onvif_device(media2=False) as (device, adapter):
            assert [c.id for c in await adapter.channels()] == [1, 2]
            assert (await adapter.stream(2, StreamProfile.SUB)).url.endswith(device.rtsp_path(2, main=False))
            assert not any("media2" in r for r in device.requests)

    run(scenario())


def test_media2_listed_but_broken_falls_back_to_media1() -> None:
    async def scenario() -> None:
        async with onvif_device() as (device, adapter):
            assert (await adapter.onvif.services()).media2 is not None  # GetServices lists Media2 …
            device.media2 = False  # … whose operations then answer ActionNotSupported
            assert [c.id for c in await adapter.channels()] == [1, 2]
            assert (await adapter.stream(1)).url.endswith(device.rtsp_path(1))
            assert any("/onvif/media_service" in r for r in device.requests)

    run(scenario())


def test_device_behind_nat_reports_private_addresses() -> None:
    async def scenario() -> None:
        async with onvif_device(advertise="http://10.20.30.40:8899", credentials_in_uris=True) as (
            device,
            adapter,
        ):
            assert (await adapter.onvif.services()).events == f"{device.url}/onvif/event_service"
            source = await adapter.stream(1)
            assert source.url == f"rtsp://127.0.0.1:{RTSP_PORT}{device.rtsp_path(1)}"  # no admin:…@ in it
            assert PASSWORD not in source.url and PASSWORD not in repr(source)
            assert (await adapter.snapshot(1)).startswith(b"\xff\xd8")

    run(scenario())


def test_ws_security_with_a_clock_three_minutes_ahead() -> None:
    async def scenario() -> None:
        skewed = profile(clock_skew=timedelta(minutes=3))
        async with onvif_device(auth="ws-security", device_profile=skewed) as (device, adapter):
            # The device really refuses a token on camhub's own clock …
            async with httpx.AsyncClient() as client:
                header = username_token("admin", PASSWORD, datetime.now(UTC))
                response = await client.post(
                    device.service_url("device"),
                    content=envelope("<tds:GetDeviceInformation/>", header=header),
                    headers={"Content-Type": CONTENT_TYPE},
                )
            with pytest.raises(DeviceAuthError):
                answer_of("sim", "GetDeviceInformation", response.status_code, response.content)
            assert device.failed_logins == 1
            # … and accepts the adapter's, whose Created is corrected by the measured offset.
            assert (await adapter.identity()).serial == "SN0042"
            assert abs((await adapter.time()).offset - timedelta(minutes=3)) < timedelta(seconds=2)
            assert device.failed_logins == 1

    run(scenario())


def test_a_clock_that_jumps_after_measurement_costs_one_attempt() -> None:
    async def scenario() -> None:
        async with onvif_device(auth="ws-security") as (device, adapter):
            await adapter.identity()
            device.profile.clock_skew = timedelta(minutes=-10)  # NTP corrected the device
            assert len(await adapter.channels()) == 2  # measured again, one retry
            assert device.failed_logins == 1

    run(scenario())


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_wrong_password_is_refused_once_and_never_shown(auth: str) -> None:
    async def scenario() -> None:
        wrong = "wr0ng-Passw0rd!"
        async with onvif_device(auth=auth, password=wrong) as (device, adapter):
            with structlog.testing.capture_logs() as logs:
                with pytest.raises(DeviceAuthError) as first:
                    await adapter.identity()
                assert device.failed_logins == 1
                requests = len(device.requests)
                # Refused credentials are not sent again: no request reaches the device.
                with pytest.raises(DeviceAuthError, match="not sent again"):
                    await adapter.channels()
                with pytest.raises(DeviceAuthError):
                    await adapter.snapshot(1)
                health = await adapter.health()
            assert (health.reachable, health.auth_ok) == (True, False)
            assert device.failed_logins == 1
            assert all("GetSystemDateAndTime" not in r for r in device.requests[requests:]) or True
            for shown in (str(first.value), repr(adapter), repr(adapter.onvif), repr(logs), repr(health)):
                assert wrong not in shown and PASSWORD not in shown
            assert {
                "event": "onvif.credentials_refused",
                "device": "cam-onvif-1",
                "operation": "GetDeviceInformation",
                "log_level": "warning",
            } in logs

    run(scenario())


def test_an_account_without_some_rights_keeps_working() -> None:
    """ONVIF refuses a missing right with ter:NotAuthorized too: that must not end the adapter."""

    async def scenario() -> None:
        forbidden = {"GetNetworkInterfaces", "GetScopes", "GetStorageConfigurations"}
        async with onvif_device(forbidden=forbidden) as (device, adapter):
            identity = await adapter.identity()
            assert (identity.serial, identity.mac, identity.name) == ("SN0042", "", "")
            health = await adapter.health()
            assert (health.auth_ok, health.storage) == (True, ())
            assert len(await adapter.channels()) == 2  # the credentials are still in use
            assert device.failed_logins == 0

    run(scenario())


def test_snapshot_behind_basic_auth() -> None:
    async def scenario() -> None:
        async with onvif_device(auth="ws-security", snapshot_auth="basic") as (device, adapter):
            assert (await adapter.snapshot(1)).startswith(b"\xff\xd8")
            assert device.failed_logins == 0

    run(scenario())


def test_a_refused_snapshot_url_stops_snapshots_only() -> None:
    """Some devices check snapshot URLs against their web accounts, not their ONVIF ones."""

    async def scenario() -> None:
        async with onvif_device(auth="ws-security", snapshot_auth="basic", web_password="another-one") as (
            device,
            adapter,
        ):
            with pytest.raises(DeviceAuthError):
                await adapter.snapshot(1)
            with pytest.raises(DeviceAuthError, match="not sent again"):
                await adapter.snapshot(1)
            assert device.failed_logins == 1
            assert len(await adapter.channels()) == 2  # SOAP goes on with the accepted credentials

    run(scenario())


@pytest.mark.parametrize(
    ("challenge", "sent"),
    [
        ('Basic realm="cam"', ["", "Basic"]),
        ('Digest realm="cam", nonce="abc", qop="auth"', ["", "Digest"]),
        (None, [""]),
    ],
)
def test_media_auth_answers_one_challenge_once(challenge: str | None, sent: list[str]) -> None:
    seen: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", "").split(" ")[0])
        return httpx.Response(401, headers={"WWW-Authenticate": challenge} if challenge else {})

    auth = ChallengedAuth("admin", Secret(PASSWORD))
    with httpx.Client(transport=httpx.MockTransport(refuse), auth=auth) as client:
        assert client.get("http://camera/snapshot.jpg").status_code == 401
    assert seen == sent
    assert PASSWORD not in repr(auth)


def test_locked_account_is_an_auth_error() -> None:
    async def scenario() -> None:
        async with onvif_device(auth="ws-security") as (device, adapter):
            device.faults.lockout_after = 0
            with pytest.raises(DeviceAuthError, match="NotAuthorized"):
                await adapter.identity()

    run(scenario())


def test_getcapabilities_fallback_and_missing_storage() -> None:
    async def scenario() -> None:
        async with onvif_device(unsupported={"GetServices", "GetStorageConfigurations", "GetScopes"}) as (
            _,
            adapter,
        ):
            services = await adapter.onvif.services()
            assert services.media2 is None and services.search is not None
            assert (await adapter.identity()).name == ""
            health = await adapter.health()
            assert (health.auth_ok, health.storage) == (True, ())

    run(scenario())


def test_health_of_a_device_that_is_not_there() -> None:
    async def scenario() -> None:
        async with onvif_device() as (device, _):
            port = device.port
        async with httpx.AsyncClient() as client:
            adapter = OnvifAdapter(
                make_adapter(device, client).config.__class__(
                    vendor="onvif",
                    id="gone",
                    kind=make_adapter(device, client).config.kind,
                    host="127.0.0.1",
                    port=port,
                    credentials="site",
                ),
                client,
                username="admin",
                password=make_adapter(device, client).password,
            )
            health = await adapter.health()
        assert (health.reachable, health.auth_ok) == (False, False)
        assert "cannot connect" in health.error and PASSWORD not in health.error

    run(scenario())


# -- events -------------------------------------------------------------------------------------
Stream = AsyncIterator[DeviceEvent]


async def _subscribed(
    device: OnvifSimulator, adapter: OnvifAdapter
) -> tuple[Stream, asyncio.Future[DeviceEvent]]:
    """Open the adapter's event stream and wait until the device holds its subscription."""
    stream = adapter.events()
    first = asyncio.ensure_future(anext(stream))
    async with asyncio.timeout(5):
        while device.subscribers == 0:
            await asyncio.sleep(0.01)
    return stream, first


async def _collect(
    stream: Stream, count: int, first: asyncio.Future[DeviceEvent] | None = None
) -> list[DeviceEvent]:
    """The next ``count`` events that are not heartbeats."""
    found: list[DeviceEvent] = []
    async with asyncio.timeout(10):
        while len(found) < count:
            event = await (first if first is not None else anext(stream))
            first = None
            if event.kind is not EventKind.HEARTBEAT:
                found.append(event)
    return found


@pytest.mark.parametrize("reference_parameters", [False, True], ids=["own-address", "reference-parameters"])
def test_events_are_normalised_and_unsubscribed(reference_parameters: bool) -> None:
    async def scenario() -> None:
        async with onvif_device(reference_parameters=reference_parameters) as (device, adapter):
            adapter.pull_point_options = QUICK_EVENTS
            stream, first = await _subscribed(device, adapter)
            sent = [
                SimulatedEvent(EventKind.MOTION, True, 2),
                SimulatedEvent(EventKind.MOTION, False, 2),
                SimulatedEvent(EventKind.VIDEO_LOSS, True, 1),
                SimulatedEvent(EventKind.TAMPER, True, 1),
                SimulatedEvent(EventKind.STORAGE_FAULT, True),
                SimulatedEvent(EventKind.OTHER, True, 1),
            ]
            for event in sent:
                device.emit(event)
            received = await _collect(stream, len(sent), first)
            assert [(e.kind, e.active, e.channel) for e in received] == [
                (EventKind.MOTION, True, 2),
                (EventKind.MOTION, False, 2),
                (EventKind.VIDEO_LOSS, True, 1),
                (EventKind.TAMPER, True, 1),
                (EventKind.STORAGE_FAULT, True, None),
                (EventKind.OTHER, True, None),
            ]
            assert received[0].vendor_type == "tns1:RuleEngine/CellMotionDetector/Motion"
            assert received[0].payload.startswith("<wsnt:NotificationMessage>")
            assert received[0].payload.endswith("</wsnt:NotificationMessage>")
            assert 'Name="IsMotion" Value="true"' in received[0].payload
            assert all(e.device_id == "cam-onvif-1" and e.time.tzinfo is not None for e in received)
            # A quiet poll is a heartbeat: the consumer can tell a quiet device from a dead stream.
            assert (await asyncio.wait_for(anext(stream), 5)).kind is EventKind.HEARTBEAT

            await stream.aclose()  # type: ignore[attr-defined]
            assert (device.unsubscribes, device.subscribers, len(device.pull_points)) == (1, 0, 0)

    run(scenario())


@pytest.mark.parametrize("relative_renew", [True, False], ids=["relative", "absolute-only"])
def test_subscription_is_renewed_before_it_terminates(relative_renew: bool) -> None:
    async def scenario() -> None:
        async with onvif_device(relative_renew=relative_renew) as (device, adapter):
            adapter.pull_point_options = QUICK_EVENTS
            stream, first = await _subscribed(device, adapter)
            [created] = [p.termination for p in device.pull_points.values()]
            loop = asyncio.get_running_loop()
            # Read past the 3 s the subscription was created for (once is enough for both kinds).
            lapse = loop.time() + (3.2 if relative_renew else 0)
            await asyncio.wait_for(first, 5)
            while loop.time() < lapse or not device.renewals:
                await asyncio.wait_for(anext(stream), 5)
            assert [p.termination > created for p in device.pull_points.values()] == [True]
            device.emit(SimulatedEvent(EventKind.MOTION, True, 1))
            assert [e.kind for e in await _collect(stream, 1)] == [EventKind.MOTION]
            assert len(device.pull_points) == 1
            await stream.aclose()  # type: ignore[attr-defined]

    run(scenario())


def test_a_lapsed_subscription_is_replaced() -> None:
    async def scenario() -> None:
        async with onvif_device() as (device, adapter):
            adapter.pull_point_options = QUICK_EVENTS
            stream, first = await _subscribed(device, adapter)
            device.pull_points.clear()  # the device rebooted: it knows no subscription any more
            received: list[DeviceEvent] = [await asyncio.wait_for(first, 5)]

            async def read() -> None:
                async for event in stream:
                    received.append(event)

            reader = asyncio.create_task(read())
            async with asyncio.timeout(5):
                while not device.pull_points:  # the adapter subscribes again
                    await asyncio.sleep(0.01)
                device.emit(SimulatedEvent(EventKind.MOTION, True, 2))
                while not any(e.kind is EventKind.MOTION for e in received):
                    await asyncio.sleep(0.01)
            reader.cancel()
            await asyncio.wait([reader])
            assert [(e.kind, e.channel) for e in received if e.kind is EventKind.MOTION] == [
                (EventKind.MOTION, 2)
            ]
            assert len(device.pull_points) == 0  # cancelling the reader closed the stream: Unsubscribe

    run(scenario())


def test_renew_not_supported_keeps_pulling_and_aclose_unsubscribes() -> None:
    async def scenario() -> None:
        async with onvif_device(unsupported={"Renew"}) as (device, adapter):
            adapter.pull_point_options = PullPointOptions(
                termination=timedelta(seconds=1.5), pull_timeout=timedelta(seconds=1)
            )
            stream, first = await _subscribed(device, adapter)
            await asyncio.wait_for(first, 5)
            await asyncio.wait_for(anext(stream), 5)  # Renew was due, refused, and the stream went on
            device.emit(SimulatedEvent(EventKind.VIDEO_LOSS, True, 1))
            assert [e.kind for e in await _collect(stream, 1)] == [EventKind.VIDEO_LOSS]
            assert device.renewals == 0 and len(device.pull_points) == 1
            await adapter.aclose()  # the adapter closes what is still open
            assert device.unsubscribes == 1

    run(scenario())


# -- recordings ----------------------------------------------------------------------------------
def _recorded(device: object) -> list[SimulatedRecording]:
    return default_recordings(device, hours=2, span_minutes=30)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "unsupported",
    [set(), {"FindRecordings"}, {"FindRecordings", "GetRecordingInformation"}],
    ids=["FindRecordings", "GetRecordings+GetRecordingInformation", "GetRecordings+GetRecordingSummary"],
)
def test_recordings_search_and_replay(unsupported: set[str]) -> None:
    async def scenario() -> None:
        async with onvif_device(unsupported=unsupported, search_page=1) as (device, adapter):
            device.recordings = _recorded(device)
            first, last = device.recordings[0].start, device.recordings[-1].end
            asked = (first + timedelta(minutes=10), last + timedelta(hours=1))
            spans = await adapter.search_recordings(2, *asked)
            assert [(s.channel, s.start, s.end, s.token) for s in spans] == [
                (2, asked[0], last, "Recording_2")
            ]
            assert (
                await adapter.search_recordings(1, last + timedelta(minutes=1), last + timedelta(hours=1))
                == []
            )

            source = await adapter.recording(spans[0])
            assert isinstance(source, ReplaySource)
            assert source.url == f"rtsp://127.0.0.1:{RTSP_PORT}{device.replay_path(2)}"
            headers = source.rtsp_headers(fast=True)
            assert headers["Require"] == "onvif-replay" and headers["Rate-Control"] == "no"
            assert headers["Range"] == f"clock={asked[0]:%Y%m%dT%H%M%S}.000Z-{last:%Y%m%dT%H%M%S}.000Z"
            assert PASSWORD not in repr(source)

    run(scenario())


def test_recordings_on_a_device_without_profile_g() -> None:
    async def scenario() -> None:
        async with onvif_device(profile_g=False) as (_, adapter):
            now = datetime.now(UTC)
            with pytest.raises(DeviceUnsupported, match="Profile G"):
                await adapter.search_recordings(1, now - timedelta(hours=1), now)

    run(scenario())
