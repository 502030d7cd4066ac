"""Configuration of a Dahua device: the `vendor: dahua` member of the device union."""

from __future__ import annotations

import attrs

from camhub.model import DeviceConfig

__all__ = ["DahuaConfig"]


@attrs.frozen(kw_only=True)
class DahuaConfig(DeviceConfig):
    """A Dahua camera, NVR or DVR, reached through its HTTP CGI API (Digest authentication)."""
