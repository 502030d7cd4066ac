"""camhub adapter for Dahua devices; the entry point `dahua` in group `camhub.adapters`."""

from __future__ import annotations

from collections.abc import Callable

from camhub import AdapterSpec, hookimpl
from camhub_dahua.adapter import DahuaAdapter
from camhub_dahua.config import DahuaConfig

__all__ = ["DahuaAdapter", "DahuaConfig", "camhub_register_adapters"]


@hookimpl
def camhub_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    """Register the `dahua` adapter and its device configuration."""
    register(
        AdapterSpec(
            vendor="dahua",
            config_type=DahuaConfig,
            adapter_type=DahuaAdapter,
            description="CGI over HTTP(S) with Digest authentication",
        )
    )
