"""A hostile or broken peer gets a clear camhub error, in time and in bounded memory; discovery too.

The hostile answers come from tiny aiohttp apps on loopback (the adapter's first request, the
unauthenticated GetSystemDateAndTime, is what they answer), or from the simulator's faults.
"""

from __future__ import annotations

import asyncio
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from onvif_testing import BILLION_LAUGHS, EXTERNAL_ENTITY, PASSWORD, make_adapter, onvif_device, profile, run

from camhub.devices import ClientPool
from camhub.errors import DeviceError, DeviceProtocolError, DeviceTimeout
from camhub.model import DeviceKind
from camhub.secrets import Secret
from camhub.testing.onvif import OnvifSimulator
from camhub_onvif import OnvifAdapter, OnvifConfig, discover

MB = 1024 * 1024


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def hostile(handler: Handler) -> AsyncIterator[OnvifAdapter]:
    """An adapter whose device answers the device service with ``handler``."""
    app = web.Application()
    app.router.add_post("/onvif/device_service", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    config = OnvifConfig(
        vendor="onvif",
        id="hostile",
        kind=DeviceKind.CAMERA,
        host="127.0.0.1",
        port=port,
        credentials="site",
        timeout=3.0,
    )
    try:
        async with ClientPool() as pool:
            client = pool.client()
            yield OnvifAdapter(config, client, username="admin", password=Secret(PASSWORD))
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "payload", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"]
)
def test_entity_tricks_are_refused(payload: bytes) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="application/soap+xml")

    async def scenario() -> None:
        async with hostile(answer) as adapter:
            with pytest.raises(DeviceProtocolError, match="refused XML") as caught:
                await adapter.time()
            assert caught.value.device_id == "hostile"

    run(scenario())


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_a_100_mb_answer_is_stopped_at_the_limit_without_being_held(declared: bool) -> None:
    chunk = b"<x>" + b"A" * (256 * 1024 - 7) + b"</x>"
    sent = {"bytes": 0}

    async def flood(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/soap+xml"})
        if declared:
            response.content_length = 100 * MB
        await response.prepare(request)
        try:
            for _ in range(100 * MB // len(chunk)):
                await response.write(chunk)
                sent["bytes"] += len(chunk)
        except (ConnectionResetError, ConnectionError):
            pass  # the client hung up, as it should
        return response

    async def scenario() -> None:
        async with hostile(flood) as adapter:
            tracemalloc.start()
            started = time.monotonic()
            try:
                with pytest.raises(DeviceProtocolError, match="exceeds the limit"):
                    await adapter.time()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert time.monotonic() - started < 3
            assert peak < 16 * MB, f"{peak / MB:.1f} MB held for a 100 MB answer"
            await asyncio.sleep(0.1)
            assert sent["bytes"] < 40 * MB  # the server was cut off long before 100 MB

    run(scenario())


def test_one_byte_a_second_times_out_within_the_timeout() -> None:
    async def scenario() -> None:
        async with onvif_device(config={"timeout": 1.0}) as (device, adapter):
            device.faults.trickle_bytes_per_second = 1
            started = time.monotonic()
            with pytest.raises(DeviceTimeout) as caught:
                await adapter.time()
            assert time.monotonic() - started < 2.0
            assert "within 1 s" in str(caught.value)

    run(scenario())


class LoginPageSnapshots(OnvifSimulator):
    """A device whose snapshot URL answers with its web login page (seen on real cameras)."""

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_get("/cgi-bin/login.html", self._login_page)

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>login</html>" * 20, content_type="text/html")

    async def _get_snapshot_uri(self, request: web.Request, body: object) -> str:
        return (
            "<trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>http://192.168.1.2/cgi-bin/login.html</tt:Uri>"
            "</trt:MediaUri></trt:GetSnapshotUriResponse>"
        )


def test_a_snapshot_that_is_not_a_jpeg() -> None:
    async def scenario() -> None:
        async with LoginPageSnapshots(profile(), media2=False) as device, ClientPool() as pool:
            client = pool.client()
            assert isinstance(device, OnvifSimulator)
            with pytest.raises(DeviceProtocolError, match="not a JPEG"):
                await make_adapter(device, client).snapshot(1)

    run(scenario())


# -- WS-Discovery ---------------------------------------------------------------------------------
class Rogue(asyncio.DatagramProtocol):
    """Answers every probe with hostile datagrams: garbage, an entity bomb, a stranger's match."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        for answer in (b"\x00\xffnot xml", BILLION_LAUGHS, EXTERNAL_ENTITY, _stranger()):
            self.transport.sendto(answer, addr)  # type: ignore[attr-defined]


def _stranger() -> bytes:
    from camhub.testing.onvif import load_capture

    capture = load_capture("agsh_Probe.xml")
    return capture.replace(b"RELATES_TO", b"urn:uuid:not-your-probe").replace(
        b"SERVICE_URI", b"http://192.0.2.66/"
    )


def test_discovery_finds_the_simulator_among_hostile_answers() -> None:
    async def scenario() -> None:
        async with onvif_device() as (device, _):
            port = await device.start_discovery()
            found = await discover("127.0.0.1", timeout=0.5, multicast=False, port=port)
            assert [(d.xaddrs, d.name, d.hardware, d.sender) for d in found] == [
                ((device.service_url("device"),), "Cổng chính", "SIM-ONVIF-2", "127.0.0.1")
            ]
            assert "onvif://www.onvif.org/Profile/G" in found[0].scopes

            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(Rogue, local_addr=("127.0.0.1", 0))
            try:
                rogue_port = transport.get_extra_info("sockname")[1]
                assert await discover("127.0.0.1", timeout=0.3, multicast=False, port=rogue_port) == []
            finally:
                transport.close()

    run(scenario())


def test_discovery_from_an_address_that_is_not_ours() -> None:
    async def scenario() -> None:
        with pytest.raises(DeviceError, match=r"cannot probe from 192\.0\.2\.1"):
            await discover("192.0.2.1", timeout=0.1)

    run(scenario())


def test_discovery_answers_are_collected_from_the_socket_it_sent_from() -> None:
    """A directed probe to a port where nothing listens finds nothing and does not fail."""

    async def scenario() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        assert await discover("127.0.0.1", timeout=0.2, multicast=False, port=port) == []

    run(scenario())
