"""HTTP, XML and multipart helpers for adapters: bounded, safe, and mapped to camhub.errors.

Devices are untrusted peers. Everything here assumes the worst of them: a body is read with a
size limit and an overall deadline (a server that sends one byte a second times out like one
that sends nothing), XML is parsed without DTDs or entities (no billion laughs, no external
entities), a multipart stream that stops mid-part is a protocol error, and a 401 is final —
devices lock accounts, so credentials are never retried. Every error names the device and never
a credential.
"""

from __future__ import annotations

import asyncio
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import attrs
import defusedxml
import defusedxml.ElementTree as SafeET
import httpx

from camhub.errors import (
    DeviceAuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
    DeviceUnreachable,
    DeviceUnsupported,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "REMEMBER_FOR",
    "DeviceHTTP",
    "MultipartPart",
    "Remembered",
    "Response",
    "boundary_of",
    "child",
    "children",
    "iter_multipart",
    "local_name",
    "parse_xml",
    "text",
]

#: Largest response body read into memory by default (device answers are small documents).
DEFAULT_MAX_BODY = 4 * 1024 * 1024
#: Seconds a device fact that rarely changes (identity, channel layout) is kept between reads.
REMEMBER_FOR = 600.0
#: An XML declaration's encoding, and the encodings in which no DTD can hide from a byte search.
_XML_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_PLAIN_ENCODINGS = frozenset({b"utf-8", b"utf8", b"us-ascii", b"ascii"})
#: Request URLs kept parsed per device (the first ones asked; searches vary and are not kept).
_PARSED_URLS = 32

T = TypeVar("T")


@attrs.frozen
class Response:
    """A device's complete answer: status, headers and the (size-limited) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Remembered(Generic[T]):
    """A device fact that rarely changes (identity, channel layout), kept between calls.

    A health sweep every few seconds need not ask a device its serial number each time: the
    fact is read again once ``ttl`` seconds have passed, or at once after :meth:`forget`.
    Adapters forget when the device stops answering (it may come back rebooted, upgraded or
    replaced). What health must observe (clock, channel state, storage) is never kept.
    """

    def __init__(self, ttl: float = REMEMBER_FOR) -> None:
        self.ttl = ttl
        self._value: T | None = None
        self._expires = 0.0

    async def get(self, read: Callable[[], Awaitable[T]]) -> T:
        """The kept value, or a fresh one from ``read()`` when there is none or it is too old."""
        if self._value is None or time.monotonic() >= self._expires:
            value = await read()
            self._value, self._expires = value, time.monotonic() + self.ttl
            return value
        return self._value

    def forget(self) -> None:
        """Read the fact again on the next :meth:`get`."""
        self._value = None


class DeviceHTTP:
    """One device's HTTP API: base URL, authentication, deadline, size limit, error mapping.

    :param client: the shared ``httpx.AsyncClient`` camhub injected into the adapter.
    :param device_id: named in every error.
    :param base_url: ``http(s)://host:port`` without credentials.
    :param auth: usually ``httpx.DigestAuth``; httpx answers the challenge once, and a 401
        after that is a :class:`~camhub.errors.DeviceAuthError` (never retried).
    :param timeout: seconds for a whole request, body included.
    :param max_body: the most bytes of an answer read into memory; more is a protocol error.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        device_id: str,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 10.0,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.client = client
        self.device_id = device_id
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.max_body = max_body
        # Made once: a health sweep sends thousands of requests with them.
        self._httpx_timeout = httpx.Timeout(timeout)
        self._parsed: dict[str, httpx.URL] = {}
        self._base: httpx.URL | None = None

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"

    def _parsed_url(self, path: str) -> httpx.URL:
        """``url(path)`` parsed, kept for the paths asked first (a sweep asks the same few)."""
        parsed = self._parsed.get(path)
        if parsed is None:
            if "://" not in path and "#" not in path and path.isascii():
                # The base parsed once, the path onto it: half the cost of parsing the whole URL.
                if self._base is None:
                    self._base = httpx.URL(self.base_url)
                if self._base.raw_path == b"/":
                    parsed = httpx.URL(self._base, raw_path=b"/" + path.lstrip("/").encode("ascii"))
            if parsed is None:
                parsed = httpx.URL(self.url(path))
            if len(self._parsed) < _PARSED_URLS:
                self._parsed[path] = parsed
        return parsed

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        max_body: int | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request and read the whole answer within ``timeout`` seconds.

        Authentication failures raise; any other status is returned for the adapter to read
        (vendors put meaning in 403 and even 200 bodies). Use :meth:`check` for the usual mapping.
        """
        limit = self.max_body if max_body is None else max_body
        deadline = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(deadline):
                response = await self._open(method, path, params, content, headers, self._httpx_timeout)
                try:
                    body = await self._read_limited(response, limit)
                except httpx.HTTPError as exc:
                    raise self._map(exc, method, path) from None
                finally:
                    await response.aclose()
                return Response(response.status_code, response.headers, body)
        except TimeoutError:
            raise DeviceTimeout(
                self.device_id, f"no complete answer to {method} {path} within {deadline:g} s"
            ) from None

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Open a long-lived response (event streams, downloads); the caller bounds its reads.

        :param connect_timeout: seconds until the answer's headers (default: the timeout).
        :param read_timeout: seconds one read of the body may wait (default: the timeout);
            an event stream with heartbeats every N seconds wants more than N.
        """
        deadline = self.timeout if connect_timeout is None else connect_timeout
        timeout = httpx.Timeout(self.timeout, read=self.timeout if read_timeout is None else read_timeout)
        try:
            async with asyncio.timeout(deadline):
                response = await self._open(method, path, params, content, headers, timeout)
        except TimeoutError:
            raise DeviceTimeout(
                self.device_id, f"no answer to {method} {path} within {deadline:g} s"
            ) from None
        try:
            yield response
        except httpx.HTTPError as exc:
            raise self._map(exc, method, path) from None
        finally:
            await response.aclose()

    async def _open(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        content: bytes | str | None,
        headers: Mapping[str, str] | None,
        timeout: httpx.Timeout,
    ) -> httpx.Response:
        """Send a request; the answer's headers are in, its body is still to read (or close)."""
        request = self.client.build_request(
            method, self._parsed_url(path), params=params, content=content, headers=headers, timeout=timeout
        )
        try:
            response = await self.client.send(
                request, auth=self.auth or httpx.USE_CLIENT_DEFAULT, stream=True
            )
        except httpx.HTTPError as exc:
            raise self._map(exc, method, path) from None
        if response.status_code == 401:
            await response.aclose()
            raise DeviceAuthError(self.device_id, f"credentials refused (HTTP 401 on {path})")
        return response

    async def _read_limited(self, response: httpx.Response, limit: int) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise DeviceProtocolError(
                self.device_id, f"answer of {int(declared)} bytes exceeds the limit of {limit}"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > limit:
                raise DeviceProtocolError(self.device_id, f"answer exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = response.headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate", "br"):
            # Decompressed size is bounded too: a small bomb must not expand without limit.
            decoded = httpx.Response(200, headers={"content-encoding": encoding}, content=body).content
            if len(decoded) > limit:
                raise DeviceProtocolError(self.device_id, f"answer exceeds the limit of {limit} bytes")
            return decoded
        return body

    def _map(self, exc: httpx.HTTPError, method: str, path: str) -> DeviceError:
        where = f"{method} {path}"
        if isinstance(exc, httpx.TimeoutException):
            return DeviceTimeout(self.device_id, f"timed out ({where})")
        if isinstance(exc, httpx.ConnectError):
            return DeviceUnreachable(self.device_id, f"cannot connect to {self.base_url} ({where})")
        if isinstance(exc, httpx.RemoteProtocolError):
            return DeviceProtocolError(self.device_id, f"connection broken mid-answer ({where})")
        if isinstance(exc, httpx.NetworkError):
            return DeviceUnreachable(self.device_id, f"network error ({where}): {type(exc).__name__}")
        return DeviceProtocolError(self.device_id, f"HTTP error ({where}): {type(exc).__name__}")

    def check(self, response: Response, what: str) -> Response:
        """The usual status mapping: 2xx passes; 403/404/405/501 unsupported; other errors protocol."""
        if 200 <= response.status < 300:
            return response
        if response.status in (403, 404, 405, 501):
            raise DeviceUnsupported(self.device_id, f"{what}: the device answered HTTP {response.status}")
        raise DeviceProtocolError(self.device_id, f"{what}: the device answered HTTP {response.status}")


# -- XML --------------------------------------------------------------------------------------
def parse_xml(device_id: str, data: bytes | str) -> ET.Element:
    """Parse a device's XML safely: no DTD, no entities, no external references.

    :raises DeviceProtocolError: for malformed XML or any DTD/entity declaration.
    """
    try:
        if isinstance(data, bytes) and _without_dtd(data):
            return ET.fromstring(data)  # the C parser: nothing for defusedxml to refuse
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except ET.ParseError as exc:
        raise DeviceProtocolError(device_id, f"malformed XML: {exc}") from None
    except defusedxml.DefusedXmlException as exc:
        raise DeviceProtocolError(device_id, f"refused XML: {type(exc).__name__}") from None


def _without_dtd(data: bytes) -> bool:
    """True when ``data`` cannot hold a DTD (so no entity can be declared): UTF-8 or ASCII, as
    detected and as declared, with no ``<!`` anywhere. Anything else (a DOCTYPE, but also a
    comment, CDATA, UTF-16 or another declared encoding) is read by defusedxml's parser."""
    if b"<!" in data or b"\x00" in data[:4] or data.startswith((b"\xfe\xff", b"\xff\xfe")):
        return False
    declaration = data.removeprefix(b"\xef\xbb\xbf")
    if not declaration.startswith(b"<?xml"):
        return True
    declaration = declaration[: declaration.find(b"?>") + 1 or 256]
    if b"encoding" not in declaration:
        return True
    declared = _XML_ENCODING.search(declaration)
    return declared is not None and declared.group(1).lower() in _PLAIN_ENCODINGS


def local_name(tag: str) -> str:
    """``{namespace}name`` → ``name`` (vendors mix namespaces in one document)."""
    return tag.rsplit("}", 1)[-1]


def children(element: ET.Element | None, name: str) -> Iterator[ET.Element]:
    """Direct children of ``element`` whose local name is ``name``."""
    if element is not None:
        yield from (c for c in element if local_name(c.tag) == name)


def child(element: ET.Element | None, *path: str) -> ET.Element | None:
    """The first element down a path of local names, or None; ``"..."`` searches any depth."""
    current = element
    for name in path:
        if current is None:
            return None
        if name.startswith("//"):
            current = next((e for e in current.iter() if local_name(e.tag) == name[2:]), None)
        else:
            current = next(children(current, name), None)
    return current


def text(element: ET.Element | None, *path: str, default: str = "") -> str:
    """The stripped text at a path of local names, or ``default``."""
    found = child(element, *path)
    if found is None or found.text is None:
        return default
    return found.text.strip()


# -- multipart streams ------------------------------------------------------------------------
@attrs.frozen
class MultipartPart:
    """One part of a ``multipart/mixed`` or ``multipart/x-mixed-replace`` stream."""

    headers: Mapping[str, str]
    body: bytes


_TRAILER_PATIENCE = 0.2
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def boundary_of(content_type: str) -> str | None:
    """The boundary parameter of a multipart ``Content-Type``."""
    match = _BOUNDARY.search(content_type)
    return match.group(1).strip() if match else None


async def iter_multipart(
    device_id: str,
    chunks: AsyncIterator[bytes],
    boundary: str,
    *,
    max_part: int = 1024 * 1024,
    idle_timeout: float | None = None,
    complete: Callable[[bytes], bool] | None = None,
) -> AsyncGenerator[MultipartPart, None]:
    """Split a multipart byte stream into parts, by ``Content-Length`` or by boundary.

    Tolerates CRLF and bare LF line ends and a boundary given with or without its ``--``.
    A stream that ends between parts ends the iteration; one that ends inside a part raises
    :class:`~camhub.errors.DeviceProtocolError`, as does a part over ``max_part`` bytes. With
    ``idle_timeout``, a stream silent for that long raises :class:`~camhub.errors.DeviceTimeout`.
    ``complete`` tells when a part framed by boundaries only is whole (e.g. its XML root is
    closed), so it is delivered at once instead of when the next part begins.
    """
    marker = ("--" + boundary.removeprefix("--")).encode("latin-1")
    buffer = bytearray()
    source = aiter(chunks)
    ended = False

    pending: asyncio.Task[bytes] | None = None

    async def more(patience: float | None = None) -> bool:
        """Read one more chunk; False at the end, or when ``patience`` runs out first."""
        nonlocal ended, pending
        if ended:
            return False
        if pending is None:
            pending = asyncio.ensure_future(anext(source))
        wait = idle_timeout if patience is None else patience
        done, _ = await asyncio.wait({pending}, timeout=wait)
        if not done:
            if patience is not None:
                return False  # the read goes on; the caller decides without it
            pending.cancel()
            raise DeviceTimeout(device_id, f"event stream silent for {idle_timeout:g} s")
        task, pending = pending, None
        try:
            chunk = task.result()
        except StopAsyncIteration:
            ended = True
            return False
        buffer.extend(chunk)
        if len(buffer) > max_part + 64 * 1024:
            raise DeviceProtocolError(device_id, f"multipart part exceeds {max_part} bytes")
        return True

    try:
        while True:
            # Find the next boundary line.
            while (start := buffer.find(marker)) < 0:
                if len(buffer) > len(marker):
                    del buffer[: len(buffer) - len(marker)]
                if not await more():
                    if buffer.strip():
                        raise DeviceProtocolError(device_id, "multipart stream ended inside a part")
                    return
            # The boundary line ends at the next LF.
            while (line_end := buffer.find(b"\n", start)) < 0:
                if not await more():
                    return
            closing = buffer[start + len(marker) : line_end].strip() == b"--"
            del buffer[: line_end + 1]
            if closing:
                return
            # Headers end at an empty line.
            while (head_end := _header_end(buffer)) is None:
                if not await more():
                    if buffer.strip():
                        raise DeviceProtocolError(device_id, "multipart stream ended inside part headers")
                    return
            header_block, body_start = head_end
            headers = _parse_headers(bytes(buffer[:header_block]))
            del buffer[:body_start]
            length = headers.get("content-length", "")
            size = int(length) if length.isdigit() else -1
            if size > max_part:
                raise DeviceProtocolError(device_id, f"multipart part of {size} bytes exceeds {max_part}")
            while size >= 0 and len(buffer) < size + len(marker) + 4:
                # Wait briefly for what follows the declared length, to check it; a live stream
                # may say nothing more for a while, and an event must not wait for the next one.
                if not await more(_TRAILER_PATIENCE if len(buffer) >= size else None):
                    break
            if size >= 0 and len(buffer) < size:
                raise DeviceProtocolError(device_id, "multipart stream ended inside a part")
            if size >= 0 and _boundary_follows(buffer, size, marker):
                body = bytes(buffer[:size])
                del buffer[:size]
            else:
                # No length, or a wrong one (seen on real devices): the boundary decides.
                while (end := buffer.find(marker)) < 0:
                    if complete is not None and complete(bytes(buffer).rstrip(b"\r\n")):
                        end = len(buffer)
                        break
                    if not await more():
                        if 0 <= size <= len(buffer):
                            # At least the declared bytes arrived before the stream ended: the part
                            # is whole, only its length was wrong. Without a length it may be torn.
                            yield MultipartPart(headers, bytes(buffer).rstrip(b"\r\n"))
                            return
                        raise DeviceProtocolError(device_id, "multipart stream ended inside a part")
                body = bytes(buffer[:end]).rstrip(b"\r\n")
                del buffer[:end]
            yield MultipartPart(headers, body)
    finally:
        # Closed early (the consumer stopped) or failed: the read under way must not outlive
        # the stream, nor its failure be reported as never retrieved.
        if pending is not None:
            pending.cancel()
            pending.add_done_callback(_retrieved)


def _retrieved(task: asyncio.Task[bytes]) -> None:
    if not task.cancelled():
        task.exception()


def _boundary_follows(buffer: bytearray, size: int, marker: bytes) -> bool:
    """True when only line ends (or the end of what has arrived) lie between a declared body
    length and the next boundary, i.e. the ``Content-Length`` can be trusted."""
    rest = bytes(buffer[size : size + len(marker) + 4]).lstrip(b"\r\n")
    return marker.startswith(rest) if len(rest) < len(marker) else rest.startswith(marker)


def _header_end(buffer: bytearray) -> tuple[int, int] | None:
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = buffer.find(separator)
        if index >= 0:
            return index, index + len(separator)
    if buffer.startswith(b"\r\n"):
        return 0, 2
    if buffer.startswith(b"\n"):
        return 0, 1
    return None


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
