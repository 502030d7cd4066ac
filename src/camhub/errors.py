"""The one exception hierarchy of camhub: every component and every adapter raises these.

Adapters translate vendor, SOAP and HTTP failures into the device branch, so callers can
handle any vendor with the same ``except`` clauses::

    CamhubError
    ├── ConfigError                  the YAML configuration is invalid (carries every issue)
    ├── SecretError                  a {$env: …} / {$file: …} reference cannot be resolved
    ├── PluginError                  a plugin could not be loaded or registered
    ├── StorageError                 a store refused or failed (in :mod:`camhub.storage`:
    │                                locked, not found, digest mismatch, unavailable, …)
    └── DeviceError                  talking to one device failed (names the device)
        ├── DeviceUnreachable        connection refused, DNS, network down
        ├── DeviceTimeout            no answer within the timeout (also: a stalled stream)
        ├── DeviceAuthError          credentials refused or account locked (never retried)
        ├── DeviceUnsupported        the device or adapter does not offer this capability
        └── DeviceProtocolError      the device answered something camhub cannot understand

No message of any of these ever contains a secret: they are built from identifiers, never from
credentials or URLs with userinfo.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

__all__ = [
    "CamhubError",
    "ConfigError",
    "ConfigIssue",
    "DeviceAuthError",
    "DeviceError",
    "DeviceProtocolError",
    "DeviceTimeout",
    "DeviceUnreachable",
    "DeviceUnsupported",
    "PluginError",
    "SecretError",
]


class CamhubError(Exception):
    """Base class of every error camhub raises on purpose."""


@attrs.frozen(order=True)
class ConfigIssue:
    """One problem in a configuration file, located by file, line and JSON path.

    ``line`` is 1-based (0 when the problem is the file itself); ``path`` is a JSONPath-like location such as
    ``$.units[3].devices[0].port``.
    """

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}"


class ConfigError(CamhubError):
    """The configuration is invalid; ``issues`` lists every problem found, in file order."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(sorted(issues))
        super().__init__("\n".join(str(issue) for issue in self.issues))


class SecretError(CamhubError):
    """A secret reference could not be resolved (the message names the reference, never a value)."""


class PluginError(CamhubError):
    """A plugin failed to load, or registered something invalid."""


class DeviceError(CamhubError):
    """Talking to a device failed. ``device_id`` names the device from the configuration."""

    def __init__(self, device_id: str, message: str) -> None:
        self.device_id = device_id
        self.detail = message
        super().__init__(f"device {device_id}: {message}")


class DeviceUnreachable(DeviceError):
    """The device could not be reached (connection refused, no route, name not resolved)."""


class DeviceTimeout(DeviceError):
    """The device did not answer, or stopped sending, within the timeout."""


class DeviceAuthError(DeviceError):
    """The device refused the credentials or locked the account; camhub never retries these."""


class DeviceUnsupported(DeviceError):
    """The device or its adapter does not offer the requested capability."""


class DeviceProtocolError(DeviceError):
    """The device answered with something that is not valid for its protocol."""
