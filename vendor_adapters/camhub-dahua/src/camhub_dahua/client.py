"""The Dahua CGI client: Digest-authenticated requests, ``key=value`` answers, ``Error`` bodies, device time.

Dahua's HTTP API (``/cgi-bin/*.cgi``) answers in lines of ``key=value`` (``type=IPC-HDW2431T``,
``table.ChannelTitle[0].Name=Cổng chính``), or ``OK``, or ``Error`` followed by a reason — often
with HTTP 200, so the status alone says nothing. Firmware locks an account after a few failed
logins (typically five, for half an hour), so a refused login is final here: the client remembers
it and sends nothing more with those credentials, and while an account is locked it does not even
answer the Digest challenge. Until one request has been let in, requests go one at a time, so a
wrong password costs exactly one failed login however many calls are waiting.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar
from urllib.parse import quote

import httpx

from camhub.errors import DeviceAuthError, DeviceProtocolError, DeviceUnsupported
from camhub.log import get_logger
from camhub.net import DeviceHTTP, Response

__all__ = [
    "MAX_TABLE",
    "TIMEZONE_OFFSETS",
    "DahuaCGI",
    "DahuaDigestAuth",
    "cgi_path",
    "device_time_text",
    "error_reason",
    "missing",
    "parse_device_time",
    "parse_table",
    "timezone_from_ntp",
]

#: Largest ``key=value`` answer read (a 64-channel NVR's Encode table is a few hundred KB).
MAX_TABLE = 2 * 1024 * 1024
#: Largest body of a 401 answer read to look for a lock message (real ones are a few bytes).
_MAX_401_BODY = 64 * 1024
#: Largest non-2xx or Error body read from a streamed answer.
_MAX_STREAM_ERROR = 4096

_LOCKED = re.compile(r"\block(?:ed)?\b", re.IGNORECASE)
_AUTHORITY = re.compile(r"authorit|permission|no right", re.IGNORECASE)

#: Characters left as they are in query values: Dahua firmware reads ``+`` literally (not as a
#: space) and every client sends ``[`` ``]`` ``:`` raw (``codes=[All]``, ``12:00:00``).
_QUERY_SAFE = ":[],@"

#: ``NTP.TimeZone`` index → offset from UTC in minutes, as Dahua's HTTP API defines the index
#: (0 GMT+00:00 … 12 GMT+07:00, 13 GMT+08:00 … 20 GMT-01:00 … 32 GMT-12:00).
TIMEZONE_OFFSETS: tuple[int, ...] = (
    0, 60, 120, 180, 210, 240, 270, 300, 330, 345, 360, 390, 420, 480, 540, 570, 600,
    660, 720, 780, -60, -120, -180, -210, -240, -300, -360, -420, -480, -540, -600, -660, -720,
)  # fmt: skip

_GMT_OFFSET = re.compile(r"(?:GMT|UTC)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)

T = TypeVar("T")


def cgi_path(script: str, *params: tuple[str, str | int]) -> str:
    """``/cgi-bin/<script>?k=v&…`` with values encoded as Dahua firmware reads them (spaces as ``%20``)."""
    query = "&".join(f"{key}={quote(str(value), safe=_QUERY_SAFE)}" for key, value in params)
    return f"/cgi-bin/{script}?{query}" if query else f"/cgi-bin/{script}"


def parse_table(text: str) -> dict[str, str]:
    """The ``key=value`` lines of an answer (CRLF or LF); other lines are ignored, the last key wins."""
    table: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and key:
            table[key] = value.strip()
    return table


def error_reason(body: bytes) -> str | None:
    """The reason of an ``Error`` answer (``""`` when none is given), or None for any other answer."""
    lines = [line.strip() for line in body[:_MAX_STREAM_ERROR].decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines or lines[0].lower() != "error":
        return None
    return " ".join(lines[1:])[:200]


def timezone_from_ntp(table: dict[str, str]) -> tuple[timezone, str] | None:
    """The device's UTC offset from its ``NTP`` configuration: the ``TimeZone`` index, or an
    offset written in ``TimeZoneDesc``; None when neither gives one."""
    index = table.get("table.NTP.TimeZone", "").strip()
    minutes: int | None = None
    if index.isdigit() and int(index) < len(TIMEZONE_OFFSETS):
        minutes = TIMEZONE_OFFSETS[int(index)]
    else:
        match = _GMT_OFFSET.search(table.get("table.NTP.TimeZoneDesc", ""))
        if match:
            sign = -1 if match.group(1) == "-" else 1
            minutes = sign * (int(match.group(2)) * 60 + int(match.group(3) or 0))
    if minutes is None or abs(minutes) > 14 * 60:
        return None
    return timezone(timedelta(minutes=minutes)), _offset_name(minutes)


def _offset_name(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{mins:02d}"


def device_time_text(moment: datetime, tz: timezone) -> str:
    """A UTC moment as the device writes its local time in queries: ``2024-1-1 07:00:00``."""
    local = moment.astimezone(tz)
    return f"{local.year}-{local.month}-{local.day} {local:%H:%M:%S}"


def parse_device_time(text: str | None, tz: timezone) -> datetime | None:
    """A device-local ``2024-01-01 12:00:00`` (or ``2024-1-1 …``) as an aware UTC datetime."""
    if not text:
        return None
    try:
        local = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return local.replace(tzinfo=tz).astimezone(UTC)


class DahuaDigestAuth(httpx.DigestAuth):
    """HTTP Digest that notices a locked account and then stops answering challenges.

    A 401 whose body says the account is locked (``Error`` / ``User Locked!``) ends the exchange
    unanswered: every login attempt on a locked Dahua account can extend the lock. Only bodies
    with a declared length of at most 64 KiB are read for that.
    """

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        #: The device's own words when it said the account is locked ("" until it does).
        self.lock_notice = ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self.auth_flow(request)
        request = next(flow)
        while True:
            response = yield request
            if response.status_code == 401:
                notice = await _lock_notice(response)
                if notice:
                    self.lock_notice = notice
                    return
            try:
                request = flow.send(response)
            except StopIteration:
                return


async def _lock_notice(response: httpx.Response) -> str:
    declared = response.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > _MAX_401_BODY:
        return ""
    body = await response.aread()
    text = body.decode("utf-8", "replace")
    if not _LOCKED.search(text):
        return ""
    words = [line.strip() for line in text.splitlines() if line.strip() and line.strip().lower() != "error"]
    return " ".join(words)[:200] or "account locked"


class DahuaCGI:
    """One Dahua device's CGI: the login gate, the refusal latch and ``Error``-body mapping.

    :param client: the shared ``httpx.AsyncClient``.
    :param device_id: named in every error.
    :param base_url: ``http(s)://host:port``.
    :param timeout: seconds for a whole request, answer included.
    :param stream_idle: seconds a long-lived answer (the event stream) may stay silent.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        device_id: str,
        base_url: str,
        *,
        username: str,
        password: str,
        timeout: float,
        stream_idle: float,
    ) -> None:
        self.device_id = device_id
        self.auth = DahuaDigestAuth(username, password)
        self.http = DeviceHTTP(
            client, device_id, base_url, auth=self.auth, timeout=timeout, max_body=MAX_TABLE
        )
        # DeviceHTTP reads streams with its request timeout; the event stream may legitimately
        # be silent longer than a request may take, so it gets its own, longer read timeout.
        self._stream_http = DeviceHTTP(
            client, device_id, base_url, auth=self.auth, timeout=stream_idle + timeout
        )
        self.timeout = timeout
        #: The refusal that stopped this client, if credentials were refused or the account locked.
        self.refused: DeviceAuthError | None = None
        self._proven = False
        self._gate = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<DahuaCGI device={self.device_id!r} refused={self.refused is not None}>"

    # -- requests ----------------------------------------------------------------------------
    async def fetch(self, path: str, what: str, *, max_body: int = MAX_TABLE) -> Response:
        """GET ``path``; an ``Error`` answer or a failing status raises, anything else is returned."""
        response = await self._gated(lambda: self.http.request("GET", path, max_body=max_body))
        return self._checked(response, what)

    async def text(self, path: str, what: str) -> str:
        """GET ``path`` and return its text (``OK``, or ``key=value`` lines)."""
        return (await self.fetch(path, what)).text

    async def table(self, path: str, what: str) -> dict[str, str]:
        """GET ``path`` and return its ``key=value`` lines."""
        return parse_table(await self.text(path, what))

    @asynccontextmanager
    async def stream(self, path: str, what: str) -> AsyncIterator[httpx.Response]:
        """GET a long-lived answer; yields the response once its status says it is one."""
        async with AsyncExitStack() as stack:

            async def open_stream() -> httpx.Response:
                opened = self._stream_http.stream("GET", path, connect_timeout=self.timeout)
                return await stack.enter_async_context(opened)

            response = await self._gated(open_stream)
            if not 200 <= response.status_code < 300:
                body = await _read_some(response, _MAX_STREAM_ERROR)
                self._checked(Response(response.status_code, dict(response.headers), body), what)
            yield response

    # -- login gate and refusal latch -------------------------------------------------------------
    def _raise_if_refused(self) -> None:
        if self.refused is not None:
            raise DeviceAuthError(self.device_id, self.refused.detail)

    async def _gated(self, send: Callable[[], Awaitable[T]]) -> T:
        self._raise_if_refused()
        if self._proven:
            return await self._attempt(send)
        async with self._gate:  # one login at a time until the credentials have been let in once
            self._raise_if_refused()
            result = await self._attempt(send)
            self._proven = True
            return result

    async def _attempt(self, send: Callable[[], Awaitable[T]]) -> T:
        try:
            return await send()
        except DeviceAuthError as exc:
            raise self._refuse(exc.detail, locked=bool(self.auth.lock_notice)) from None

    def _refuse(self, detail: str, *, locked: bool) -> DeviceAuthError:
        if locked:
            message = (
                f"the device has locked the account after failed logins ({self.auth.lock_notice}); "
                "camhub will not log in to it again until the account is unlocked and the adapter restarted"
            )
        else:
            message = (
                f"{detail}; camhub does not retry refused credentials "
                "(Dahua devices lock the account after a few failed logins)"
            )
        self.refused = DeviceAuthError(self.device_id, message)
        get_logger("camhub_dahua").warning("dahua.login_refused", device=self.device_id, locked=locked)
        return self.refused

    def _checked(self, response: Response, what: str) -> Response:
        reason = error_reason(response.body)
        if reason is not None:
            if _LOCKED.search(reason):
                self.auth.lock_notice = self.auth.lock_notice or reason
                raise self._refuse(reason, locked=True)
            if _AUTHORITY.search(reason):
                raise DeviceAuthError(self.device_id, f"{what}: the account may not do this ({reason})")
            raise DeviceUnsupported(
                self.device_id,
                f"{what}: the device answered Error ({reason or 'no reason given'}, HTTP {response.status})",
            )
        return self.http.check(response, what)


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


def missing(device_id: str, what: str, key: str) -> DeviceProtocolError:
    """The error for an answer without the line it must have."""
    return DeviceProtocolError(device_id, f"{what}: the answer has no {key!r} line")
