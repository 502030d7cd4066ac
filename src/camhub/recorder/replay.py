"""An RTSP relay on loopback that lets FFmpeg play a device's recording (ONVIF replay, playback).

FFmpeg's RTSP client cannot add request headers, and ONVIF replay needs them (ONVIF Streaming
Specification, replay): ``Require: onvif-replay`` on each request, and on ``PLAY`` the span as
``Range: clock=<start>-<end>`` (and ``Rate-Control: no`` to receive it as fast as the device can
send). :class:`RtspRelay` sits between FFmpeg and the device for one RTSP-over-TCP connection:
it passes every byte through, adds those headers to FFmpeg's requests, and reads the device's
answer to ``PLAY``, whose ``Range`` says where playback actually starts (RFC 2326 §12.29: the
range being played) — a device starts at a keyframe, which may lie before the time asked for.

The relay does not parse media (interleaved ``$`` frames are only skipped over) and never sees
credentials in clear: FFmpeg answers the device's Digest challenge itself, through the relay.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

__all__ = ["RtspRelay"]

#: Headers that only a PLAY request carries; every other added header goes on every request.
_PLAY_ONLY = frozenset({"range", "rate-control", "scale", "speed"})
_CLOCK = re.compile(r"clock\s*=\s*(\d{8}T\d{6}(?:\.\d+)?)Z", re.IGNORECASE)
_CSEQ = re.compile(rb"^cseq\s*:\s*(\d+)", re.IGNORECASE | re.MULTILINE)
_CHUNK = 64 * 1024
_MAX_HEAD = 64 * 1024 + 8  # an interleaved frame's 4-byte header and up to 65,535 bytes of data


class RtspRelay:
    """One RTSP connection relayed from loopback to ``url``'s host, with ``headers`` added.

    Use as a context manager; give FFmpeg :meth:`url_for` of the device URL (credentials in it
    stay between FFmpeg and the device). After playback started, :attr:`played_from` is the start
    the device named in its ``PLAY`` answer (``Range: clock=…``), or ``None``.

    :param url: the device's RTSP URL (its host and port are where the relay connects).
    :param headers: headers to add (``Range``, ``Rate-Control``, ``Scale``, ``Speed`` to ``PLAY``
        only, replacing FFmpeg's own; the others to every request).
    :param timeout: seconds to wait for FFmpeg to connect, and for the device to accept.
    """

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "rtsp" or not parts.hostname:
            raise ValueError("an RTSP relay needs an rtsp:// URL with a host")
        self._target = (parts.hostname, parts.port or 554)
        self._headers = {name.strip(): value for name, value in (headers or {}).items()}
        self._timeout = timeout
        self.played_from: datetime | None = None
        #: Why the relay could not reach the device, when it could not.
        self.error: str | None = None
        self._plays: set[bytes] = set()  # CSeq values of PLAY requests
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(timeout)
        self._threads = [threading.Thread(target=self._serve, name="rtsp-relay", daemon=True)]
        self._threads[0].start()

    @property
    def port(self) -> int:
        """The loopback port the relay listens on."""
        return int(self._listener.getsockname()[1])

    def url_for(self, url: str) -> str:
        """``url`` (credentials kept) pointed at the relay instead of the device."""
        parts = urlsplit(url)
        userinfo, at, _ = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{userinfo}{at}127.0.0.1:{self.port}"))

    def close(self) -> None:
        """Close both sides and stop relaying."""
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(2.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- relaying ------------------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return  # closed before FFmpeg connected
        try:
            upstream = socket.create_connection(self._target, timeout=self._timeout)
        except OSError as exc:
            self.error = f"cannot connect to {self._target[0]}:{self._target[1]}: {exc.strerror or exc}"
            client.close()
            return
        upstream.settimeout(None)
        client.settimeout(None)
        with self._lock:
            self._sockets += [client, upstream]
        answers = threading.Thread(target=self._pump, args=(upstream, client, self._answers), daemon=True)
        self._threads.append(answers)
        answers.start()
        self._pump(client, upstream, self._requests)

    def _pump(
        self, source: socket.socket, sink: socket.socket, edit: Callable[[bytearray], tuple[bytes, int]]
    ) -> None:
        """Copy ``source`` to ``sink`` through ``edit`` until either side closes."""
        pending = bytearray()
        try:
            while data := source.recv(_CHUNK):
                pending += data
                out, used = edit(pending)
                del pending[:used]
                if out:
                    sink.sendall(out)
                if len(pending) > _MAX_HEAD:
                    break  # not RTSP
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _requests(self, buffer: bytearray) -> tuple[bytes, int]:
        """FFmpeg's complete requests in ``buffer``, with the headers added; bytes consumed."""
        out = bytearray()
        at = 0
        for start, end, is_message in _messages(buffer):
            message = bytes(buffer[start:end])
            out += self._edit_request(message) if is_message else message
            at = end
        return bytes(out), at

    def _edit_request(self, message: bytes) -> bytes:
        head, _, body = message.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        method = lines[0].split(" ", 1)[0].upper()
        adding = {k: v for k, v in self._headers.items() if method == "PLAY" or k.lower() not in _PLAY_ONLY}
        replaced = {k.lower() for k in adding}
        kept = [line for line in lines[1:] if line.partition(":")[0].strip().lower() not in replaced]
        if method == "PLAY":
            match = _CSEQ.search(head)
            if match is not None:
                self._plays.add(match.group(1))
        edited = [lines[0], *kept, *(f"{k}: {v}" for k, v in adding.items())]
        return "\r\n".join(edited).encode("utf-8") + b"\r\n\r\n" + body

    def _answers(self, buffer: bytearray) -> tuple[bytes, int]:
        """The device's bytes, unchanged, up to the last complete message; notes the PLAY answer."""
        at = 0
        for start, end, is_message in _messages(buffer):
            if is_message and self._plays:
                self._note_play_answer(bytes(buffer[start:end]))
            at = end
        return bytes(buffer[:at]), at

    def _note_play_answer(self, message: bytes) -> None:
        head = message.partition(b"\r\n\r\n")[0]
        match = _CSEQ.search(head)
        if match is None or match.group(1) not in self._plays:
            return
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            clock = _CLOCK.search(value) if name.strip().lower() == "range" else None
            if clock is not None:
                whole, _, fraction = clock.group(1).partition(".")
                try:  # strptime reads at most six digits of a fraction
                    at = datetime.strptime(whole, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
                    self.played_from = at.replace(microsecond=int(fraction[:6].ljust(6, "0")))
                except ValueError:
                    pass  # not a time: playback is placed where it was asked for


def _messages(buffer: bytearray) -> list[tuple[int, int, bool]]:
    """The complete units at the start of ``buffer``: ``(start, end, is_rtsp_message)``.

    A unit is an interleaved frame (``$``, channel, 16-bit length, data) or an RTSP message
    (head, blank line, ``Content-Length`` bytes of body); an incomplete one ends the list.
    """
    units = []
    at = 0
    size = len(buffer)
    while at < size:
        if buffer[at] == 0x24:
            if size - at < 4:
                break
            end = at + 4 + int.from_bytes(buffer[at + 2 : at + 4], "big")
            if end > size:
                break
            units.append((at, end, False))
            at = end
            continue
        head_end = buffer.find(b"\r\n\r\n", at)
        if head_end < 0:
            break
        length = re.search(rb"^content-length\s*:\s*(\d+)", bytes(buffer[at:head_end]), re.I | re.M)
        end = head_end + 4 + (int(length.group(1)) if length else 0)
        if end > size:
            break
        units.append((at, end, True))
        at = end
    return units
