"""The base of camhub's device simulators: an HTTP device on loopback with real Digest auth.

A simulated device is an aiohttp server on 127.0.0.1 that checks HTTP Digest (RFC 7616, MD5,
``qop=auth``) as cameras do, keeps a device clock with a configurable skew, pushes events to
any open event stream, keeps recordings on its "device storage", and injects faults on demand:
slow answers, error statuses, a connection dropped mid-stream, a body trickled a byte at a
time, an account locked after failed logins. Vendor simulators (Hikvision, Dahua, ONVIF) add
their routes and wire formats on top.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Self

import attrs
from aiohttp import web

from camhub.adapter import EventKind

__all__ = ["DeviceProfile", "Faults", "SimulatedDevice", "SimulatedEvent", "SimulatedRecording"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define
class Faults:
    """Faults a simulated device shows; change them while it runs."""

    #: Seconds every answer waits before it starts.
    delay: float = 0.0
    #: Answer every request with this HTTP status instead (e.g. 503).
    status: int | None = None
    #: Send bodies at this many bytes per second (1 = a slow-loris device).
    trickle_bytes_per_second: float | None = None
    #: Close the connection after this many bytes of a streamed answer (event streams).
    drop_stream_after_bytes: int | None = None
    #: Failed logins after which the account locks (None: never), as Dahua devices do.
    lockout_after: int | None = None


@attrs.define
class DeviceProfile:
    """What a simulated device is."""

    model: str
    serial: str
    firmware: str
    mac: str
    name: str = "camhub simulator"
    channels: int = 1
    nvr: bool = False
    audio: bool = True
    username: str = "admin"
    password: str = "camhub-sim-1"
    clock_skew: timedelta = timedelta(0)
    realm: str = "camhub-sim"


@attrs.frozen
class SimulatedEvent:
    """An event the device sends on its event stream."""

    kind: EventKind
    active: bool
    channel: int | None = None
    time: datetime | None = None


@attrs.frozen
class SimulatedRecording:
    """Footage kept on the device's own storage for one channel."""

    channel: int
    start: datetime
    end: datetime
    path: str = ""  # a media file on disk the device serves when the span is fetched


class SimulatedDevice:
    """An HTTP device on loopback; subclasses add routes with :meth:`add_routes`.

    :param profile: identity, channel count, credentials and clock skew.
    :param rtsp_url: ``rtsp://host:port`` of the media server answering for this device's
        channels (see :mod:`camhub.testing.rtsp`), used in stream URIs.
    """

    vendor = ""

    def __init__(
        self, profile: DeviceProfile, *, rtsp_url: str = "rtsp://127.0.0.1:554", port: int = 0
    ) -> None:
        self.profile = profile
        self.rtsp_url = rtsp_url.rstrip("/")
        self.faults = Faults()
        self.recordings: list[SimulatedRecording] = []
        self.failed_logins = 0
        self.requests: list[str] = []  # "METHOD path" of every request, for tests
        self._port = port
        self._nonces: set[str] = set()
        self._subscribers: set[asyncio.Queue[SimulatedEvent | None]] = set()
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._faults_middleware, self._auth_middleware])
        self.add_routes(self.app)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port unless one was given)."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close event streams and stop listening."""
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- device behaviour --------------------------------------------------------------------
    def now(self) -> datetime:
        """The device clock (UTC, with the profile's skew)."""
        return datetime.now(UTC) + self.profile.clock_skew

    def emit(self, event: SimulatedEvent) -> None:
        """Send an event to every open event stream."""
        if event.time is None:
            event = attrs.evolve(event, time=self.now())
        for queue in list(self._subscribers):
            queue.put_nowait(event)

    def subscribe(self) -> _Subscription:
        """Events as they are emitted, until the device stops (for event-stream handlers).

        The subscription counts from this call, not from the first read: an event emitted
        right after a stream opens is not lost. Close it (``aclose``) when the stream ends.
        """
        return _Subscription(self._subscribers)

    @property
    def subscribers(self) -> int:
        """How many event streams are open."""
        return len(self._subscribers)

    def add_routes(self, app: web.Application) -> None:
        """Add the vendor's routes (subclasses)."""

    def rtsp_path(self, channel: int, main: bool = True) -> str:
        """The media server path serving a channel of this device."""
        return f"/{self.vendor or 'sim'}/{self._port}/ch{channel}/{'main' if main else 'sub'}"

    def stream_url(self, channel: int, main: bool = True) -> str:
        """The live stream URL the device gives for a channel (on :attr:`rtsp_url`'s server)."""
        return self.rtsp_url + self.rtsp_path(channel, main)

    # -- HTTP Digest -------------------------------------------------------------------------
    def _challenge(self, stale: bool = False) -> str:
        nonce = secrets.token_hex(16)
        self._nonces.add(nonce)
        if len(self._nonces) > 10_000:
            self._nonces.pop()
        return (
            f'Digest realm="{self.profile.realm}", qop="auth", nonce="{nonce}", '
            f'opaque="{secrets.token_hex(8)}", algorithm=MD5{", stale=TRUE" if stale else ""}'
        )

    def check_digest(self, method: str, header: str) -> bool:
        """True when an ``Authorization: Digest …`` header proves the profile's password."""
        if not header.lower().startswith("digest "):
            return False
        fields = _parse_auth_fields(header[7:])
        if fields.get("nonce") not in self._nonces or fields.get("username") != self.profile.username:
            return False
        ha1 = _md5(f"{self.profile.username}:{self.profile.realm}:{self.profile.password}")
        ha2 = _md5(f"{method}:{fields.get('uri', '')}")
        if fields.get("qop"):
            expected = _md5(
                f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:"
                f"{fields['qop']}:{ha2}"
            )
        else:
            expected = _md5(f"{ha1}:{fields['nonce']}:{ha2}")
        return secrets.compare_digest(expected, fields.get("response", ""))

    def is_public(self, request: web.Request) -> bool:
        """Paths answered without authentication (subclasses: e.g. ONVIF GetSystemDateAndTime)."""
        return False

    def locked(self) -> bool:
        lockout = self.faults.lockout_after
        return lockout is not None and self.failed_logins >= lockout

    def unauthorized(self, request: web.Request) -> web.StreamResponse:
        """The answer to a request without valid credentials (subclasses may reword it)."""
        return web.Response(status=401, headers={"WWW-Authenticate": self._challenge()}, text="Unauthorized")

    def locked_answer(self, request: web.Request) -> web.StreamResponse:
        """The answer while the account is locked (subclasses: the vendor's own wording)."""
        return web.Response(status=401, text="account locked")

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.is_public(request):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if self.locked():
            return self.locked_answer(request)
        if not header:
            return self.unauthorized(request)
        if not self.check_digest(request.method, header):
            self.failed_logins += 1
            return self.locked_answer(request) if self.locked() else self.unauthorized(request)
        return await handler(request)

    @web.middleware
    async def _faults_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        if self.faults.status is not None:
            return web.Response(status=self.faults.status, text=f"simulated fault {self.faults.status}")
        response = await handler(request)
        rate = self.faults.trickle_bytes_per_second
        if rate and isinstance(response, web.Response) and isinstance(response.body, (bytes, bytearray)):
            return await self._trickle(request, bytes(response.body), response, rate)
        return response

    async def _trickle(
        self, request: web.Request, body: bytes, original: web.Response, rate: float
    ) -> web.StreamResponse:
        headers = {
            k: v
            for k, v in original.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding")
        }
        streamed = web.StreamResponse(status=original.status, headers=headers)
        streamed.content_length = len(body)
        await streamed.prepare(request)
        try:
            for index in range(len(body)):
                await streamed.write(body[index : index + 1])
                await asyncio.sleep(1 / rate)
            await streamed.write_eof()
        except ConnectionError:
            pass  # the client gave up waiting, as it should
        return streamed

    async def write_stream(self, response: web.StreamResponse, data: bytes) -> bool:
        """Write part of a streamed answer, honouring :attr:`Faults.drop_stream_after_bytes`.

        Returns False (after cutting the connection) when the fault says to drop here.
        """
        limit = self.faults.drop_stream_after_bytes
        sent = getattr(response, "_camhub_sent", 0)
        if limit is not None and sent + len(data) > limit:
            await response.write(data[: max(0, limit - sent)])
            transport = response._req.transport if response._req is not None else None
            if transport is not None:
                transport.abort()
            return False
        await response.write(data)
        response._camhub_sent = sent + len(data)  # type: ignore[attr-defined]
        return True


class _Subscription:
    """An event queue registered at creation, read as an async iterator."""

    def __init__(self, subscribers: set[asyncio.Queue[SimulatedEvent | None]]) -> None:
        self._subscribers = subscribers
        self._queue: asyncio.Queue[SimulatedEvent | None] = asyncio.Queue()
        subscribers.add(self._queue)

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> SimulatedEvent:
        event = await self._queue.get()
        if event is None:
            await self.aclose()
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        self._subscribers.discard(self._queue)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _parse_auth_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    index = 0
    while index < len(text):
        while index < len(text) and text[index] in " ,":
            index += 1
        eq = text.find("=", index)
        if eq < 0:
            break
        key = text[index:eq].strip().lower()
        index = eq + 1
        if index < len(text) and text[index] == '"':
            end = text.find('"', index + 1)
            end = len(text) if end < 0 else end
            fields[key] = text[index + 1 : end]
            index = end + 1
        else:
            end = text.find(",", index)
            end = len(text) if end < 0 else end
            fields[key] = text[index:end].strip()
            index = end
    return fields


def default_recordings(
    device: SimulatedDevice, *, hours: int = 2, span_minutes: int = 30
) -> list[SimulatedRecording]:
    """Contiguous spans for each channel over the last ``hours``, as device storage would hold."""
    end = device.now().replace(second=0, microsecond=0)
    spans = []
    for channel in range(1, device.profile.channels + 1):
        start = end - timedelta(hours=hours)
        while start < end:
            stop = min(end, start + timedelta(minutes=span_minutes))
            spans.append(SimulatedRecording(channel=channel, start=start, end=stop))
            start = stop
    return spans
