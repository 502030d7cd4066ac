"""camhub adapter for Hikvision devices; the entry point `hikvision` in group `camhub.adapters`."""

from __future__ import annotations

from collections.abc import Callable

from camhub import AdapterSpec, hookimpl
from camhub_hikvision.adapter import HikvisionAdapter
from camhub_hikvision.config import HikvisionConfig, RecordingClock
from camhub_hikvision.events import EventTrigger

__all__ = [
    "EventTrigger",
    "HikvisionAdapter",
    "HikvisionConfig",
    "RecordingClock",
    "camhub_register_adapters",
]


@hookimpl
def camhub_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    """Register the `hikvision` adapter and its device configuration."""
    register(
        AdapterSpec(
            vendor="hikvision",
            config_type=HikvisionConfig,
            adapter_type=HikvisionAdapter,
            description="ISAPI over HTTP(S) with Digest authentication",
        )
    )
