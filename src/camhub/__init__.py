"""camhub: the surveillance cameras, microphones and recorders of a province, in one system.

The public API of the core library. Start with :func:`load_config` and :class:`PluginHost`::

    from camhub import PluginHost, load_config

    host = PluginHost.from_installed()
    province = load_config("province.yaml", host=host)
    for depth, unit in province.walk():
        print("  " * depth, unit.name, len(province.devices_of(unit.id)))
"""

from __future__ import annotations

from camhub._version import __version__
from camhub.adapter import Capability, DeviceAdapter
from camhub.config import json_schema, load_config, load_config_text
from camhub.errors import (
    CamhubError,
    ConfigError,
    ConfigIssue,
    DeviceAuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
    DeviceUnreachable,
    DeviceUnsupported,
    PluginError,
    SecretError,
)
from camhub.hookspecs import hookimpl
from camhub.log import get_logger
from camhub.model import (
    Article5Point,
    Body,
    Channel,
    ChannelKind,
    Credentials,
    DeviceConfig,
    DeviceKind,
    FilesystemStorageConfig,
    Level,
    Person,
    Position,
    Predecessor,
    ProvinceInfo,
    Retention,
    StorageConfig,
    StorageSettings,
    Unit,
)
from camhub.plugins import AdapterSpec, PluginHost, PluginInfo, StorageBackendSpec
from camhub.province import ProvinceConfig
from camhub.secrets import Secret

__all__ = [
    "AdapterSpec",
    "Article5Point",
    "Body",
    "CamhubError",
    "Capability",
    "Channel",
    "ChannelKind",
    "ConfigError",
    "ConfigIssue",
    "Credentials",
    "DeviceAdapter",
    "DeviceAuthError",
    "DeviceConfig",
    "DeviceError",
    "DeviceKind",
    "DeviceProtocolError",
    "DeviceTimeout",
    "DeviceUnreachable",
    "DeviceUnsupported",
    "FilesystemStorageConfig",
    "Level",
    "Person",
    "PluginError",
    "PluginHost",
    "PluginInfo",
    "Position",
    "Predecessor",
    "ProvinceConfig",
    "ProvinceInfo",
    "Retention",
    "Secret",
    "SecretError",
    "StorageBackendSpec",
    "StorageConfig",
    "StorageSettings",
    "Unit",
    "__version__",
    "get_logger",
    "hookimpl",
    "json_schema",
    "load_config",
    "load_config_text",
]
