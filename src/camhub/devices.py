"""Opening adapters for configured devices: the one place a device's credentials are handed over.

:func:`open_adapter` builds the adapter the device's ``vendor`` names, with its account from the
province's ``credentials`` and an HTTP client from a :class:`ClientPool`. The pool gives every
adapter the same ``httpx.AsyncClient`` (one per TLS-verification setting) and, under it, one small
connection pool per device; it ignores proxy environment variables: devices sit on site
networks, and a proxy must never see their traffic or credentials by accident.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from camhub.adapter import DeviceAdapter
from camhub.errors import CamhubError, PluginError
from camhub.model import DeviceConfig
from camhub.plugins import PluginHost
from camhub.province import ProvinceConfig

__all__ = ["AsyncioBackend", "ClientPool", "DeviceClient", "DevicePoolTransport", "open_adapter"]

#: Bytes buffered from a device before its socket is read no further until they are consumed.
_READ_AHEAD = 256 * 1024
#: A write this large is sent at once rather than gathered with the next.
_CORK_LIMIT = 64 * 1024


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: what arrived, whether it ended, who waits for more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False
        self.error: BaseException | None = None
        self.reading_paused = False
        #: Set while the transport's write buffer is full, done once it drains (or breaks).
        self.writable: asyncio.Future[None] | None = None
        self._readable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _READ_AHEAD and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self._wake_reader()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    async def wait_readable(self) -> None:
        self._readable = asyncio.get_running_loop().create_future()
        try:
            await self._readable
        finally:
            self._readable = None


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, connection: _Connection) -> None:
        self._transport = transport
        self._connection = connection
        self._pending: list[bytes] = []

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        if not connection.buffer and not connection.ended:
            try:
                async with asyncio.timeout(timeout):
                    await connection.wait_readable()
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no data within {timeout} s") from None
        if buffer := connection.buffer:
            if len(buffer) <= max_bytes:
                data = bytes(buffer)
                buffer.clear()
            else:
                data = bytes(buffer[:max_bytes])
                del buffer[:max_bytes]
            if connection.reading_paused and len(connection.buffer) <= _READ_AHEAD // 2:
                connection.reading_paused = False
                self._transport.resume_reading()
            return data
        if connection.error is not None:
            raise httpcore.ReadError(str(connection.error) or type(connection.error).__name__)
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        # A request's head and its small body go out in one segment: small writes made in one
        # step of the task are sent together when it next waits, which it does for the answer.
        pending = self._pending
        if not pending:
            asyncio.get_running_loop().call_soon(self._flush)
        pending.append(buffer)
        if len(buffer) >= _CORK_LIMIT:
            self._flush()
        connection = self._connection
        if connection.error is not None:
            raise httpcore.WriteError(str(connection.error))
        if connection.writable is not None:  # the device reads slower than we send
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(connection.writable)
            except TimeoutError:
                raise httpcore.WriteTimeout(f"could not send within {timeout} s") from None

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._connection, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.abort()
            raise httpcore.ConnectTimeout(f"no TLS handshake within {timeout} s") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        assert isinstance(transport, asyncio.Transport)
        self._connection.transport = transport
        return _Stream(transport, self._connection)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # asked of an idle connection: has the device closed it?
            connection = self._connection
            return bool(connection.buffer) or connection.ended or self._transport.is_closing()
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername"}
        return self._transport.get_extra_info(names.get(info, info))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer on plain asyncio protocols, for many short device requests.

    httpcore's default backend goes through anyio, which opens a cancel scope for every read and
    write; at a thousand devices that is a large part of a health sweep's CPU. This backend
    keeps httpcore's contract: its timeouts raise httpcore's ``ConnectTimeout``, ``ReadTimeout``
    and ``WriteTimeout``, broken connections ``ConnectError``, ``ReadError`` and ``WriteError``
    (which httpx maps to its own), and it stops reading a socket while 256 KiB wait unread.
    """

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await loop.create_connection(
                    _Connection, host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        sock: socket.socket | None = transport.get_extra_info("socket")
        if sock is not None:
            for option in socket_options or ():
                sock.setsockopt(*option)
        assert isinstance(transport, asyncio.Transport)
        return _Stream(transport, connection)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


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
        self._backend = AsyncioBackend()

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
            # httpx takes no network backend; its pool is replaced by the same pool on ours.
            pool._pool = httpcore.AsyncConnectionPool(
                ssl_context=self._context,
                max_connections=self._limits.max_connections,
                max_keepalive_connections=self._limits.max_keepalive_connections,
                keepalive_expiry=self._limits.keepalive_expiry,
                network_backend=self._backend,
            )
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


class _Unlearned(httpx.Cookies):
    """Cookies set on purpose only: nothing is taken from answers."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class DeviceClient(httpx.AsyncClient):
    """The ``httpx.AsyncClient`` adapters get: one for many devices, so it collects no cookies.

    Device APIs authenticate every request (HTTP Digest, WS-Security) and need no cookie jar; a
    jar shared by every device would hand one device's cookies to another at the same address
    (cookies ignore ports), and filling it costs a tenth of a health sweep's CPU. Cookies set
    on purpose (``client.cookies.set(…)``) are sent as usual.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._unlearned = _Unlearned(kwargs.get("cookies"))

    @property
    def cookies(self) -> httpx.Cookies:
        return self._unlearned

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._unlearned = _Unlearned(cookies)


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
            client = DeviceClient(
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
