"""Opening adapters for configured devices: the one place a device's credentials are handed over.

:func:`open_adapter` builds the adapter the device's ``vendor`` names, with its account from the
province's ``credentials`` and an HTTP client from a :class:`ClientPool`. The pool gives every
adapter the same ``httpx.AsyncClient`` (one per TLS-verification setting) and, under it, one small
connection pool per device; it ignores proxy environment variables: devices sit on site
networks, and a proxy must never see their traffic or credentials by accident.
"""

from __future__ import annotations

import ssl

import httpx

from camhub.adapter import DeviceAdapter
from camhub.errors import CamhubError, PluginError
from camhub.model import DeviceConfig
from camhub.plugins import PluginHost
from camhub.province import ProvinceConfig

__all__ = ["ClientPool", "DevicePoolTransport", "open_adapter"]


class DevicePoolTransport(httpx.AsyncBaseTransport):
    """An httpx transport with one small connection pool per device (scheme, host and port).

    httpcore's pool walks all its connections on every request start and end, so one pool
    holding a connection per device costs O(devices²) per request and collapses at a thousand
    devices. Here each device's pool holds at most ``connections_per_device`` connections; it is
    made on the device's first request (a few microseconds) and shares one TLS context.

    :param verify: check device certificates (False for devices with self-signed ones).
    :param connections_per_device: connections open at once to one device (an event stream, a
        download and the health checks side by side); more requests wait for one.
    :param keepalive_expiry: seconds an idle connection is kept for the next request. Longer
        than a health sweep's interval, so that recurring sweeps reuse their connections; a
        connection the device has closed meanwhile is noticed and replaced before use.
    """

    def __init__(self, *, verify: bool, connections_per_device: int, keepalive_expiry: float) -> None:
        self._context: ssl.SSLContext = httpx.create_ssl_context(verify=verify)
        self._limits = httpx.Limits(
            max_connections=connections_per_device,
            max_keepalive_connections=connections_per_device,
            keepalive_expiry=keepalive_expiry,
        )
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}

    @property
    def devices(self) -> int:
        """How many device pools have been made (one per scheme, host and port reached)."""
        return len(self._pools)

    def pool_for(self, scheme: bytes, host: bytes, port: int | None) -> httpx.AsyncHTTPTransport:
        """The connection pool of the device at ``scheme://host:port``, made on first use."""
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = httpx.AsyncHTTPTransport(verify=self._context, trust_env=False, limits=self._limits)
            self._pools[key] = pool
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        return await self.pool_for(url.raw_scheme, url.raw_host, url.port).handle_async_request(request)

    async def aclose(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            await pool.aclose()


class ClientPool:
    """HTTP clients for devices, shared by many adapters; close it when done (``async with``).

    Every adapter gets the same ``httpx.AsyncClient`` (per TLS-verification setting), and under
    it each device has its own small connection pool (:class:`DevicePoolTransport`). There is no
    bound across devices: every device may hold a long-lived event stream, and a global bound
    would let those starve the others' requests; the bound is per device.

    :param connections_per_device: connections open at once to one device.
    :param keepalive_expiry: seconds an idle connection to a device is kept for reuse.
    :param timeout: default seconds per request (adapters bound whole requests themselves).
    """

    def __init__(
        self, *, connections_per_device: int = 4, keepalive_expiry: float = 60.0, timeout: float = 10.0
    ) -> None:
        self._connections_per_device = connections_per_device
        self._keepalive_expiry = keepalive_expiry
        self._timeout = timeout
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def client_for(self, device: DeviceConfig) -> httpx.AsyncClient:
        """The client to reach ``device`` with (TLS verification as the device is configured)."""
        return self.client(verify=device.verify_tls or not device.https)

    def client(self, *, verify: bool = True) -> httpx.AsyncClient:
        """The shared client that checks device certificates, or (``verify=False``) does not."""
        client = self._clients.get(verify)
        if client is None:
            transport = DevicePoolTransport(
                verify=verify,
                connections_per_device=self._connections_per_device,
                keepalive_expiry=self._keepalive_expiry,
            )
            client = httpx.AsyncClient(
                transport=transport, trust_env=False, timeout=self._timeout, follow_redirects=False
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
