"""Configuration of a Hikvision device: the `vendor: hikvision` member of the device union."""

from __future__ import annotations

import attrs

from camhub.model import DeviceConfig

__all__ = ["HikvisionConfig"]


@attrs.frozen(kw_only=True)
class HikvisionConfig(DeviceConfig):
    """A Hikvision camera, NVR or DVR, reached through ISAPI (Digest authentication)."""
