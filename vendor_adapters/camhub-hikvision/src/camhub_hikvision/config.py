"""Configuration of a Hikvision device: the `vendor: hikvision` member of the device union."""

from __future__ import annotations

import enum

import attrs

from camhub.model import DeviceConfig, setting

__all__ = ["HikvisionConfig", "RecordingClock"]


class RecordingClock(enum.Enum):
    """Which clock a device's ContentMgmt search and playback URIs use."""

    #: What ISAPI specifies: times in UTC, written with a trailing ``Z``.
    UTC = "utc"
    #: Some firmware reads and writes them in the device's local time while still writing ``Z``.
    LOCAL = "local"


@attrs.frozen(kw_only=True)
class HikvisionConfig(DeviceConfig):
    """A Hikvision camera, NVR or DVR, reached through ISAPI (Digest authentication)."""

    timeout: float = setting(
        "Seconds one ISAPI request may take, answer included (a device that trickles its "
        "answer times out like one that sends nothing).",
        default=10.0,
        minimum=0.1,
        maximum=300,
    )
    event_idle_timeout: float = setting(
        "Seconds the alert stream may stay silent before it counts as dead. Hikvision devices "
        "send a keep-alive about every 10 s.",
        default=30.0,
        minimum=0.1,
        maximum=600,
    )
    recording_clock: RecordingClock = setting(
        "`utc` (what ISAPI specifies) or `local`, for firmware that searches recordings and "
        "writes playback URIs in its local time despite the trailing `Z`.",
        default=RecordingClock.UTC,
    )
