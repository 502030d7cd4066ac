"""Recurring health sweeps, and WS-Security tokens that arrive late on a congested link."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import structlog
from onvif_testing import PASSWORD, RTSP_PORT, make_adapter, profile, run

from camhub.devices import DevicePoolTransport
from camhub.errors import DeviceAuthError, DeviceTimeout
from camhub.testing.onvif import OnvifSimulator
from camhub_onvif import OnvifAdapter
from camhub_onvif.client import STALE_TOKEN_AFTER


class Wire(httpx.AsyncBaseTransport):
    """camhub's transport, noting each SOAP operation sent; it can hold one request back, as a
    congested link or a long wait for a connection would, before the request leaves."""

    def __init__(self) -> None:
        self.inner = DevicePoolTransport(verify=True, connections_per_device=4, keepalive_expiry=60.0)
        self.operations: list[str] = []
        #: Seconds the next request carrying a WS-Security token is held back (once).
        self.hold_next_token = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        action = request.headers.get("content-type", "").partition('action="')[2].rstrip('"')
        self.operations.append(action.rsplit("/", 1)[-1])
        if self.hold_next_token and b"UsernameToken" in request.content:
            held, self.hold_next_token = self.hold_next_token, 0.0
            await asyncio.sleep(held)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def wired(
    password: str = PASSWORD, config: dict[str, Any] | None = None, **simulator: Any
) -> AsyncIterator[tuple[OnvifSimulator, OnvifAdapter, Wire]]:
    async with OnvifSimulator(profile(), rtsp_url=f"rtsp://127.0.0.1:{RTSP_PORT}", **simulator) as device:
        assert isinstance(device, OnvifSimulator)
        wire = Wire()
        async with httpx.AsyncClient(transport=wire, trust_env=False) as client:
            adapter = make_adapter(device, client, password, **(config or {}))
            try:
                yield device, adapter, wire
            finally:
                await adapter.aclose()


async def sweep(adapter: OnvifAdapter) -> None:
    await adapter.time()
    await adapter.identity()
    await adapter.channels()


@pytest.mark.parametrize("auth", ["ws-security", "both"])
def test_a_second_sweep_asks_the_clock_and_the_profiles_only(auth: str) -> None:
    async def scenario() -> None:
        async with wired(auth=auth) as (device, adapter, wire):
            await sweep(adapter)
            assert {"GetDeviceInformation", "GetNetworkInterfaces", "GetScopes", "GetServices"} <= set(
                wire.operations
            )
            first = len(wire.operations)
            await sweep(adapter)
            # The clock (unauthenticated) and the profiles, which prove the credentials still work.
            assert wire.operations[first:] == ["GetSystemDateAndTime", "GetProfiles"]
            assert (await adapter.identity()).serial == device.profile.serial

    run(scenario())


def test_a_device_that_was_away_is_asked_its_identity_again() -> None:
    async def scenario() -> None:
        async with wired(config={"timeout": 0.5}) as (device, adapter, _):
            await sweep(adapter)
            device.faults.delay = 1.0
            with pytest.raises(DeviceTimeout):
                await adapter.time()
            device.faults.delay = 0.0
            device.profile.serial = "REPLACED0001"  # the camera was swapped meanwhile
            assert (await adapter.identity()).serial == "REPLACED0001"

    run(scenario())


def test_a_token_that_arrived_too_old_after_a_long_wait_is_sent_again_fresh() -> None:
    async def scenario() -> None:
        # The window is wider than the error of the measured offset (whole seconds on the wire).
        window = timedelta(seconds=1.5)
        async with wired(auth="ws-security", wsse_window=window) as (device, adapter, wire):
            await adapter.time()
            wire.hold_next_token = STALE_TOKEN_AFTER + 1.0  # older than the device's window on arrival
            with structlog.testing.capture_logs() as logs:
                assert (await adapter.identity()).serial == device.profile.serial
            assert device.failed_logins == 1  # the stale token; the fresh one was let in
            assert any(entry["event"] == "onvif.token_retried" and entry["slow"] for entry in logs)
            assert len(await adapter.channels()) == 2  # the credentials are still in use

    run(scenario())


def test_a_wrong_password_after_a_long_wait_costs_two_attempts_and_no_more() -> None:
    async def scenario() -> None:
        async with wired("wr0ng-Passw0rd!", auth="ws-security") as (device, adapter, wire):
            await adapter.time()
            wire.hold_next_token = STALE_TOKEN_AFTER + 0.5
            with pytest.raises(DeviceAuthError):
                await adapter.identity()
            assert device.failed_logins == 2  # the slow refusal earned exactly one fresh try
            sent = len(wire.operations)
            for _ in range(3):
                with pytest.raises(DeviceAuthError, match="not sent again"):
                    await adapter.channels()
            assert len(wire.operations) == sent and device.failed_logins == 2

    run(scenario())
