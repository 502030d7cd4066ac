"""Shared helpers of the Hikvision tests: a simulator on loopback and an adapter logged in to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import httpx

from camhub.adapter import DeviceEvent
from camhub.devices import ClientPool
from camhub.model import DeviceKind
from camhub.secrets import Secret
from camhub.testing.hikvision import HikvisionSimulator
from camhub.testing.simulator import DeviceProfile
from camhub_hikvision import HikvisionAdapter, HikvisionConfig

T = TypeVar("T")

#: The device password; tests hunt for it in every error, repr and log event.
PASSWORD = "Hik-Sïm-p4ss#7"
#: Seconds any one test scenario may take.
SCENARIO_TIMEOUT = 20.0


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async scenario from a plain (synchronous) pytest test, bounded in time."""

    async def bounded() -> T:
        async with asyncio.timeout(SCENARIO_TIMEOUT):
            return await scenario()

    return asyncio.run(bounded())


def ipc(**changes: Any) -> DeviceProfile:
    return HikvisionSimulator.ipc_profile(password=PASSWORD, **changes)


def nvr(channels: int = 4, **changes: Any) -> DeviceProfile:
    return HikvisionSimulator.nvr_profile(channels, password=PASSWORD, **changes)


def config_for(sim: HikvisionSimulator, **changes: Any) -> HikvisionConfig:
    """The configuration camhub would load for the simulated device."""
    values: dict[str, Any] = {
        "vendor": "hikvision",
        "id": "hik-1",
        "kind": DeviceKind.NVR if sim.profile.nvr else DeviceKind.CAMERA,
        "host": "127.0.0.1",
        "port": sim.port,
        "rtsp_port": 8554,
        "credentials": "site",
        # Generous for a loaded machine; the tests of timeouts set their own, short ones.
        "timeout": 5.0,
        "event_idle_timeout": 10.0,
    }
    values.update(changes)
    return HikvisionConfig(**values)


def adapter_for(
    sim: HikvisionSimulator, client: httpx.AsyncClient, password: str = PASSWORD, **changes: Any
) -> HikvisionAdapter:
    return HikvisionAdapter(
        config_for(sim, **changes), client, username=sim.profile.username, password=Secret(password)
    )


@attrs.frozen
class Rig:
    """A running simulator, an HTTP client and an adapter logged in to the simulator."""

    sim: HikvisionSimulator
    client: httpx.AsyncClient
    adapter: HikvisionAdapter


@asynccontextmanager
async def rig(
    profile: DeviceProfile | None = None,
    *,
    heartbeat_interval: float = 10.0,
    search_page_size: int = 40,
    **config: Any,
) -> AsyncIterator[Rig]:
    sim = HikvisionSimulator(
        profile or ipc(), heartbeat_interval=heartbeat_interval, search_page_size=search_page_size
    )
    async with sim, ClientPool() as pool:
        client = pool.client()
        adapter = adapter_for(sim, client, **config)
        try:
            yield Rig(sim, client, adapter)
        finally:
            await adapter.aclose()


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def collect(
    events: AsyncIterator[DeviceEvent],
    count: int,
    *,
    keep: Callable[[DeviceEvent], bool] = lambda e: True,
) -> list[DeviceEvent]:
    """The first ``count`` events that ``keep`` accepts; the stream is closed afterwards."""
    received: list[DeviceEvent] = []
    try:
        async for event in events:
            if keep(event):
                received.append(event)
            if len(received) == count:
                break
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
    return received


async def events_while(
    r: Rig, count: int, action: Callable[[], None], keep: Callable[[DeviceEvent], bool] = lambda e: True
) -> list[DeviceEvent]:
    """Open the alert stream, run ``action`` once it is open, and collect ``count`` events."""
    task = asyncio.create_task(collect(r.adapter.events(), count, keep=keep))
    await wait_until(lambda: r.sim.alert_streams >= 1 or task.done())
    action()
    return await task
