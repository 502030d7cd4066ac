"""The DeviceAdapter contract: how camhub talks to one vendor's cameras and recorders (R-3.2).

An adapter declares the capabilities it offers; camhub only calls what is declared, and the
conformance kit fails an adapter whose declared capability does not work. An adapter is made
for one device, with its configuration and an ``httpx.AsyncClient`` that camhub owns and
injects (so tests fake the network at the transport, and one client's connection pool is
shared by many devices). Every failure is raised as a :mod:`camhub.errors` device error.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import httpx

    from camhub.model import DeviceConfig
    from camhub.secrets import Secret

__all__ = ["Capability", "DeviceAdapter"]


class Capability(enum.Enum):
    """What an adapter can do with a device (DESIGN §3)."""

    IDENTITY = "identity"
    TIME = "time"
    CHANNELS = "channels"
    LIVE = "live"
    SNAPSHOT = "snapshot"
    EVENTS = "events"
    RECORDINGS = "recordings"
    HEALTH = "health"


class DeviceAdapter:
    """Base class of device adapters; subclasses set :attr:`capabilities` and implement them.

    :param config: the device's validated configuration (the adapter's own ``config_type``).
    :param client: the HTTP client to use for every request to the device.
    :param username: the account camhub logs in with.
    :param password: its password, to be revealed only into the authentication of a request.
    """

    #: The capabilities this adapter offers; the conformance kit tests exactly these.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(
        self, config: DeviceConfig, client: httpx.AsyncClient, *, username: str, password: Secret
    ) -> None:
        self.config = config
        self.client = client
        self.username = username
        self.password = password

    def __repr__(self) -> str:
        return f"<{type(self).__name__} device={self.config.id!r} host={self.config.host!r}>"
