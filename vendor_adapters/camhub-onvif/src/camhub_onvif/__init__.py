"""camhub adapter for ONVIF devices; the entry point `onvif` in group `camhub.adapters`."""

from __future__ import annotations

from collections.abc import Callable

from camhub import AdapterSpec, hookimpl
from camhub_onvif.adapter import OnvifAdapter
from camhub_onvif.config import OnvifConfig
from camhub_onvif.discovery import DiscoveredDevice, discover
from camhub_onvif.recordings import ReplaySource

__all__ = [
    "DiscoveredDevice",
    "OnvifAdapter",
    "OnvifConfig",
    "ReplaySource",
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
