"""The ONVIF device adapter."""

from __future__ import annotations

from camhub.adapter import DeviceAdapter

__all__ = ["OnvifAdapter"]


class OnvifAdapter(DeviceAdapter):
    """Talks to ONVIF devices (Profile S/T/G: SOAP with WS-Security or HTTP Digest).

    No capability is declared yet: camhub validates and inventories these devices, and the
    conformance kit will test each capability as it is declared.
    """
