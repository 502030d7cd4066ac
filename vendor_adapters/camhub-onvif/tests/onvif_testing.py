"""Shared test helpers: an ONVIF simulator on loopback with an adapter configured for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import httpx

from camhub.devices import ClientPool
from camhub.model import DeviceKind
from camhub.secrets import Secret
from camhub.testing.onvif import OnvifSimulator
from camhub.testing.simulator import DeviceProfile
from camhub_onvif import OnvifAdapter, OnvifConfig

T = TypeVar("T")

PASSWORD = "camhub-sim-1"
RTSP_PORT = 8554

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><x>&lol3;</x></s:Body></s:Envelope>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE s [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><x>&xxe;</x></s:Body></s:Envelope>"""


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one test scenario (pytest-asyncio is not used)."""
    return asyncio.run(coroutine)


def profile(**changes: Any) -> DeviceProfile:
    """A two-channel camera profile, with ``changes``."""
    base = DeviceProfile(
        model="SIM-ONVIF-2",
        serial="SN0042",
        firmware="V5.7.3",
        mac="00-1A-2B-3C-4D-5E",
        channels=2,
        name="Cổng chính",
        password=PASSWORD,
    )
    return attrs.evolve(base, **changes)


def config_for(device: OnvifSimulator, **changes: Any) -> OnvifConfig:
    """The configuration of ``device`` as an integrator would write it."""
    settings: dict[str, Any] = {
        "vendor": "onvif",
        "id": "cam-onvif-1",
        "kind": DeviceKind.CAMERA,
        "host": "127.0.0.1",
        "port": device.port,
        "rtsp_port": RTSP_PORT,
        "credentials": "site",
        "auth": device.auth,
        "timeout": 5.0,
    }
    settings.update(changes)
    return OnvifConfig(**settings)


def make_adapter(
    device: OnvifSimulator, client: httpx.AsyncClient, password: str = PASSWORD, **changes: Any
) -> OnvifAdapter:
    return OnvifAdapter(
        config_for(device, **changes), client, username="admin", password=Secret(password, "$env:PW")
    )


@asynccontextmanager
async def onvif_device(
    *,
    password: str = PASSWORD,
    config: dict[str, Any] | None = None,
    device_profile: DeviceProfile | None = None,
    **simulator: Any,
) -> AsyncIterator[tuple[OnvifSimulator, OnvifAdapter]]:
    """A running simulator and an adapter for it (closed afterwards)."""
    async with OnvifSimulator(
        device_profile or profile(), rtsp_url=f"rtsp://127.0.0.1:{RTSP_PORT}", **simulator
    ) as device:
        assert isinstance(device, OnvifSimulator)
        async with ClientPool() as pool:
            client = pool.client()
            adapter = make_adapter(device, client, password, **(config or {}))
            try:
                yield device, adapter
            finally:
                await adapter.aclose()
