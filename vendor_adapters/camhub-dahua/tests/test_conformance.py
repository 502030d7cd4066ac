"""The Dahua adapter passes camhub's conformance kit (R-10.2) against the IPC and NVR simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from dahua_support import adapter_for, ipc, nvr

from camhub.adapter import EventKind
from camhub.devices import ClientPool
from camhub.testing.dahua import DahuaSimulator
from camhub.testing.kit import AdapterConformance, Expectations, KitTarget
from camhub.testing.simulator import DeviceProfile, SimulatedEvent, default_recordings
from camhub_dahua import DahuaAdapter


@asynccontextmanager
async def kit_target(profile: DeviceProfile) -> AsyncIterator[KitTarget]:
    profile.clock_skew = timedelta(seconds=-75)
    async with DahuaSimulator(profile) as sim, ClientPool() as pool:
        client = pool.client()
        sim.recordings = default_recordings(sim, hours=2)
        now = sim.now()

        def make(http: httpx.AsyncClient, password: str) -> DahuaAdapter:
            return adapter_for(sim, http, password)

        def trigger(kind: EventKind, channel: int) -> None:
            sim.emit(SimulatedEvent(kind, True, channel))

        yield KitTarget(
            adapter=make(client, profile.password),
            password=profile.password,
            make_adapter=make,
            expected=Expectations(
                model=profile.model,
                serial=profile.serial,
                firmware=profile.firmware,
                mac=profile.mac,
                channels=profile.channels,
                clock_skew=profile.clock_skew,
                recorded=(now - timedelta(hours=1), now),
            ),
            trigger_event=trigger,
            failed_logins=lambda: sim.failed_logins,
        )


class TestDahuaCameraConformance(AdapterConformance):
    vendor = "dahua"

    @asynccontextmanager
    async def target(self) -> AsyncIterator[KitTarget]:
        async with kit_target(ipc()) as target:
            yield target


class TestDahuaRecorderConformance(AdapterConformance):
    """The same adapter against an NVR (filed separately in the report)."""

    vendor = "dahua-nvr"

    @asynccontextmanager
    async def target(self) -> AsyncIterator[KitTarget]:
        async with kit_target(nvr()) as target:
            yield target
