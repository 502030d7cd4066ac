"""Opening adapters for configured devices: the one place a device's credentials are handed over.

:func:`open_adapter` builds the adapter the device's ``vendor`` names, with its account from the
province's ``credentials`` and an HTTP client from a :class:`ClientPool`. The pool shares
connection pools between devices (one client per TLS-verification setting) and ignores proxy
environment variables: devices sit on site networks, and a proxy must never see their traffic
or credentials by accident.
"""

from __future__ import annotations

import httpx

from camhub.adapter import DeviceAdapter
from camhub.errors import CamhubError, PluginError
from camhub.model import DeviceConfig
from camhub.plugins import PluginHost
from camhub.province import ProvinceConfig

__all__ = ["ClientPool", "open_adapter"]


class ClientPool:
    """HTTP clients for devices, shared by many adapters; close it when done (``async with``).

    :param max_connections: the most connections open at once across all devices.
    :param timeout: default seconds per request (adapters bound whole requests themselves).
    """

    def __init__(self, *, max_connections: int = 512, timeout: float = 10.0) -> None:
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._timeout = timeout
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def client_for(self, device: DeviceConfig) -> httpx.AsyncClient:
        """The client to reach ``device`` with (TLS verification as the device is configured)."""
        verify = device.verify_tls or not device.https
        client = self._clients.get(verify)
        if client is None:
            client = httpx.AsyncClient(
                verify=verify,
                trust_env=False,
                limits=self._limits,
                timeout=self._timeout,
                follow_redirects=False,
            )
            self._clients[verify] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def open_adapter(
    province: ProvinceConfig, device_id: str, host: PluginHost, pool: ClientPool
) -> DeviceAdapter:
    """The adapter for a configured device, logged in with its configured account.

    :raises CamhubError: when the device is not in the configuration.
    :raises PluginError: when no installed adapter serves its vendor.
    """
    try:
        device = province.device(device_id)
    except KeyError:
        raise CamhubError(f"no device {device_id!r} in the configuration") from None
    spec = host.adapters.get(device.vendor)
    if spec is None:
        raise PluginError(f"device {device_id}: no installed adapter for vendor {device.vendor!r}")
    account = province.credentials[device.credentials]
    return spec.adapter_type(
        device, pool.client_for(device), username=account.username, password=account.password
    )
