"""Opening adapters for configured devices: the one place a device's credentials are handed over.

:func:`open_adapter` builds the adapter the device's ``vendor`` names, with its account from the
province's ``credentials`` and an HTTP client from a :class:`ClientPool`. The pool gives every
adapter the same ``httpx.AsyncClient`` (one per TLS-verification setting) and, under it,
camhub's own HTTP/1.1 transport (:class:`DevicePoolTransport`) with one small connection pool per
device; it ignores proxy environment variables: devices sit on site networks, and a proxy must
never see their traffic or credentials by accident.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import re
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

from camhub.adapter import DeviceAdapter
from camhub.errors import CamhubError, PluginError
from camhub.model import DeviceConfig
from camhub.plugins import PluginHost
from camhub.province import ProvinceConfig

__all__ = ["MAX_HEAD", "ClientPool", "DeviceClient", "DevicePoolTransport", "open_adapter"]

#: Bytes buffered from a device before its socket is read no further until they are consumed.
_READ_AHEAD = 256 * 1024
#: A request body this large is written apart from its head rather than copied into one write.
_CORK_LIMIT = 64 * 1024
#: The most bytes of an answer's status line and headers (a longer head is a protocol error).
MAX_HEAD = 64 * 1024
#: The longest line of a chunked body's framing: a chunk size with its extensions, a trailer.
_MAX_LINE = 8 * 1024
#: Interim answers (1xx) taken before the answer itself.
_MAX_INTERIM = 8
#: Requests sent again (once, on a new connection) when a reused connection turns out to have
#: been closed by the device before any byte of the answer came back: those that can be
#: repeated without effect. A POST is never sent twice.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")


def _settle(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection to a device (TCP or TLS): what arrived, whether it ended, who waits."""

    def __init__(self, pool: _DevicePool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False
        self.error: BaseException | None = None
        self.reading_paused = False
        #: Set while the transport's write buffer is full, done once it drains (or breaks).
        self.writable: asyncio.Future[bool] | None = None
        self._readable: asyncio.Future[bool] | None = None
        #: Requests sent on this connection (more than one: it was kept alive and reused).
        self.uses = 0
        #: Whether any byte came back since the last request was sent.
        self.answered = False
        #: When it was put back to wait for the next request (None while in use).
        self.idle_since: float | None = None
        #: Closes it if it is still idle when its keep-alive expires.
        self.idle_timer: asyncio.TimerHandle | None = None
        self.closed = False

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.answered = True
        if len(self.buffer) > _READ_AHEAD and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake_reader()
        if self.idle_since is not None:  # the device closed a connection kept for later
            self.pool.close(self)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self._wake_reader()
        self.resume_writing()
        if self.idle_since is not None:
            self.pool.close(self)

    def pause_writing(self) -> None:
        self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.writable is not None:
            _settle(self.writable, True)
        self.writable = None

    def _wake_reader(self) -> None:
        if self._readable is not None:
            _settle(self._readable, True)

    # -- sending -----------------------------------------------------------------------------
    async def send(self, data: bytes, timeout: float | None) -> None:
        """Write ``data``; wait (at most ``timeout`` seconds) while the device reads slower."""
        transport = self.transport
        assert transport is not None
        if self.ended or transport.is_closing():
            raise httpx.WriteError("the connection is closed")
        transport.write(data)
        if self.writable is not None:
            writable = self.writable
            timer = None if timeout is None else self.loop.call_later(timeout, _settle, writable, False)
            try:
                drained = await asyncio.shield(writable)
            finally:
                if timer is not None:
                    timer.cancel()
            if not drained:
                raise httpx.WriteTimeout(f"could not send within {timeout:g} s")
        if self.error is not None:
            raise httpx.WriteError(str(self.error) or type(self.error).__name__)

    # -- receiving ---------------------------------------------------------------------------
    async def fill(self, timeout: float | None) -> None:
        """Wait for more bytes or the end of the connection, at most ``timeout`` seconds."""
        waiter = self._readable = self.loop.create_future()
        timer = None if timeout is None else self.loop.call_later(timeout, _settle, waiter, False)
        try:
            arrived = await waiter
        finally:
            self._readable = None
            if timer is not None:
                timer.cancel()
        if not arrived:
            raise httpx.ReadTimeout(f"no data within {timeout:g} s")

    def take(self, limit: int) -> bytes:
        """Up to ``limit`` buffered bytes; reading resumes once the buffer has room again."""
        buffer = self.buffer
        if len(buffer) <= limit:
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:limit])
            del buffer[:limit]
        if self.reading_paused and len(buffer) <= _READ_AHEAD // 2 and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    def broken(self, where: str) -> httpx.TransportError:
        """The error for a connection that ended while more of the answer was due."""
        if self.error is not None:
            return httpx.ReadError(f"connection broken {where}: {self.error or type(self.error).__name__}")
        return httpx.RemoteProtocolError(f"the device closed the connection {where}")

    async def line(self, timeout: float | None) -> bytes:
        """One line of a chunked body's framing, without its line end."""
        buffer = self.buffer
        while (end := buffer.find(b"\n")) < 0:
            if len(buffer) > _MAX_LINE:
                raise httpx.RemoteProtocolError(f"a chunked body's line exceeds {_MAX_LINE} bytes")
            if self.ended:
                raise self.broken("inside a chunked body")
            await self.fill(timeout)
        data = bytes(buffer[:end])
        del buffer[: end + 1]
        return data.rstrip(b"\r")

    async def head(self, timeout: float | None) -> bytes:
        """The answer's status line and headers (without the empty line that ends them)."""
        buffer = self.buffer
        searched = stray = 0
        while True:
            while buffer and buffer[0] in b"\r\n":  # stray line ends before the status line
                del buffer[:1]
                stray += 1
                if stray > _MAX_LINE:
                    raise httpx.RemoteProtocolError(f"more than {_MAX_LINE} line ends before an answer")
            # The head ends at an empty line: LF, an optional CR, LF (a few firmwares use bare LF).
            start = max(0, searched - 2)
            end = buffer.find(b"\n\r\n", start, MAX_HEAD + 3)
            bare = buffer.find(b"\n\n", start, MAX_HEAD + 2 if end < 0 else end + 2)
            if bare >= 0:
                head = bytes(buffer[:bare])
                del buffer[: bare + 2]
                break
            if end >= 0:
                head = bytes(buffer[:end])
                del buffer[: end + 3]
                break
            searched = len(buffer)
            if searched > MAX_HEAD:
                raise httpx.RemoteProtocolError(f"the answer's headers exceed {MAX_HEAD} bytes")
            if self.ended:
                if not buffer:
                    raise self.broken("without sending an answer")
                raise self.broken("inside the answer's headers")
            await self.fill(timeout)
        return head.rstrip(b"\r")


def _parse_head(head: bytes) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    """HTTP version, status, reason and headers of an answer's head; lenient where devices are
    (bare LF line ends, folded header lines), strict where framing depends on it."""
    lines = head.split(b"\n")
    status_line = lines[0].rstrip(b"\r")
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise httpx.RemoteProtocolError(f"malformed status line {status_line[:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        if line.startswith((b" ", b"\t")) and headers:  # obsolete line folding
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip(b" \t"))
            continue
        name, separator, value = line.partition(b":")
        if not separator or not name or name.endswith((b" ", b"\t")) or name.startswith((b" ", b"\t")):
            raise httpx.RemoteProtocolError(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip(b" \t")))
    return version, int(code), reason, headers


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives: by Content-Length, chunked, or until the device closes."""

    LENGTH, CHUNKED, UNTIL_CLOSE = 0, 1, 2

    def __init__(
        self, connection: _Connection, framing: int, length: int, keep_alive: bool, timeout: float | None
    ) -> None:
        self._connection: _Connection | None = connection
        self._framing = framing
        self._length = length
        self._keep_alive = keep_alive
        self._timeout = timeout
        if framing == self.LENGTH and not length:
            self._finish(keep_alive)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        try:
            if self._framing == self.LENGTH:
                async for data in self._sized(connection, self._length, "inside the answer's body"):
                    yield data
            elif self._framing == self.CHUNKED:
                async for data in self._chunked(connection):
                    yield data
            else:
                while True:
                    if connection.buffer:
                        yield connection.take(_READ_AHEAD)
                    elif connection.ended:
                        if connection.error is not None:
                            raise connection.broken("inside the answer's body")
                        break
                    else:
                        await connection.fill(self._timeout)
        except BaseException:
            self._finish(False)
            raise
        self._finish(self._keep_alive)

    async def _sized(self, connection: _Connection, size: int, where: str) -> AsyncIterator[bytes]:
        remaining = size
        while remaining:
            if connection.buffer:
                data = connection.take(remaining)
                remaining -= len(data)
                yield data
            elif connection.ended:
                raise connection.broken(f"{where} ({size - remaining} of {size} bytes)")
            else:
                await connection.fill(self._timeout)

    async def _chunked(self, connection: _Connection) -> AsyncIterator[bytes]:
        while True:
            size_line = (await connection.line(self._timeout)).split(b";", 1)[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_line):
                raise httpx.RemoteProtocolError(f"malformed chunk size {size_line[:40]!r}")
            size = int(size_line, 16)
            if not size:
                break
            async for data in self._sized(connection, size, "inside a chunk"):
                yield data
            if await connection.line(self._timeout):
                raise httpx.RemoteProtocolError("a chunk is longer than its declared size")
        trailer = 0
        while line := await connection.line(self._timeout):
            trailer += len(line)
            if trailer > MAX_HEAD:
                raise httpx.RemoteProtocolError(f"the answer's trailers exceed {MAX_HEAD} bytes")

    def _finish(self, reuse: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            if reuse:
                connection.pool.release(connection)
            else:
                connection.pool.close(connection)

    async def aclose(self) -> None:
        self._finish(False)  # closed before its end: the rest is not worth reading


class _DevicePool:
    """One device's connections: at most ``limit`` open at once, idle ones kept for reuse."""

    def __init__(
        self, host: str, port: int, context: ssl.SSLContext | None, limit: int, expiry: float
    ) -> None:
        self.host = host
        self.port = port
        self.context = context
        self.limit = limit
        self.expiry = expiry
        self.idle: list[_Connection] = []
        #: Every connection made and not closed yet, idle or in use.
        self.connections: set[_Connection] = set()
        #: Connections open, being opened or in use.
        self.open = 0
        self.closing = False
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()
        #: Waiters woken (a connection or a slot is theirs) that have not run yet.
        self._woken = 0

    async def acquire(self, timeout: float | None, *, fresh: bool = False) -> _Connection | None:
        """A kept-alive connection, or None: the caller may open one (its slot is taken).

        ``timeout`` bounds the whole wait for a free slot. A caller queues behind those already
        waiting, so that a busy device's connections go round instead of to whoever asks last.
        ``fresh``: no kept-alive connection (they are closed instead), a new one.
        """
        if self.closing:
            raise httpx.ConnectError("the client's connections to devices are closed")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if self._waiters or self._woken:  # their turn first
            await self._wait(loop, deadline, timeout)
        while True:
            idle = self.idle
            if idle:
                now = loop.time()
                while idle:
                    connection = idle.pop()
                    since, connection.idle_since = connection.idle_since, None
                    if connection.idle_timer is not None:
                        connection.idle_timer.cancel()
                        connection.idle_timer = None
                    assert connection.transport is not None and since is not None
                    if (
                        fresh
                        or connection.ended
                        or connection.buffer
                        or now - since > self.expiry
                        or connection.transport.is_closing()
                    ):
                        self.close(connection)
                        continue
                    return connection
            if self.open < self.limit:
                self.open += 1
                return None
            await self._wait(loop, deadline, timeout)

    async def _wait(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None, timeout: float | None
    ) -> None:
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            raise httpx.PoolTimeout(f"no connection to the device free within {timeout:g} s")
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = None if left is None else loop.call_later(left, _settle, waiter, False)
        try:
            woken = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self._woken -= 1
                self._wake()  # woken but leaving: the next one may go
            raise
        else:
            if woken:
                self._woken -= 1
        finally:
            if timer is not None:
                timer.cancel()
            if not waiter.done() or waiter.cancelled() or not waiter.result():  # still queued
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        if not woken:
            raise httpx.PoolTimeout(f"no connection to the device free within {timeout:g} s")

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                self._woken += 1
                return

    async def connect(self, timeout: float | None) -> _Connection:
        """Open a connection in the slot :meth:`acquire` gave."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    functools.partial(_Connection, self),
                    self.host,
                    self.port,
                    ssl=self.context,
                    server_hostname=self.host if self.context is not None else None,
                )
        except BaseException as exc:
            self.open -= 1
            self._wake()
            if isinstance(exc, TimeoutError):
                raise httpx.ConnectTimeout(f"no connection within {timeout:g} s") from None
            if isinstance(exc, OSError):
                raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
            raise
        self.connections.add(connection)
        return connection

    def release(self, connection: _Connection) -> None:
        """Keep a connection whose answer was read to its end for the next request."""
        if self.closing or connection.ended or connection.buffer or connection.closed:
            self.close(connection)
            return
        loop = asyncio.get_running_loop()
        connection.idle_since = loop.time()
        # Expired at once, not when the device is next asked: a device no longer asked must not
        # keep its sockets open.
        connection.idle_timer = loop.call_later(self.expiry, self._expire, connection)
        self.idle.append(connection)
        self._wake()

    def _expire(self, connection: _Connection) -> None:
        connection.idle_timer = None
        if connection.idle_since is not None:
            self.close(connection)

    def close(self, connection: _Connection) -> None:
        """Close a connection and free its slot (once, whatever calls it)."""
        if connection.closed:
            return
        connection.closed = True
        self.connections.discard(connection)
        if connection.idle_timer is not None:
            connection.idle_timer.cancel()
            connection.idle_timer = None
        if connection.idle_since is not None:
            connection.idle_since = None
            self.idle.remove(connection)
        if connection.transport is not None:
            connection.transport.abort()
        self.open -= 1
        self._wake()

    def shut(self) -> None:
        """Close every connection, in use (an event stream that never ends) or idle."""
        self.closing = True
        for connection in list(self.connections):
            self.close(connection)


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers, checked for line breaks smuggled into a header."""
    headers = request.headers.raw
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path or b"/", b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    lines = len(headers) + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise httpx.LocalProtocolError("a line break in the request line or a header")
    return head


class DevicePoolTransport(httpx.AsyncBaseTransport):
    """camhub's HTTP/1.1 transport for devices: one small connection pool per device.

    Device APIs are many short requests, a few long event streams and downloads, to thousands
    of hosts. This transport runs them on plain asyncio protocols: a request goes out in one
    write, the answer's head is parsed in one step (bounded to :data:`MAX_HEAD` bytes), its
    body streams by ``Content-Length``, chunked or until the device closes, and a socket is
    read no further while 256 KiB wait unread. The client's timeouts apply (``connect``,
    ``read`` per wait for data, ``write`` per wait for the device to read, ``pool`` for a free
    connection) and raise httpx's errors (``ConnectTimeout``, ``ReadTimeout``,
    ``WriteTimeout``, ``PoolTimeout``, ``ConnectError``, ``ReadError``, ``WriteError``,
    ``RemoteProtocolError``), which the adapters map to :mod:`camhub.errors`.

    A kept-alive connection the device closed while idle is dropped before reuse; one it
    closed just as a request went out (no byte of the answer back) gets an idempotent request
    sent once more, on a new connection; a POST is never sent twice.

    :param verify: check device certificates (False for devices with self-signed ones).
    :param connections_per_device: connections open at once to one device (an event stream, a
        download and the health checks side by side); more requests wait for one.
    :param keepalive_expiry: seconds an idle connection is kept for the next request. Longer
        than a health sweep's interval, so that recurring sweeps reuse their connections.
    """

    def __init__(self, *, verify: bool, connections_per_device: int, keepalive_expiry: float) -> None:
        self._context: ssl.SSLContext = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._limit = connections_per_device
        self._expiry = keepalive_expiry
        self._pools: dict[tuple[bytes, bytes, int | None], _DevicePool] = {}

    @property
    def devices(self) -> int:
        """How many device pools have been made (one per scheme, host and port reached)."""
        return len(self._pools)

    def pool_for(self, scheme: bytes, host: bytes, port: int | None) -> _DevicePool:
        """The connection pool of the device at ``scheme://host:port``, made on first use."""
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            if scheme not in (b"http", b"https"):
                raise httpx.UnsupportedProtocol(f"devices speak http or https, not {scheme.decode()!r}")
            secure = scheme == b"https"
            pool = _DevicePool(
                host.decode("ascii"),
                port or (443 if secure else 80),
                self._context if secure else None,
                self._limit,
                self._expiry,
            )
            self._pools[key] = pool
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a connection of its device's pool; the answer's body streams."""
        url = request.url
        pool = self._pools.get((url.raw_scheme, url.raw_host, url.port))
        if pool is None:
            pool = self.pool_for(url.raw_scheme, url.raw_host, url.port)
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        head = _request_head(request)
        replayable = isinstance(request.stream, httpx.ByteStream)  # a body in memory, not a stream
        body = request.content if replayable else b""
        if len(body) < _CORK_LIMIT:
            head, body = head + body, b""
        retry = replayable and request.method in _IDEMPOTENT
        fresh = False
        while True:
            connection = await pool.acquire(timeouts.get("pool"), fresh=fresh)
            if connection is None:
                connection = await pool.connect(timeouts.get("connect"))
            reused = connection.uses > 0
            connection.uses += 1
            connection.answered = False
            try:
                await connection.send(head, timeouts.get("write"))
                if not replayable:
                    await self._send_stream(connection, request, timeouts.get("write"))
                elif body:
                    await connection.send(body, timeouts.get("write"))
                return await self._answer(connection, request.method, timeouts.get("read"))
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                pool.close(connection)
                if not (retry and reused and not connection.answered):
                    raise
                # Once, on a new connection: the device closed a kept-alive one as it was reused
                # (its other idle ones, closed by the same keep-alive timeout, would fail alike).
                retry, fresh = False, True
            except BaseException:
                pool.close(connection)
                raise

    @staticmethod
    async def _send_stream(connection: _Connection, request: httpx.Request, timeout: float | None) -> None:
        chunked = "content-length" not in request.headers
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for data in request.stream:
            if data:
                await connection.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data, timeout)
        if chunked:
            await connection.send(b"0\r\n\r\n", timeout)

    @staticmethod
    async def _answer(connection: _Connection, method: str, timeout: float | None) -> httpx.Response:
        for _ in range(_MAX_INTERIM + 1):
            version, status, reason, headers = _parse_head(await connection.head(timeout))
            if not 100 <= status < 200 or status == 101:
                break  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        else:
            raise httpx.RemoteProtocolError(f"more than {_MAX_INTERIM} interim answers")
        length: int | None = None
        chunked = closes = False
        keep_alive = version == b"HTTP/1.1"
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                values = {part.strip() for part in value.split(b",")}
                if len(values) != 1 or not (text := values.pop()).isdigit() or len(text) > 18:
                    raise httpx.RemoteProtocolError(f"malformed Content-Length {value[:40]!r}")
                if length is not None and length != int(text):
                    raise httpx.RemoteProtocolError("conflicting Content-Length headers")
                length = int(text)
            elif lower == b"transfer-encoding":
                # Only chunked: another coding (gzip, chunked) would reach the adapter undecoded.
                if value.strip().lower() != b"chunked" or chunked:
                    raise httpx.RemoteProtocolError(f"unsupported Transfer-Encoding {value[:40]!r}")
                chunked = True
            elif lower == b"connection":
                tokens = {part.strip().lower() for part in value.split(b",")}
                if b"close" in tokens:
                    closes = True
                elif b"keep-alive" in tokens:
                    keep_alive = keep_alive or version == b"HTTP/1.0"
        keep_alive = keep_alive and not closes  # "close" wins, in whichever header it comes
        if method == "HEAD" or status in (101, 204, 304):
            framing, length = _Body.LENGTH, 0
            keep_alive = keep_alive and status != 101
        elif chunked:
            keep_alive = keep_alive and length is None  # both framings given: trust neither again
            framing, length = _Body.CHUNKED, 0
        elif length is not None:
            framing = _Body.LENGTH
        else:
            framing, length, keep_alive = _Body.UNTIL_CLOSE, 0, False
        body = _Body(connection, framing, length, keep_alive, timeout)
        return httpx.Response(
            status,
            headers=headers,
            stream=body,
            extensions={"http_version": version, "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        """Close every device's connections, those in use too."""
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            pool.shut()


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
        """Only the cookies set on purpose."""
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
        """Close the clients and every connection to the devices."""
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
