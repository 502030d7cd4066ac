"""Configuration of an ONVIF device: the `vendor: onvif` member of the device union."""

from __future__ import annotations

import attrs

from camhub.model import DeviceConfig, setting

__all__ = ["OnvifConfig"]


@attrs.frozen(kw_only=True)
class OnvifConfig(DeviceConfig):
    """Any ONVIF Profile S/T device (Profile G for recordings), reached over SOAP."""

    device_service: str = setting(
        "Path of the ONVIF device service on the device.", default="/onvif/device_service"
    )
    auth: str = setting(
        "How to authenticate SOAP calls: `ws-security` (UsernameToken), `digest` (HTTP "
        "Digest) or `both` (as many devices require).",
        default="both",
        pattern=r"^(ws-security|digest|both)$",
    )
    timeout: float = setting(
        "Seconds allowed for one SOAP request, answer included (event polls get their wait on top).",
        default=10.0,
        minimum=0.1,
        maximum=300,
    )
