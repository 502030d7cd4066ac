"""The ONVIF adapter passes camhub's conformance kit against the simulated camera and NVR (R-10.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from onvif_testing import PASSWORD, RTSP_PORT, make_adapter, profile

from camhub.adapter import EventKind
from camhub.devices import ClientPool
from camhub.testing.kit import AdapterConformance, Expectations, KitTarget
from camhub.testing.onvif import OnvifSimulator
from camhub.testing.simulator import DeviceProfile, SimulatedEvent, default_recordings
from camhub_onvif import OnvifAdapter
from camhub_onvif.events import PullPointOptions


@asynccontextmanager
async def kit_target(device_profile: DeviceProfile, **simulator: Any) -> AsyncIterator[KitTarget]:
    async with (
        OnvifSimulator(device_profile, rtsp_url=f"rtsp://127.0.0.1:{RTSP_PORT}", **simulator) as sim,
        ClientPool() as pool,
    ):
        client = pool.client()
        assert isinstance(sim, OnvifSimulator)
        sim.recordings = default_recordings(sim, hours=2, span_minutes=30)
        now = sim.now()

        def make(http: httpx.AsyncClient, password: str) -> OnvifAdapter:
            adapter = make_adapter(sim, http, password)
            adapter.pull_point_options = PullPointOptions(pull_timeout=timedelta(seconds=1))
            return adapter

        def trigger(kind: EventKind, channel: int) -> None:
            sim.emit(SimulatedEvent(kind, True, channel))

        yield KitTarget(
            adapter=make(client, PASSWORD),
            password=PASSWORD,
            make_adapter=make,
            expected=Expectations(
                model=device_profile.model,
                serial=device_profile.serial,
                firmware=device_profile.firmware,
                mac="00:1a:2b:3c:4d:5e",
                channels=device_profile.channels,
                clock_skew=device_profile.clock_skew,
                recorded=(now - timedelta(hours=1), now),
            ),
            trigger_event=trigger,
            failed_logins=lambda: sim.failed_logins,
            events_ready=lambda: bool(sim.pull_points),
        )


class TestOnvifCameraConformance(AdapterConformance):
    """A camera that wants WS-Security and HTTP Digest, its clock 75 s behind."""

    vendor = "onvif"

    def target(self) -> AbstractAsyncContextManager[KitTarget]:
        return kit_target(profile(channels=1, clock_skew=timedelta(seconds=-75)), auth="both")


class TestOnvifNVRConformance(AdapterConformance):
    """A four-channel NVR with WS-Security only, Media1 only, its clock three minutes ahead."""

    vendor = "onvif-nvr"

    def target(self) -> AbstractAsyncContextManager[KitTarget]:
        nvr = profile(channels=4, nvr=True, audio=False, clock_skew=timedelta(minutes=3))
        return kit_target(nvr, auth="ws-security", media2=False)
