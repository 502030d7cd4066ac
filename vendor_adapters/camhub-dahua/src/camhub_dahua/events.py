"""Dahua event streams: the framing of ``eventManager.cgi?action=attach`` and its normalisation.

The device answers ``multipart/x-mixed-replace; boundary=myboundary`` and writes one part per
event (``Code=VideoMotion;action=Start;index=0;data={…}``) and, when asked, a ``Heartbeat`` part
every few seconds. Parts usually carry a ``Content-Length``, and a part is delivered as soon as
that many bytes and the line ends after them are in — but the length is not trusted blindly:
when the bytes after it are not the end of the part (line ends, then the next boundary), the
length is wrong (the peer capture ``cgi_eventManager_attach_videomotion.txt`` has a part longer
than it declares) and the boundary decides. When the bytes stop exactly at the declared length,
the part is delivered after a short grace (0.2 s) in which nothing more arrived. Event ``index``
is 0-based; camhub channels are 1-based.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from camhub.adapter import DeviceEvent, EventKind
from camhub.errors import DeviceProtocolError, DeviceTimeout

__all__ = [
    "DEFAULT_BOUNDARY",
    "EventRecord",
    "FramingError",
    "PartFramer",
    "iter_parts",
    "parse_event_body",
    "split_parts",
    "to_device_event",
]

#: The boundary Dahua firmware uses (also when its Content-Type forgets to say so).
DEFAULT_BOUNDARY = "myboundary"
#: Largest event part accepted (intelligent-video events carry object lists; a few KB is usual).
MAX_PART = 1024 * 1024
_MAX_HEADERS = 16 * 1024

_KINDS: dict[str, EventKind] = {
    "videomotion": EventKind.MOTION,
    "videoloss": EventKind.VIDEO_LOSS,
    "videoblind": EventKind.TAMPER,
    "storagefailure": EventKind.STORAGE_FAULT,
    "storagenotexist": EventKind.STORAGE_FAULT,
    "storagelowspace": EventKind.STORAGE_FAULT,
    "loginfailure": EventKind.LOGIN_FAILURE,
}
#: Codes whose ``index`` is not a video channel (a disk, a user, the device itself).
_NOT_A_CHANNEL = frozenset(
    {
        "storagefailure",
        "storagenotexist",
        "storagelowspace",
        "storagelimit",
        "loginfailure",
        "ntpadjusttime",
        "reboot",
        "shutdown",
        "networkabort",
        "ipconflict",
        "timechange",
    }
)
#: Event times outside these years are a device clock that was never set, not a time.
_PLAUSIBLE_EPOCHS = (
    datetime(2000, 1, 1, tzinfo=UTC).timestamp(),
    datetime(2100, 1, 1, tzinfo=UTC).timestamp(),
)


class FramingError(Exception):
    """The multipart stream is broken (truncated, oversized); the caller names the device."""


class PartFramer:
    """Splits a Dahua multipart byte stream into part bodies, without doing any I/O.

    :meth:`feed` bytes as they arrive, then call :meth:`next_part` until it returns None (it
    needs more bytes); at the end of the stream call it with ``eof=True``.
    """

    def __init__(self, boundary: str = DEFAULT_BOUNDARY, *, max_part: int = MAX_PART) -> None:
        self._marker = ("--" + boundary.removeprefix("--")).encode("latin-1")
        self._buffer = bytearray()
        self._max_part = max_part
        #: True once the closing boundary (``--myboundary--``) was read.
        self.closed = False
        self._at_length: tuple[int, int] | None = None

    @property
    def unconfirmed(self) -> bool:
        """True when the last :meth:`next_part` found a part whose bytes stop exactly at its
        declared length: :meth:`settle` delivers it if nothing more arrives."""
        return self._at_length is not None

    def settle(self) -> bytes:
        """The unconfirmed part, by its declared length (nothing followed it)."""
        if self._at_length is None:
            raise FramingError("no part is waiting")
        start, size = self._at_length
        self._at_length = None
        body = bytes(self._buffer[start : start + size])
        del self._buffer[: start + size]
        return body

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > self._max_part + _MAX_HEADERS + len(self._marker):
            raise FramingError(f"a part exceeds {self._max_part} bytes")

    def next_part(self, *, eof: bool = False) -> bytes | None:
        """The next complete part body, or None when more bytes are needed (or, at ``eof``, none is left).

        :raises FramingError: when the stream ends inside a part.
        """
        self._at_length = None
        if self.closed:
            return None
        buf, marker = self._buffer, self._marker
        start = buf.find(marker)
        if start < 0:
            if eof:
                if bytes(buf).strip():
                    raise FramingError("the stream ended inside a part")
                return None
            if len(buf) > len(marker):  # bytes between parts: keep only what may begin a boundary
                del buf[: len(buf) - len(marker)]
            return None
        line_end = buf.find(b"\n", start)
        if line_end < 0:
            if eof:
                if bytes(buf[start + len(marker) :]).strip() == b"--":
                    self.closed = True
                    return None
                raise FramingError("the stream ended inside a boundary line")
            return None
        if bytes(buf[start + len(marker) : line_end]).strip() == b"--":
            self.closed = True
            del buf[: line_end + 1]
            return None
        head = _header_end(buf, line_end + 1)
        if head is None:
            if eof:
                raise FramingError("the stream ended inside part headers")
            if len(buf) - line_end > _MAX_HEADERS:
                raise FramingError(f"part headers exceed {_MAX_HEADERS} bytes")
            return None
        headers = _parse_headers(bytes(buf[line_end + 1 : head[0]]))
        body_start = head[1]
        declared = headers.get("content-length", "")
        has_length = declared.isdigit()
        if has_length:
            size = int(declared)
            if size > self._max_part:
                raise FramingError(f"a part of {size} bytes exceeds {self._max_part}")
            early = buf.find(marker, body_start)
            if not 0 <= early < body_start + size:  # (a boundary inside the declared length: it lied)
                if len(buf) - body_start < size:
                    if eof:
                        raise FramingError("the stream ended inside a part")
                    return None
                after = bytes(buf[body_start + size : body_start + size + len(marker) + 4])
                if not after and not eof:
                    self._at_length = (body_start, size)
                    return None
                if self._ends_here(after):
                    body = bytes(buf[body_start : body_start + size])
                    del buf[: body_start + size]
                    return body
        end = buf.find(marker, body_start)
        if end < 0:
            if len(buf) - body_start > self._max_part:
                raise FramingError(f"a part exceeds {self._max_part} bytes")
            if eof and has_length:  # the declared bytes all arrived; the part ran on to the end
                body = bytes(buf[body_start:]).rstrip(b"\r\n")
                buf.clear()
                return body
            if eof:
                raise FramingError("the stream ended inside a part")
            return None
        body = bytes(buf[body_start:end]).rstrip(b"\r\n")
        del buf[:end]
        return body

    def _ends_here(self, after: bytes) -> bool:
        """Whether the bytes after a declared length are the end of the part: nothing (at the
        end of the stream), or line ends followed by nothing or by (the start of) a boundary."""
        if not after:
            return True
        rest = after.lstrip(b"\r\n")
        if rest == after:
            return False
        return self._marker.startswith(rest) or rest.startswith(self._marker)


def _header_end(buf: bytearray, start: int) -> tuple[int, int] | None:
    if buf.startswith(b"\r\n", start):
        return start, start + 2
    if buf.startswith(b"\n", start):
        return start, start + 1
    found = [(i, i + len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := buf.find(sep, start)) >= 0]
    return min(found) if found else None


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def split_parts(data: bytes, boundary: str = DEFAULT_BOUNDARY, *, max_part: int = MAX_PART) -> list[bytes]:
    """The part bodies of a whole recorded stream (a capture file)."""
    framer = PartFramer(boundary, max_part=max_part)
    framer.feed(data)
    parts = []
    while (part := framer.next_part(eof=True)) is not None:
        parts.append(part)
    return parts


async def iter_parts(
    device_id: str,
    chunks: AsyncIterator[bytes],
    boundary: str = DEFAULT_BOUNDARY,
    *,
    idle_timeout: float,
    max_part: int = MAX_PART,
    grace: float = 0.2,
) -> AsyncGenerator[bytes, None]:
    """Part bodies as they arrive; a stream silent for ``idle_timeout`` seconds raises
    :class:`~camhub.errors.DeviceTimeout`, a broken one :class:`~camhub.errors.DeviceProtocolError`.
    Returns when the stream ends between parts. Close it (``aclosing``) when done early."""
    framer = PartFramer(boundary, max_part=max_part)
    source = aiter(chunks)
    # The next read runs as a task that outlives a grace wait: cancelling a read would close
    # the HTTP body's iterator and so end the stream.
    pending: asyncio.Task[bytes | None] | None = None
    eof = False
    try:
        while True:
            try:
                part = framer.next_part(eof=eof)
            except FramingError as exc:
                raise DeviceProtocolError(device_id, f"event stream: {exc}") from None
            if part is not None:
                yield part
                continue
            if eof or framer.closed:
                return
            if pending is None:
                pending = asyncio.ensure_future(_next_chunk(source))
            done, _ = await asyncio.wait({pending}, timeout=grace if framer.unconfirmed else idle_timeout)
            if not done:
                if framer.unconfirmed:
                    yield framer.settle()
                    continue
                raise DeviceTimeout(device_id, f"event stream silent for {idle_timeout:g} s")
            chunk = pending.result()
            pending = None
            if chunk is None:
                eof = True
                continue
            try:
                framer.feed(chunk)
            except FramingError as exc:
                raise DeviceProtocolError(device_id, f"event stream: {exc}") from None
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


async def _next_chunk(source: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(source)
    except StopAsyncIteration:
        return None


@attrs.frozen
class EventRecord:
    """One event part as the device wrote it: ``Code=…;action=…;index=…;…;data={…}``."""

    code: str
    action: str
    index: int | None
    #: Every ``key=value`` before ``data``, keys as written (unknown ones included).
    fields: Mapping[str, str]
    #: ``data`` parsed as JSON, or None when absent or not JSON.
    data: Any
    heartbeat: bool = False


def parse_event_body(text: str) -> EventRecord:
    """Read an event part body; tolerant of unknown keys, missing ones and ``data`` that is not JSON."""
    stripped = text.strip()
    if stripped.lower() == "heartbeat":
        return EventRecord(code="Heartbeat", action="", index=None, fields={}, data=None, heartbeat=True)
    fields: dict[str, str] = {}
    data: Any = None
    position = 0
    while position < len(stripped):
        equals = stripped.find("=", position)
        if equals < 0:
            break
        key = stripped[position:equals].strip()
        if key.lower() == "data":  # the rest is JSON, which may itself hold ';' and '='
            data = _json_or_none(stripped[equals + 1 :])
            break
        semicolon = stripped.find(";", equals + 1)
        end = len(stripped) if semicolon < 0 else semicolon
        fields[key] = stripped[equals + 1 : end].strip()
        position = end + 1
    lower = {key.lower(): value for key, value in fields.items()}
    index_text = lower.get("index", "")
    index = int(index_text) if index_text.isdigit() else None
    return EventRecord(
        code=lower.get("code", ""),
        action=lower.get("action", ""),
        index=index,
        fields=fields,
        data=data,
        heartbeat=lower.get("code", "").lower() == "heartbeat",
    )


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def to_device_event(device_id: str, body: bytes, *, received: datetime) -> DeviceEvent:
    """A part body as a :class:`~camhub.adapter.DeviceEvent`, the body kept whole as its payload.

    The time is the event's own ``UTC`` (seconds since the epoch, by the device's clock) when it
    carries a plausible one, else ``received``.
    """
    payload = body.decode("utf-8", "replace")
    record = parse_event_body(payload)
    if record.heartbeat:
        return DeviceEvent(
            device_id=device_id,
            kind=EventKind.HEARTBEAT,
            active=True,
            time=received,
            vendor_type="Heartbeat",
            payload=payload,
        )
    code = record.code.lower()
    channel = None if record.index is None or code in _NOT_A_CHANNEL else record.index + 1
    return DeviceEvent(
        device_id=device_id,
        kind=_KINDS.get(code, EventKind.OTHER),
        active=record.action.lower() != "stop",
        time=_event_time(record.data) or received,
        channel=channel,
        vendor_type=record.code,
        payload=payload,
    )


def _event_time(data: Any) -> datetime | None:
    if not isinstance(data, dict):
        return None
    value = data.get("UTC")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not _PLAUSIBLE_EPOCHS[0] <= value < _PLAUSIBLE_EPOCHS[1]:
        return None
    return datetime.fromtimestamp(value, tz=UTC)
