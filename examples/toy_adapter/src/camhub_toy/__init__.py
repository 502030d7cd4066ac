"""A toy camhub adapter: how a provider adds a vendor (``vendor: toy`` in the YAML).

Three pieces make an adapter: a configuration class (the device's own YAML keys, on top of
:class:`camhub.DeviceConfig`), an adapter class (a :class:`camhub.DeviceAdapter` declaring its
capabilities), and a ``camhub_register_adapters`` hook implementation that registers both.
The distribution's entry point in group ``camhub.adapters`` is named ``toy``, like its vendor.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from camhub import AdapterSpec, DeviceAdapter, DeviceConfig, Secret, hookimpl
from camhub.model import setting

__all__ = ["ToyAdapter", "ToyConfig", "camhub_register_adapters"]


@attrs.frozen(kw_only=True)
class ToyConfig(DeviceConfig):
    """A toy device: the common device keys plus an API token."""

    api_token: Secret = setting("Token for the toy API: `{$env: NAME}` or `{$file: path}`.")


class ToyAdapter(DeviceAdapter):
    """Talks to toy devices. It declares no capability, so camhub asks nothing of it."""


@hookimpl
def camhub_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    """Register the toy vendor."""
    register(
        AdapterSpec(
            vendor="toy",
            config_type=ToyConfig,
            adapter_type=ToyAdapter,
            description="toy devices (an example)",
        )
    )
