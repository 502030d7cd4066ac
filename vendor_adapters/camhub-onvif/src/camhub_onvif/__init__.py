"""camhub adapter for ONVIF devices; the entry point `onvif` in group `camhub.adapters`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from camhub import AdapterSpec, hookimpl
from camhub.adapter import DiscoveredDevice as FoundDevice
from camhub_onvif.adapter import OnvifAdapter
from camhub_onvif.config import OnvifConfig
from camhub_onvif.discovery import DiscoveredDevice, discover
from camhub_onvif.recordings import ReplaySource

__all__ = [
    "DiscoveredDevice",
    "OnvifAdapter",
    "OnvifConfig",
    "ReplaySource",
    "camhub_discover_devices",
    "camhub_register_adapters",
    "discover",
]


@hookimpl
def camhub_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    """Register the `onvif` adapter and its device configuration."""
    register(
        AdapterSpec(
            vendor="onvif",
            config_type=OnvifConfig,
            adapter_type=OnvifAdapter,
            description="ONVIF Profile S/T/G (SOAP, WS-Security or HTTP Digest)",
        )
    )


@hookimpl
def camhub_discover_devices(interface: str, timeout: float) -> list[FoundDevice]:
    """WS-Discovery from ``interface``: multicast on a network interface; on a loopback address
    (where multicast goes nowhere) a directed probe to that address."""
    loopback = interface.startswith("127.")
    found = asyncio.run(discover(interface, timeout, multicast=not loopback))
    return [
        FoundDevice(
            address=device.sender,
            protocol="ws-discovery",
            vendor="onvif",
            urls=device.xaddrs,
            scopes=device.scopes,
            name=device.name,
            model=device.hardware,
        )
        for device in found
    ]
