"""The Hikvision adapter passes camhub's conformance kit against the simulated camera and NVR (R-10.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

import httpx
from hik_harness import PASSWORD, adapter_for, ipc, nvr

from camhub.adapter import EventKind
from camhub.devices import ClientPool
from camhub.testing.hikvision import HikvisionSimulator
from camhub.testing.kit import AdapterConformance, Expectations, KitTarget
from camhub.testing.simulator import DeviceProfile, SimulatedEvent, default_recordings
from camhub_hikvision import HikvisionAdapter


@asynccontextmanager
async def kit_target(profile: DeviceProfile) -> AsyncIterator[KitTarget]:
    async with HikvisionSimulator(profile, heartbeat_interval=1.0) as sim, ClientPool() as pool:
        client = pool.client()
        sim.recordings = default_recordings(sim, hours=2, span_minutes=30)
        now = sim.now()

        def make(http: httpx.AsyncClient, password: str) -> HikvisionAdapter:
            return adapter_for(sim, http, password)

        def trigger(kind: EventKind, channel: int) -> None:
            sim.emit(SimulatedEvent(kind, True, channel))

        yield KitTarget(
            adapter=make(client, PASSWORD),
            password=PASSWORD,
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


class TestHikvisionCameraConformance(AdapterConformance):
    vendor = "hikvision"

    def target(self) -> AbstractAsyncContextManager[KitTarget]:
        return kit_target(ipc(clock_skew=timedelta(seconds=-75)))


class TestHikvisionNVRConformance(AdapterConformance):
    vendor = "hikvision-nvr"

    def target(self) -> AbstractAsyncContextManager[KitTarget]:
        return kit_target(nvr(4, clock_skew=timedelta(minutes=3)))
