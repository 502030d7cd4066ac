"""Configuration of a Dahua device: the `vendor: dahua` member of the device union."""

from __future__ import annotations

import attrs

from camhub.model import DeviceConfig, setting

__all__ = ["DahuaConfig"]


@attrs.frozen(kw_only=True)
class DahuaConfig(DeviceConfig):
    """A Dahua camera, NVR or DVR, reached through its HTTP CGI API (Digest authentication)."""

    timeout: float = setting(
        "Seconds one request to the device may take, its whole answer included.",
        default=10.0,
        minimum=0.1,
        maximum=300,
    )
    event_heartbeat: int = setting(
        "Seconds between the keep-alive parts the device is asked to send on its event stream; "
        "a stream silent for three of them is treated as stalled and reopened.",
        default=5,
        minimum=1,
        maximum=60,
    )
