"""``camhub.devices.ClientPool``: one shared client, a small connection pool per device, kept alive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web

from camhub.devices import ClientPool, DevicePoolTransport
from camhub.model import DeviceConfig, DeviceKind


@asynccontextmanager
async def device(keepalive: float = 75.0) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A loopback HTTP device: ``/port`` answers the client's source port (which connection),
    ``/hold`` sends its headers and then holds the answer open until the event is set; it
    closes connections idle for ``keepalive`` seconds."""
    release = asyncio.Event()

    async def port(request: web.Request) -> web.Response:
        return web.Response(text=str(request.transport.get_extra_info("peername")[1]))  # type: ignore[union-attr]

    async def hold(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await release.wait()
        await response.write_eof()
        return response

    async def cookie(request: web.Request) -> web.Response:
        response = web.Response(text=request.headers.get("Cookie", ""))
        response.set_cookie("session", "device-secret")
        return response

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for number in range(64):
            await response.write(bytes([number]) * 65536)
        await response.write_eof()
        return response

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_get("/port", port)
    app.router.add_get("/hold", hold)
    app.router.add_get("/cookie", cookie)
    app.router.add_get("/big", big)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=0.1, keepalive_timeout=keepalive
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", release
    finally:
        release.set()
        await runner.cleanup()


def config(number: int, *, https: bool = False, verify_tls: bool = True) -> DeviceConfig:
    return DeviceConfig(
        vendor="toy",
        id=f"dev-{number}",
        kind=DeviceKind.CAMERA,
        host="127.0.0.1",
        port=8000 + number,
        credentials="site",
        https=https,
        verify_tls=verify_tls,
    )


def test_devices_share_one_client_and_each_gets_its_own_pool() -> None:
    async def scenario() -> None:
        async with ClientPool() as pool, device() as (first, _), device() as (second, _):
            client = pool.client_for(config(1))
            assert pool.client_for(config(2)) is client
            assert pool.client_for(config(3, https=True, verify_tls=False)) is not client
            transport = client._transport
            assert isinstance(transport, DevicePoolTransport)
            for url in (first, second, first):
                assert (await client.get(f"{url}/port")).status_code == 200
            assert transport.devices == 2

    asyncio.run(scenario())


def test_a_busy_device_does_not_hold_back_another() -> None:
    async def scenario() -> None:
        async with (
            ClientPool(connections_per_device=1) as pool,
            device() as (busy, release),
            device() as (
                other,
                _,
            ),
        ):
            client = pool.client_for(config(1))
            async with client.stream("GET", f"{busy}/hold"):  # the busy device's one connection
                assert (await client.get(f"{other}/port", timeout=5.0)).status_code == 200
                with pytest.raises(httpx.PoolTimeout):
                    await client.get(f"{busy}/port", timeout=httpx.Timeout(5.0, pool=0.3))
                release.set()
            assert (await client.get(f"{busy}/port", timeout=5.0)).status_code == 200

    asyncio.run(scenario())


@pytest.mark.parametrize(("keepalive", "reused"), [(60.0, True), (0.1, False)])
def test_idle_connections_are_kept_for_the_next_sweep(keepalive: float, reused: bool) -> None:
    async def scenario() -> None:
        async with ClientPool(keepalive_expiry=keepalive) as pool, device() as (url, _):
            client = pool.client_for(config(1))
            before = (await client.get(f"{url}/port")).text
            await asyncio.sleep(0.5)  # a pause between sweeps, longer than the short expiry
            after = (await client.get(f"{url}/port")).text
            assert (before == after) is reused

    asyncio.run(scenario())


def test_idle_connections_the_device_closed_are_replaced() -> None:
    async def scenario() -> None:
        async with ClientPool() as pool, device(keepalive=0.2) as (url, _):
            client = pool.client_for(config(1))
            before = (await client.get(f"{url}/port")).text
            await asyncio.sleep(0.6)  # the device closes idle connections after 0.2 s
            after = (await client.get(f"{url}/port")).text
            assert before != after

    asyncio.run(scenario())


def test_answers_are_whole_and_read_at_the_readers_pace() -> None:
    async def scenario() -> None:
        async with ClientPool() as pool, device() as (url, _):
            client = pool.client_for(config(1))
            body = bytes(range(256)) * 1024
            assert (await client.post(f"{url}/echo", content=body)).content == body
            received = bytearray()
            async with client.stream("GET", f"{url}/big") as response:
                async for chunk in response.aiter_raw():
                    received += chunk
                    await asyncio.sleep(0)  # a slow reader: the socket is paused, nothing is lost
            assert received == b"".join(bytes([number]) * 65536 for number in range(64))

    asyncio.run(scenario())


def test_connection_errors_and_timeouts_are_httpx_errors() -> None:
    async def scenario() -> None:
        async with ClientPool() as pool, device() as (url, _):
            client = pool.client_for(config(1))
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"{url}/hold", timeout=httpx.Timeout(5.0, read=0.2))
        async with ClientPool() as pool:
            with pytest.raises(httpx.ConnectError):
                await pool.client_for(config(1)).get(url)  # the device is gone

    asyncio.run(scenario())


def test_the_shared_client_collects_no_cookies() -> None:
    async def scenario() -> None:
        async with ClientPool() as pool, device() as (first, _), device() as (second, _):
            client = pool.client_for(config(1))
            assert (await client.get(f"{first}/cookie")).text == ""
            # A cookie one device sets never reaches another (cookies ignore ports) nor itself.
            assert (await client.get(f"{second}/cookie")).text == ""
            assert not client.cookies
            client.cookies.set("chosen", "1")  # set on purpose: sent
            assert (await client.get(f"{first}/cookie")).text == "chosen=1"

    asyncio.run(scenario())
