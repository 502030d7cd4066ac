"""Shared test support: a Dahua simulator and an adapter logged in to it, over real loopback HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import httpx

from camhub.adapter import DeviceEvent, EventKind
from camhub.devices import ClientPool
from camhub.model import DeviceKind
from camhub.secrets import Secret
from camhub.testing.dahua import DahuaSimulator
from camhub.testing.simulator import DeviceProfile
from camhub_dahua import DahuaAdapter, DahuaConfig

T = TypeVar("T")

#: Passwords with characters that break naive URL and header handling.
IPC_PASSWORD = "Mật-khẩu:ipc@1/#"
NVR_PASSWORD = "nvr pass%word&2"


def ipc() -> DeviceProfile:
    return DahuaSimulator.ipc_profile(password=IPC_PASSWORD)


def nvr() -> DeviceProfile:
    return DahuaSimulator.nvr_profile(password=NVR_PASSWORD)


PROFILES = {"ipc": ipc, "nvr": nvr}


def config_for(sim: DahuaSimulator, **changes: Any) -> DahuaConfig:
    settings: dict[str, Any] = {
        "vendor": "dahua",
        "id": "dahua-1",
        "kind": DeviceKind.NVR if sim.profile.nvr else DeviceKind.CAMERA,
        "host": "127.0.0.1",
        "port": sim.port,
        "rtsp_port": 8554,
        "credentials": "site",
        "timeout": 2.0,
        "event_heartbeat": 1,
    }
    settings.update(changes)
    return DahuaConfig(**settings)


def adapter_for(
    sim: DahuaSimulator, client: httpx.AsyncClient, password: str | None = None, **changes: Any
) -> DahuaAdapter:
    secret = Secret(sim.profile.password if password is None else password, "$env:DAHUA_TEST_PW")
    return DahuaAdapter(config_for(sim, **changes), client, username=sim.profile.username, password=secret)


@attrs.frozen
class Rig:
    sim: DahuaSimulator
    adapter: DahuaAdapter
    client: httpx.AsyncClient


@asynccontextmanager
async def rig(profile: DeviceProfile | None = None, **changes: Any) -> AsyncIterator[Rig]:
    """A running simulator, an HTTP client and an adapter with the right password."""
    async with DahuaSimulator(profile or ipc()) as sim, ClientPool() as pool:
        client = pool.client()
        adapter = adapter_for(sim, client, **changes)
        try:
            yield Rig(sim, adapter, client)
        finally:
            await adapter.aclose()


def run(scenario: Callable[[], Awaitable[T]], *, limit: float = 20.0) -> T:
    """Run one async scenario to completion (pytest-asyncio is not used)."""

    async def bounded() -> T:
        async with asyncio.timeout(limit):
            return await scenario()

    return asyncio.run(bounded())


async def take_events(
    adapter: DahuaAdapter,
    count: int,
    *,
    started: Callable[[], None] | None = None,
    sim: DahuaSimulator | None = None,
    skip_heartbeats: bool = True,
) -> list[DeviceEvent]:
    """The first ``count`` events (heartbeats skipped unless asked), calling ``started`` once the
    simulator has the stream subscribed."""
    received: list[DeviceEvent] = []

    async def collect() -> None:
        async for event in adapter.events():
            if skip_heartbeats and event.kind is EventKind.HEARTBEAT:
                continue
            received.append(event)
            if len(received) == count:
                return

    task = asyncio.create_task(collect())
    try:
        if sim is not None:
            while sim.subscribers == 0 and not task.done():
                await asyncio.sleep(0.01)
        if started is not None:
            started()
        await asyncio.wait_for(task, 10)
    finally:
        task.cancel()
    return received
