"""A hostile or broken device gets a clear camhub error, in time, in bounded memory, with no secret shown.

Each case runs the real adapter against the simulator (or a handler it serves in place of an
endpoint) over loopback HTTP with Digest authentication.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
import structlog
from aiohttp import web
from hik_harness import PASSWORD, adapter_for, events_while, ipc, nvr, rig, run

from camhub.adapter import EventKind
from camhub.devices import ClientPool
from camhub.errors import (
    DeviceAuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
    DeviceUnsupported,
)
from camhub.model import DeviceConfig, DeviceKind
from camhub.secrets import Secret
from camhub.testing.simulator import SimulatedEvent
from camhub_hikvision import HikvisionAdapter

DEVICE_INFO = "/ISAPI/System/deviceInfo"
MB = 1024 * 1024


def assert_no_secret(*things: object) -> None:
    for thing in things:
        assert PASSWORD not in repr(thing) and PASSWORD not in str(thing)


# -- credentials -------------------------------------------------------------------------------
def test_wrong_password_is_tried_once_and_never_shown() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            wrong = adapter_for(r.sim, r.client, password="not-" + PASSWORD)
            with structlog.testing.capture_logs() as logs:
                with pytest.raises(DeviceAuthError) as caught:
                    await wrong.identity()
                assert r.sim.failed_logins == 1
                # Nothing afterwards reaches the device: a retrying client would lock the account.
                sent = len(r.sim.requests)
                for call in (wrong.identity(), wrong.time(), wrong.channels(), wrong.snapshot(1)):
                    with pytest.raises(DeviceAuthError, match="not retried"):
                        await call
                with pytest.raises(DeviceAuthError):
                    await anext(wrong.events())
                health = await wrong.health()
                assert (health.auth_ok, r.sim.failed_logins, len(r.sim.requests)) == (False, 1, sent)
            assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
                "hikvision.credentials_refused"
            ]
            assert_no_secret(caught.value, caught.value.args, wrong, wrong.isapi, logs, health)
            assert "not-" + PASSWORD not in repr(logs) + str(caught.value)
            # The right password on another adapter still works: the device did not lock.
            assert (await r.adapter.identity()).serial == r.sim.profile.serial

    run(scenario)


def test_a_locked_account_is_an_auth_error_too() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            r.sim.faults.lockout_after = 0  # locked before camhub ever logs in
            with pytest.raises(DeviceAuthError):
                await r.adapter.identity()

    run(scenario)


def test_a_permission_refusal_is_an_auth_error_but_not_a_credentials_lock() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            refusal = (
                b'<ResponseStatus version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">'
                b"<statusCode>4</statusCode><statusString>Invalid Operation</statusString>"
                b"<subStatusCode>lowPrivilege</subStatusCode></ResponseStatus>"
            )
            r.sim.override_body("/ISAPI/ContentMgmt/Storage", refusal, status=403)
            with pytest.raises(DeviceAuthError, match="lacks the permission"):
                await r.adapter.isapi.get_xml("/ISAPI/ContentMgmt/Storage", "storage")
            assert (await r.adapter.identity()).model == r.sim.profile.model  # still logged in

    run(scenario)


def test_secrets_never_reach_repr_errors_or_logs() -> None:
    async def scenario() -> None:
        async with rig(nvr(2)) as r:
            with structlog.testing.capture_logs() as logs:
                results: list[Any] = [
                    await r.adapter.identity(),
                    await r.adapter.time(),
                    await r.adapter.channels(),
                    await r.adapter.stream(1),
                    await r.adapter.health(),
                ]
                r.sim.unsupported.add("/ISAPI/Streaming/channels/101/picture")
                r.sim.unsupported.add("/ISAPI/ContentMgmt/StreamingProxy/channels/101/picture")
                with pytest.raises(DeviceUnsupported) as caught:
                    await r.adapter.snapshot(1)
            assert_no_secret(r.adapter, r.adapter.config, r.adapter.isapi, caught.value, logs, *results)

    run(scenario)


# -- hostile documents ---------------------------------------------------------------------------
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<DeviceInfo xmlns="http://www.hikvision.com/ver20/XMLSchema"><model>&lol9;</model></DeviceInfo>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE DeviceInfo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<DeviceInfo xmlns="http://www.hikvision.com/ver20/XMLSchema"><model>&xxe;</model></DeviceInfo>"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<DeviceInfo><model>DS-2CD</model>", "malformed XML"),
        (b"\x00\xff garbage", "malformed XML"),
        (b"", "malformed XML"),
        (BILLION_LAUGHS, "refused XML"),
        (EXTERNAL_ENTITY, "refused XML"),
        (b"<Time><localTime>2024-01-01T00:00:00Z</localTime></Time>", "expected a <DeviceInfo> document"),
    ],
    ids=["truncated", "binary", "empty", "billion-laughs", "external-entity", "wrong-document"],
)
def test_hostile_or_broken_documents_are_protocol_errors(body: bytes, message: str) -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            r.sim.override_body(DEVICE_INFO, body)
            tracemalloc.start()
            started = time.monotonic()
            try:
                with pytest.raises(DeviceProtocolError, match=message) as caught:
                    await r.adapter.identity()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert time.monotonic() - started < 2.0
            assert peak < 8 * MB
            assert "root:" not in str(caught.value)  # no file content leaked through an entity
            # The same rules hold through health(), which reports instead of raising.
            health = await r.adapter.health()
            assert health.reachable and message in health.error

    run(scenario)


def test_a_200_refusal_and_a_403_not_supported_are_unsupported() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            r.sim.unsupported.add("/ISAPI/Event/triggers")
            with pytest.raises(
                DeviceUnsupported, match=r"GET /ISAPI/Event/triggers: not supported .*notSupport"
            ):
                await r.adapter.event_triggers()
            with pytest.raises(DeviceUnsupported, match="notSupport"):
                await r.adapter.isapi.get_xml("/ISAPI/Nonexistent/endpoint", "Anything")
            refusal = (
                b'<ResponseStatus xmlns="http://www.hikvision.com/ver20/XMLSchema"><statusCode>4</statusCode>'
                b"<subStatusCode>notSupport</subStatusCode></ResponseStatus>"
            )
            r.sim.override_body("/ISAPI/System/time", refusal, status=200)
            with pytest.raises(DeviceUnsupported):
                await r.adapter.time()

    run(scenario)


def test_a_server_error_is_a_protocol_error() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            r.sim.faults.status = 503
            with pytest.raises(DeviceProtocolError, match="HTTP 503"):
                await r.adapter.identity()

    run(scenario)


def test_a_snapshot_that_is_not_a_jpeg_is_a_protocol_error() -> None:
    async def scenario() -> None:
        async with rig(ipc()) as r:
            r.sim.override_body(
                "/ISAPI/Streaming/channels/101/picture", b"<html>login</html>", content_type="text/html"
            )
            with pytest.raises(DeviceProtocolError, match=r"not a JPEG \(text/html"):
                await r.adapter.snapshot(1)

    run(scenario)


# -- oversized and slow answers -------------------------------------------------------------------
def huge_answer(declare_length: bool, sent: list[int]) -> Any:
    """A handler streaming 100 MB (never held in memory) and counting what it could send."""
    chunk = b"<" + b"a" * (64 * 1024 - 1)
    total = 100 * MB

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        if declare_length:
            response.content_length = total
        await response.prepare(request)
        try:
            while sent[0] < total:
                await response.write(chunk)
                sent[0] += len(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # camhub hung up, as it should
        return response

    return answer


@pytest.mark.parametrize("declare_length", [False, True], ids=["streamed", "content-length"])
def test_a_100_mb_answer_is_cut_at_the_limit(declare_length: bool) -> None:
    async def scenario() -> None:
        sent = [0]
        async with rig(ipc(), timeout=5.0) as r:
            r.sim.overrides[DEVICE_INFO] = huge_answer(declare_length, sent)
            tracemalloc.start()
            started = time.monotonic()
            try:
                with pytest.raises(DeviceProtocolError, match="exceeds the limit") as caught:
                    await r.adapter.identity()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert time.monotonic() - started < 5.0
            assert peak < 24 * MB, f"peak {peak / MB:.1f} MB while refusing a 100 MB answer"
            # camhub stopped reading near the 4 MB limit; the server could not push 100 MB.
            assert sent[0] < 40 * MB
            assert_no_secret(caught.value)

    run(scenario)


def test_a_device_sending_one_byte_a_second_times_out() -> None:
    async def scenario() -> None:
        async with rig(ipc(), timeout=0.5) as r:
            r.sim.faults.trickle_bytes_per_second = 1
            started = time.monotonic()
            with pytest.raises(DeviceTimeout, match=r"within 0\.5 s"):
                await r.adapter.identity()
            assert time.monotonic() - started < 1.5
            assert r.sim.failed_logins == 0

    run(scenario)


def test_a_silent_alert_stream_times_out() -> None:
    async def scenario() -> None:
        async with rig(ipc(), heartbeat_interval=60, event_idle_timeout=0.3) as r:
            started = time.monotonic()
            with pytest.raises(DeviceTimeout, match=r"no alert or keep-alive for 0\.3 s"):
                await events_while(r, 1, lambda: None)
            assert time.monotonic() - started < 2.0

    run(scenario)


@pytest.mark.parametrize("recorder", [False, True], ids=["ipc", "nvr"])
def test_a_truncated_alert_stream_is_a_protocol_error(recorder: bool) -> None:
    async def scenario() -> None:
        async with rig(nvr(2) if recorder else ipc(), heartbeat_interval=60) as r:
            first = r.sim.render_alert(SimulatedEvent(EventKind.MOTION, True, 1))
            part_size = len(first) + 100  # the part's headers and framing are under 100 bytes
            r.sim.faults.drop_stream_after_bytes = part_size + 150  # inside the second part
            received: list[Any] = []

            def emit_two() -> None:
                r.sim.emit(SimulatedEvent(EventKind.MOTION, True, 1))
                r.sim.emit(SimulatedEvent(EventKind.TAMPER, True, 1))

            def keep(event: Any) -> bool:
                received.append(event)
                return True

            with pytest.raises(DeviceProtocolError) as caught:
                await events_while(r, 2, emit_two, keep=keep)
            assert [e.kind for e in received] == [EventKind.MOTION]  # what arrived whole was delivered
            assert isinstance(caught.value, DeviceError) and caught.value.device_id == "hik-1"

    run(scenario)


def test_adapter_for_a_plain_device_config() -> None:
    # camhub may hand the adapter the base DeviceConfig: the Hikvision defaults apply.
    config = DeviceConfig(vendor="hikvision", id="d", kind=DeviceKind.CAMERA, host="h", credentials="c")

    async def scenario() -> None:
        async with ClientPool() as pool:
            client = pool.client()
            adapter = HikvisionAdapter(config, client, username="u", password=Secret(PASSWORD))
            assert (adapter.settings.timeout, adapter.settings.event_idle_timeout) == (10.0, 30.0)
            assert_no_secret(adapter, adapter.isapi)

    run(scenario)
