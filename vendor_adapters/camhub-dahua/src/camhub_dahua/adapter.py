"""The Dahua device adapter."""

from __future__ import annotations

from camhub.adapter import DeviceAdapter

__all__ = ["DahuaAdapter"]


class DahuaAdapter(DeviceAdapter):
    """Talks to Dahua devices (CGI over HTTP(S) with Digest authentication).

    No capability is declared yet: camhub validates and inventories these devices, and the
    conformance kit will test each capability as it is declared.
    """
