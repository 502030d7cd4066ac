"""The toy adapter runs the camhub conformance kit against its simulator (R-10.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from toy_simulator import ToySimulator

from camhub.model import DeviceKind
from camhub.secrets import Secret
from camhub.testing.kit import AdapterConformance, Expectations, KitTarget
from camhub.testing.simulator import DeviceProfile
from camhub_toy import ToyAdapter, ToyConfig

PROFILE = DeviceProfile(
    model="TOY-100",
    serial="T0Y0001",
    firmware="1.2.3",
    mac="02:00:00:00:00:01",
    channels=2,
    password="toy-Pässword-9",
    clock_skew=timedelta(seconds=42),
)


class TestToyConformance(AdapterConformance):
    vendor = "toy"

    @asynccontextmanager
    async def target(self) -> AsyncIterator[KitTarget]:
        async with ToySimulator(PROFILE) as sim, httpx.AsyncClient() as client:

            def make(http: httpx.AsyncClient, password: str) -> ToyAdapter:
                config = ToyConfig(
                    id="toy-1",
                    vendor="toy",
                    kind=DeviceKind.CAMERA,
                    host="127.0.0.1",
                    port=sim.port,
                    credentials="kit",
                    api_token=Secret(ToySimulator.token),
                )
                return ToyAdapter(config, http, username=PROFILE.username, password=Secret(password))

            yield KitTarget(
                adapter=make(client, PROFILE.password),
                password=PROFILE.password,
                make_adapter=make,
                expected=Expectations(
                    model="TOY-100",
                    serial="T0Y0001",
                    firmware="1.2.3",
                    mac="02:00:00:00:00:01",
                    channels=2,
                    clock_skew=timedelta(seconds=42),
                ),
                failed_logins=lambda: sim.failed_logins,
            )
