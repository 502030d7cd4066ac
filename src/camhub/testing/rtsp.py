"""A live RTSP 1.0 server for the simulators: each path plays a clip in a loop, as a camera would.

:class:`RtspServer` serves :class:`~camhub.testing.media.Clip` objects over RTSP with RTP/AVP/TCP
interleaved transport (what recorders use through NAT and firewalls; UDP is answered with
461 Unsupported Transport). Each path is a live source: its clock starts when the path is added,
every client sees the same picture at the same time, and a client that joins mid-stream starts
at the next keyframe, which is preceded in-band by its SPS and PPS as cameras send them. A path
added with ``video=False`` serves only the clip's audio, as a camera's microphone channel does:
its SDP describes the audio track alone and a client that joins starts at the next audio frame.

Packetization follows RFC 6184 (H.264: single NAL unit packets and FU-A, marker on the last
packet of each access unit), RFC 3640 (AAC-hbr, one AU per packet) and RFC 3551 (PCMU). RTCP
sender reports go out on the interleaved RTCP channel every few seconds, so clients can map RTP
time to wall-clock time. With a username and password the server challenges like a camera:
Digest (MD5), Basic accepted too.

Cost: one scheduler task per path (idle while nobody plays it) packetizes nothing at run time —
the payloads of a clip are cut once and shared by every path that plays it — and fans each
access unit out to all of that path's sessions; what one wake-up sends goes to each client in a
single non-blocking write. A client whose socket falls more than ``max_buffer`` bytes behind is
dropped rather than buffered without bound.

Recordings: the path's timeline is what the device "recorded" all along (also while the path
was paused by a fault). :meth:`RtspServer.add_replay_path` serves it as a recorder's RTSP
playback does (Hikvision's ``starttime``/``endtime`` URL, or ONVIF replay with
``Require: onvif-replay`` and ``Range: clock=…``), and :meth:`RtspServer.save_recording` writes
a span of it into a file, as a device keeps it on its disk (Dahua's downloads).

Faults for tests: :meth:`RtspServer.freeze` / :meth:`RtspServer.thaw` (a SIGSTOP-ed server: no
packets, no answers, sockets open), :meth:`RtspServer.close_all_sessions` (a crash: every socket
closed) and :meth:`RtspServer.set_paused` (one path stops sending, RTSP still answers).

Every method must be called from the thread running the server's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import email.utils
import hashlib
import hmac
import math
import re
import secrets
import socket
import struct
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

import attrs
import av

from camhub.log import get_logger
from camhub.testing.media import Clip

__all__ = ["RtspServer"]

#: RTP payload types: dynamic ones for H.264 and AAC, the static one for PCMU.
_PT_H264, _PT_AAC, _PT_PCMU = 96, 97, 0
_VIDEO_TRACK, _AUDIO_TRACK = 0, 1
#: How early an event may go out. Events this close together share one wake-up and one socket
#: write per client: on loopback the send() system call is most of the cost of serving a stream,
#: and 20 ms of jitter is less than a camera's network adds.
_SLACK = 0.02
#: A scheduler this far behind the clock (a blocked event loop) skips ahead, as a live source does.
_MAX_LAG = 2.0
_SR_INTERVAL = 5.0
#: Seconds between 1900 (NTP) and 1970 (Unix).
_NTP_EPOCH = 2208988800
_MAX_REQUEST = 64 * 1024
_RTP_HEADER = struct.Struct("!BBHBBHII")  # interleave '$', channel, length; then the RTP header
_PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
_METHODS = frozenset(_PUBLIC.replace(",", " ").split())
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Stream Not Found",
    405: "Method Not Allowed",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
}
_TRACK_RE = re.compile(r"(?:trackID|track)=?(\d+)$")
_AUTH_PARAM_RE = re.compile(r'(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


# --- packetization (done once per clip) ----------------------------------------------------------


def _h264_payloads(nal_units: Sequence[bytes], mtu: int) -> tuple[bytes, ...]:
    """RTP payloads of one access unit (RFC 6184): single NAL unit packets, FU-A above ``mtu``."""
    payloads: list[bytes] = []
    for nal in nal_units:
        if len(nal) <= mtu:
            payloads.append(nal)
            continue
        indicator = bytes([(nal[0] & 0xE0) | 28])
        nal_type = nal[0] & 0x1F
        body = nal[1:]
        step = mtu - 2
        for start in range(0, len(body), step):
            flags = (0x80 if start == 0 else 0) | (0x40 if start + step >= len(body) else 0)
            payloads.append(indicator + bytes([flags | nal_type]) + body[start : start + step])
    return tuple(payloads)


@attrs.frozen
class _Packetized:
    """A clip cut into RTP payloads once; every path playing the clip shares it."""

    clip: Clip
    video: tuple[tuple[bytes, ...], ...]
    video_pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    audio: tuple[bytes, ...]
    audio_pts: tuple[int, ...]

    @classmethod
    def of(cls, clip: Clip, mtu: int) -> _Packetized:
        video = []
        for au in clip.video:
            nals = list(au.nal_units)
            # Cameras repeat SPS and PPS in-band before every IDR: a client joining mid-stream
            # (or one that ignores sprop-parameter-sets) can start decoding at any keyframe.
            if au.keyframe and not any(n[0] & 0x1F == 7 for n in nals):
                nals[:0] = [clip.sps, clip.pps]
            video.append(_h264_payloads(nals, mtu))
        if clip.audio_codec == "aac":
            # RFC 3640 AAC-hbr: AU-headers-length (16 bits) then one header: 13-bit size, 3-bit index.
            audio = tuple(struct.pack("!HH", 16, len(u.data) << 3) + u.data for u in clip.audio)
        else:
            audio = tuple(u.data for u in clip.audio)
        return cls(
            clip=clip,
            video=tuple(video),
            video_pts=tuple(au.pts for au in clip.video),
            keyframes=tuple(i for i, au in enumerate(clip.video) if au.keyframe),
            audio=audio,
            audio_pts=tuple(u.pts for u in clip.audio),
        )


# --- sessions and paths --------------------------------------------------------------------------


@attrs.define(eq=False)
class _Track:
    """One set-up stream of a session: its interleaved channels and RTP sender state."""

    kind: int  # _VIDEO_TRACK or _AUDIO_TRACK
    url: str
    rtp_channel: int
    rtcp_channel: int
    ssrc: int
    seq: int = attrs.field(factory=lambda: secrets.randbelow(0x10000))
    packets: int = 0
    octets: int = 0


@attrs.define(eq=False)
class _Session:
    id: str
    connection: _Connection
    path: _Path
    tracks: dict[int, _Track] = attrs.field(factory=dict)
    playing: bool = False
    started: bool = False
    #: The first video access unit (a keyframe) and audio frame it gets, as global indices.
    start_video: int = 0
    start_audio: int = 0
    touched: float = attrs.field(factory=time.monotonic)
    #: The task sending a recorded span (sessions of a replay path).
    replay: asyncio.Task[None] | None = None


class _Path:
    """A live source: a clip looping on a clock that started when the path was added."""

    def __init__(self, server: RtspServer, name: str, media: _Packetized, *, video: bool = True) -> None:
        self.server = server
        self.name = name
        self.media = media
        #: False for an audio-only path (a microphone): the clip's video is never sent or described.
        self.has_video = video
        clip = media.clip
        # The timeline starts on a whole second of the wall clock (Unix time ``wall_start``), so a
        # recording of it can start exactly on the second, as devices list their files.
        wall = time.time()
        self.start = time.monotonic() - wall % 1
        self.wall_start = math.floor(wall)
        # The wall-clock (NTP, 32.32 fixed point) at the same instant: sender reports count from it
        # on the monotonic clock, so every report lies exactly on the RTP clock's line.
        self.ntp_start = (self.wall_start + _NTP_EPOCH) << 32
        #: A replay path: it serves the recording of a live path, on that path's clock.
        self.replay = False
        self.onvif = False
        self.video_ssrc = secrets.randbits(32)
        self.audio_ssrc = secrets.randbits(32)
        # Random RTP timestamp bases, as RFC 3550 asks and cameras do.
        self.video_base = secrets.randbits(32)
        self.audio_base = secrets.randbits(32)
        self.has_audio = clip.audio_codec is not None and bool(clip.audio)
        self.sessions: list[_Session] = []
        self.paused = False
        self.next_video = 0
        self.next_audio = 0
        self.next_report = 0.0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.session_id = secrets.randbits(48)
        self._sdp_cache: dict[str, bytes] = {}

    # The timeline: a global index g counts access units (or audio frames) across loops. Start
    # points are worked out in integer clock ticks, so RTP-Info names exactly the packet sent first.

    def video_ticks(self, g: int) -> int:
        """Presentation time of access unit ``g`` in 90 kHz ticks since the path started."""
        loop, i = divmod(g, len(self.media.video_pts))
        return loop * self.media.clip.duration + self.media.video_pts[i]

    def video_time(self, g: int) -> float:
        if not self.has_video:
            return math.inf
        return self.start + self.video_ticks(g) / 90000

    def video_rtp(self, g: int) -> int:
        return (self.video_base + self.video_ticks(g)) & 0xFFFFFFFF

    def video_index_at(self, t: float) -> int:
        """The first access unit due at or after ``t``."""
        ticks = max(0.0, (t - self.start) * 90000)
        loop, within = divmod(ticks, self.media.clip.duration)
        i = bisect.bisect_left(self.media.video_pts, within)
        return int(loop) * len(self.media.video_pts) + i

    def next_keyframe(self, g: int) -> int:
        n = len(self.media.video_pts)
        loop, i = divmod(g, n)
        j = bisect.bisect_left(self.media.keyframes, i)
        if j == len(self.media.keyframes):
            return (loop + 1) * n + self.media.keyframes[0]
        return loop * n + self.media.keyframes[j]

    def keyframe_at_or_before(self, g: int) -> int:
        n = len(self.media.video_pts)
        loop, i = divmod(g, n)
        j = bisect.bisect_right(self.media.keyframes, i) - 1
        return loop * n + self.media.keyframes[j]  # the clip starts with a keyframe: j >= 0

    def wall(self, t: float) -> float:
        """The Unix time of monotonic time ``t`` on this path's timeline."""
        return self.wall_start + (t - self.start)

    def audio_time(self, g: int) -> float:
        if not self.has_audio:
            return math.inf
        clip = self.media.clip
        loop, i = divmod(g, len(self.media.audio_pts))
        return self.start + (loop * clip.audio_duration + self.media.audio_pts[i]) / clip.audio_rate

    def audio_rtp(self, g: int) -> int:
        loop, i = divmod(g, len(self.media.audio_pts))
        return (
            self.audio_base + loop * self.media.clip.audio_duration + self.media.audio_pts[i]
        ) & 0xFFFFFFFF

    def audio_index_at(self, t: float) -> int:
        """The first audio frame due at or after ``t`` (the start of an audio-only schedule)."""
        clip = self.media.clip
        samples = max(0.0, (t - self.start) * clip.audio_rate)
        loop, within = divmod(samples, clip.audio_duration)
        i = bisect.bisect_left(self.media.audio_pts, within)
        return int(loop) * len(self.media.audio_pts) + i

    def audio_index_from(self, ticks: int) -> int:
        """The first audio frame that starts at or after ``ticks`` (90 kHz)."""
        if not self.has_audio:
            return 0
        clip = self.media.clip
        samples = -(-ticks * clip.audio_rate // 90000)  # rounded up
        loop, within = divmod(samples, clip.audio_duration)
        return loop * len(self.media.audio_pts) + bisect.bisect_left(self.media.audio_pts, within)

    def report_clock(self, kind: int, now: float) -> tuple[int, int]:
        """(NTP timestamp, RTP timestamp) of one instant near ``now`` for a sender report.

        The instant is a whole tick of the track's clock and the NTP time is computed from it in
        integers: clients that re-time packets from reports (FFmpeg does) then see no jitter.
        """
        rate = 90000 if kind == _VIDEO_TRACK else self.media.clip.audio_rate
        base = self.video_base if kind == _VIDEO_TRACK else self.audio_base
        ticks = int((now - self.start) * rate)
        return self.ntp_start + (ticks << 32) // rate, (base + ticks) & 0xFFFFFFFF

    # Playing.

    def active(self) -> bool:
        return bool(self.sessions) and not self.paused and not self.server.frozen

    def resync(self, now: float) -> None:
        """Jump the schedule to ``now`` (after idling or a fault); sessions restart at a keyframe.

        An audio-only path has no keyframes: its sessions restart at the next audio frame.
        """
        if self.has_video:
            self.next_video = self.video_index_at(now)
            self.next_audio = self.audio_index_from(self.video_ticks(self.next_video))
        else:
            self.next_audio = self.audio_index_at(now)
        for session in self.sessions:
            self.schedule_start(session)

    def schedule_start(self, session: _Session) -> None:
        """Make ``session`` start at the next keyframe the scheduler has not sent yet.

        A session without video (an audio-only path, or a client that set up audio alone) starts
        at the next audio frame.
        """
        if _VIDEO_TRACK in session.tracks:
            session.start_video = self.next_keyframe(self.next_video)
            # Everything sent so far is due before next_video, so this is never in the past.
            session.start_audio = self.audio_index_from(self.video_ticks(session.start_video))
        else:
            session.start_audio = self.next_audio
        session.started = False

    def play(self, session: _Session) -> list[tuple[_Track, int]]:
        """Add a session to the live source; returns each track's first RTP timestamp."""
        if not self.active() or not self.sessions:
            self.resync(time.monotonic())
        self.schedule_start(session)
        session.playing = True
        self.sessions.append(session)
        self.wake.set()
        first: list[tuple[_Track, int]] = []
        for kind, track in sorted(session.tracks.items()):
            if kind == _VIDEO_TRACK:
                first.append((track, self.video_rtp(session.start_video)))
            else:
                first.append((track, self.audio_rtp(session.start_audio)))
        return first

    def stop_playing(self, session: _Session) -> None:
        session.playing = False
        with contextlib.suppress(ValueError):
            self.sessions.remove(session)

    async def run(self) -> None:
        """The path's scheduler: send each access unit and audio frame at its time, to every session."""
        try:
            await self._run()
        except Exception:
            # A dead scheduler is a camera that went silent: say why, loudly.
            get_logger("camhub.testing.rtsp").exception("rtsp path scheduler failed", path=self.name or "/")
            raise

    async def _run(self) -> None:
        while True:
            if not self.active():
                self.wake.clear()
                await self.wake.wait()
                continue
            now = time.monotonic()
            video_at = self.video_time(self.next_video)
            audio_at = self.audio_time(self.next_audio)
            if now - min(video_at, audio_at) > _MAX_LAG:
                self.resync(now)
                continue
            horizon = now + _SLACK
            while True:
                if video_at <= audio_at:
                    if video_at > horizon:
                        break
                    self.send_video(self.next_video)
                    self.next_video += 1
                    video_at = self.video_time(self.next_video)
                else:
                    if audio_at > horizon:
                        break
                    self.send_audio(self.next_audio)
                    self.next_audio += 1
                    audio_at = self.audio_time(self.next_audio)
            if now >= self.next_report:
                self.next_report = now + _SR_INTERVAL
                for session in self.sessions:
                    if session.started:
                        session.connection.send_reports(session, now)
            self.server._flush()
            await asyncio.sleep(max(0.0, min(video_at, audio_at) - time.monotonic()))

    def send_video(self, g: int) -> None:
        payloads = self.media.video[g % len(self.media.video)]
        timestamp = self.video_rtp(g)
        for session in list(self.sessions):
            track = session.tracks.get(_VIDEO_TRACK)
            if track is None or g < session.start_video:
                continue
            if not session.started:
                session.started = True
                session.connection.send_reports(session, time.monotonic())
            session.connection.send_rtp(track, _PT_H264, self.video_ssrc, timestamp, payloads, True)

    def send_audio(self, g: int) -> None:
        payload = self.media.audio[g % len(self.media.audio)]
        timestamp = self.audio_rtp(g)
        pt = _PT_AAC if self.media.clip.audio_codec == "aac" else _PT_PCMU
        # RFC 3640: the marker is set on every packet that ends an access unit (all of ours).
        marker = pt == _PT_AAC
        for session in list(self.sessions):
            track = session.tracks.get(_AUDIO_TRACK)
            if track is None or g < session.start_audio:
                continue
            if not session.started:
                session.started = True
                session.connection.send_reports(session, time.monotonic())
            session.connection.send_rtp(track, pt, self.audio_ssrc, timestamp, (payload,), marker)

    def sdp(self, host: str) -> bytes:
        """The session description (cached per host the client used)."""
        cached = self._sdp_cache.get(host)
        if cached is not None:
            return cached
        clip = self.media.clip
        lines = [
            "v=0",
            f"o=- {self.session_id} 1 IN IP4 {host}",
            "s=camhub simulated camera",
            f"i={self.name or '/'}",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=tool:camhub",
            "a=type:broadcast",
            "a=control:*",
            "a=range:npt=now-",
        ]
        if self.has_video:
            sprop = ",".join(base64.b64encode(p).decode() for p in (clip.sps, clip.pps))
            seconds = clip.duration / 90000
            video_kbps = max(1, round(sum(len(au.annexb) for au in clip.video) * 8 / seconds / 1000))
            lines += [
                f"m=video 0 RTP/AVP {_PT_H264}",
                f"b=AS:{video_kbps}",
                f"a=rtpmap:{_PT_H264} H264/90000",
                f"a=fmtp:{_PT_H264} packetization-mode=1;profile-level-id={clip.profile_level_id};"
                f"sprop-parameter-sets={sprop}",
                f"a=framerate:{float(clip.fps):g}",
                f"a=x-dimensions:{clip.width},{clip.height}",
                f"a=control:trackID={_VIDEO_TRACK}",
            ]
        if self.has_audio and clip.audio_codec == "aac":
            lines += [
                f"m=audio 0 RTP/AVP {_PT_AAC}",
                f"a=rtpmap:{_PT_AAC} MPEG4-GENERIC/{clip.audio_rate}/{clip.audio_channels}",
                f"a=fmtp:{_PT_AAC} streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;"
                f"indexlength=3;indexdeltalength=3;config={clip.audio_config.hex().upper()}",
                f"a=control:trackID={_AUDIO_TRACK}",
            ]
        elif self.has_audio:
            lines += [
                f"m=audio 0 RTP/AVP {_PT_PCMU}",
                f"a=rtpmap:{_PT_PCMU} PCMU/8000",
                f"a=control:trackID={_AUDIO_TRACK}",
            ]
        body = ("\r\n".join(lines) + "\r\n").encode()
        self._sdp_cache[host] = body
        return body


# --- the connection ------------------------------------------------------------------------------


@attrs.frozen
class _Request:
    method: str
    url: str
    target: str  # path and query of the URL, e.g. "/Streaming/Channels/101"
    headers: dict[str, str]


class _Connection(asyncio.Protocol):
    """One client TCP connection: RTSP requests in, responses and interleaved RTP/RTCP out."""

    def __init__(self, server: RtspServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: list[bytes] = []
        self.sessions: dict[str, _Session] = {}
        self.last_activity = time.monotonic()
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
        sock = transport.get_extra_info("socket")
        if self.server.send_buffer is not None and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.server.send_buffer)
        self.server._connections.add(self)
        if self.server.frozen:
            transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        for session in list(self.sessions.values()):
            self.server._end_session(session)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.last_activity = time.monotonic()
        if not self.server.frozen:
            self.process()

    def close(self, *, abort: bool = False) -> None:
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    # Sending media.

    def send_rtp(
        self, track: _Track, pt: int, ssrc: int, timestamp: int, payloads: Sequence[bytes], marker: bool
    ) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        parts: list[bytes] = []
        seq = track.seq
        last = len(payloads) - 1
        size = 0
        for i, payload in enumerate(payloads):
            mpt = pt | 0x80 if marker and i == last else pt
            parts.append(
                _RTP_HEADER.pack(0x24, track.rtp_channel, len(payload) + 12, 0x80, mpt, seq, timestamp, ssrc)
            )
            parts.append(payload)
            seq = (seq + 1) & 0xFFFF
            size += len(payload)
        track.seq = seq
        track.packets += len(payloads)
        track.octets += size
        self.queue(parts)

    def queue(self, parts: list[bytes]) -> None:
        """Hold media for the one write per wake-up that :meth:`flush` makes."""
        if not self.pending:
            self.server._dirty.append(self)
        self.pending += parts

    def flush(self) -> None:
        parts, self.pending = self.pending, []
        transport = self.transport
        if transport is None or transport.is_closing() or not parts:
            return
        transport.write(b"".join(parts))
        if transport.get_write_buffer_size() > self.server.max_buffer:
            # A client this far behind would make us buffer without bound: drop it, as a camera
            # with a full send queue does.
            get_logger("camhub.testing.rtsp").warning(
                "rtsp client too slow, dropped", peer=self.peer, path=self._path_names()
            )
            transport.abort()

    def send_reports(self, session: _Session, now: float) -> None:
        """An RTCP sender report (with SDES CNAME) per track of a session."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        path = session.path
        out: list[bytes] = []
        for kind, track in session.tracks.items():
            ssrc = path.video_ssrc if kind == _VIDEO_TRACK else path.audio_ssrc
            ntp, rtp = path.report_clock(kind, now)
            sr = struct.pack(
                "!BBHIQIII",
                0x80,
                200,
                6,
                ssrc,
                ntp & 0xFFFFFFFFFFFFFFFF,
                rtp,
                track.packets & 0xFFFFFFFF,
                track.octets & 0xFFFFFFFF,
            )
            cname = b"camhub@" + self.server.host.encode()
            item = bytes([1, len(cname)]) + cname + b"\x00"
            item += b"\x00" * (-len(item) % 4)
            sdes = struct.pack("!BBHI", 0x81, 202, (4 + len(item)) // 4, ssrc) + item
            rtcp = sr + sdes
            out.append(struct.pack("!BBH", 0x24, track.rtcp_channel, len(rtcp)) + rtcp)
        self.queue(out)

    # Requests.

    def process(self) -> None:
        buf = self.buffer
        while buf and self.transport is not None and not self.server.frozen:
            if buf[0] == 0x24:  # interleaved RTCP from the client (receiver reports): liveness only
                if len(buf) < 4:
                    return
                end = 4 + int.from_bytes(buf[2:4], "big")
                if len(buf) < end:
                    return
                del buf[:end]
                continue
            if buf[:2] == b"\r\n":
                del buf[:2]
                continue
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) > _MAX_REQUEST:
                    self.close()
                return
            head = bytes(buf[:head_end]).decode("utf-8", "replace")
            lines = head.split("\r\n")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(buf) < head_end + 4 + length:
                return
            del buf[: head_end + 4 + length]
            parts = lines[0].split()
            if len(parts) != 3 or not parts[2].startswith("RTSP/"):
                self.respond(headers.get("cseq", "0"), 400)
                self.close()
                return
            method, url = parts[0].upper(), _without_userinfo(parts[1])
            target = urlsplit(url)._replace(scheme="", netloc="", fragment="").geturl() or "/"
            self.server._handle(self, _Request(method, url, target, headers))

    def respond(
        self,
        cseq: str,
        status: int,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        lines = [
            f"RTSP/1.0 {status} {_REASONS.get(status, 'Error')}",
            f"CSeq: {cseq}",
            "Server: camhub-sim RTSP",
            f"Date: {email.utils.formatdate(usegmt=True)}",
        ]
        lines += [f"{name}: {value}" for name, value in headers]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _path_names(self) -> list[str]:
        return sorted({s.path.name for s in self.sessions.values()})


# --- the server ----------------------------------------------------------------------------------


class RtspServer:
    """A live RTSP server on loopback serving clips on paths, with camera-like auth and faults.

    ``session_timeout`` is announced in the Session header; a session that hears nothing from its
    client (no request, no RTCP) for that long is closed. ``mtu`` bounds an RTP payload (larger
    NAL units go as FU-A fragments). ``max_buffer`` is how many bytes may wait in user space for
    one client before it is dropped as too slow; ``send_buffer`` sets the clients' socket send
    buffer (default: the OS's, which Linux grows to megabytes) — a camera's is small, so a slow
    client falls behind within seconds.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        username: str | None = None,
        password: str | None = None,
        realm: str = "camhub-sim",
        session_timeout: int = 60,
        mtu: int = 1400,
        max_buffer: int = 2 * 1024 * 1024,
        send_buffer: int | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.host = host
        self._port = port
        self._username = username
        self._password = password
        self.realm = realm
        self.session_timeout = session_timeout
        self.mtu = mtu
        self.max_buffer = max_buffer
        self.send_buffer = send_buffer
        self.frozen = False
        self._paths: dict[str, _Path] = {}
        self._packetized: dict[int, _Packetized] = {}
        self._sessions: dict[str, _Session] = {}
        self._connections: set[_Connection] = set()
        self._dirty: list[_Connection] = []
        self._failures: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._secret = secrets.token_bytes(16)

    def __repr__(self) -> str:  # never shows the password
        auth = f", username={self._username!r}, password='***'" if self._username else ""
        return f"RtspServer({self.host!r}, {self._port}{auth}, paths={len(self._paths)})"

    # Lifecycle.

    async def start(self) -> None:
        """Listen; paths added before now get their schedulers (their clocks keep running)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        for path in self._paths.values():
            self._start_path(path)
        self._reaper = asyncio.create_task(self._reap(), name="rtsp-session-reaper")
        get_logger("camhub.testing.rtsp").info("rtsp server started", url=self.url, paths=len(self._paths))

    async def stop(self) -> None:
        """Stop listening, close every connection and stop the schedulers."""
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._connections):
            connection.close(abort=True)
        tasks = [p.task for p in self._paths.values() if p.task is not None]
        if self._reaper is not None:
            tasks.append(self._reaper)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for path in self._paths.values():
            path.task = None
        self._reaper = None
        await self._server.wait_closed()
        self._server = None
        await asyncio.sleep(0)  # let the aborted transports run connection_lost and close sockets
        get_logger("camhub.testing.rtsp").info("rtsp server stopped", url=self.url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The server's base URL, ``rtsp://host:port`` (no credentials)."""
        return f"rtsp://{self.host}:{self._port}"

    def url_for(self, path: str, *, credentials: bool = False) -> str:
        """The URL of a path; with ``credentials``, the configured username and password in it."""
        userinfo = ""
        if credentials and self._username is not None and self._password is not None:
            userinfo = f"{quote(self._username, safe='')}:{quote(self._password, safe='')}@"
        return f"rtsp://{userinfo}{self.host}:{self._port}{_normalize(path) or '/'}"

    # Paths.

    def add_path(self, path: str, clip: Clip, *, video: bool = True) -> None:
        """Serve ``clip`` live on ``path`` (e.g. ``/Streaming/Channels/101``); its clock starts now.

        With ``video=False`` the path serves only the clip's audio track, as a camera serves a
        microphone channel: the SDP has just the audio m-line (``trackID=1``), and a client that
        joins mid-stream starts at the next audio frame.
        """
        key = _normalize(path)
        if key in self._paths:
            raise ValueError(f"path {path!r} is already served")
        if not video and (clip.audio_codec is None or not clip.audio):
            raise ValueError(f"path {path!r}: an audio-only path needs a clip with audio")
        media = self._packetized.get(id(clip))
        if media is None or media.clip is not clip:
            media = self._packetized[id(clip)] = _Packetized.of(clip, self.mtu)
        live = _Path(self, key, media, video=video)
        self._paths[key] = live
        if self._server is not None:
            self._start_path(live)

    def remove_path(self, path: str) -> None:
        """Stop serving a path; its sessions end and their connections close."""
        live = self._paths.pop(_normalize(path))
        for session in [s for s in self._sessions.values() if s.path is live]:
            self._end_session(session)
            session.connection.close()
        if live.task is not None:
            live.task.cancel()

    def add_replay_path(self, path: str, source: str, *, onvif: bool = False) -> None:
        """Serve the recording of live path ``source`` on ``path``, as a device's RTSP playback does.

        The span comes from the URL (``starttime=…&endtime=…`` in Hikvision's compact UTC form)
        or, with ``onvif``, from ``Range: clock=<start>-<end>`` in a PLAY that carries
        ``Require: onvif-replay`` (ONVIF Streaming Specification, replay); an ONVIF PLAY without
        it is refused (400), as a plain RTSP client such as FFmpeg cannot send it. Playback
        starts at the keyframe at or before the start, which the answer's ``Range: clock=…``
        names (RFC 2326: the range actually played), runs in real time (as fast as the client
        reads with ``Rate-Control: no``) and ends with an RTCP BYE on each track.
        """
        live = self._paths[_normalize(source)]
        key = _normalize(path)
        if key in self._paths:
            raise ValueError(f"path {path!r} is already served")
        if not live.has_video:
            raise ValueError(f"path {source!r}: a replay needs a path with video")
        replay = _Path(self, key, live.media)
        # The recording is the live path's timeline: same clock, same RTP timestamps.
        for name in (
            "start",
            "wall_start",
            "ntp_start",
            "video_base",
            "audio_base",
            "video_ssrc",
            "audio_ssrc",
        ):
            setattr(replay, name, getattr(live, name))
        replay.replay, replay.onvif = True, onvif
        self._paths[key] = replay
        if self._server is not None:
            self._start_path(replay)

    def save_recording(
        self, path: str, start: datetime, end: datetime, target: Path
    ) -> tuple[datetime, datetime]:
        """Write what live ``path`` played in ``[start, end)`` into a QuickTime file, as a device
        keeps footage on its disk: from the first keyframe at or after ``start``, video and audio
        copied. Returns the file's span (when its first frame and its end played); a device has
        not recorded the future, so the span ends by now.
        """
        live = self._paths[_normalize(path)]
        clip = live.media.clip
        end = min(end, datetime.now(UTC))
        first = live.next_keyframe(live.video_index_at(live.start + start.timestamp() - live.wall_start))
        stop = live.video_index_at(live.start + end.timestamp() - live.wall_start)
        if stop <= first:
            raise ValueError(f"path {path!r}: no keyframe in [{start.isoformat()}, {end.isoformat()})")
        parameter_sets = b"\0\0\0\1" + clip.sps + b"\0\0\0\1" + clip.pps
        # Streams are made from templates: raw elementary streams opened with PyAV.
        templates = [av.open(_BytesReader(parameter_sets + clip.video[0].annexb), format="h264")]
        if live.has_audio:
            pcmu = clip.audio_codec == "pcmu"
            audio_raw = b"".join(u.data if pcmu else _adts(clip.audio_config, u.data) for u in clip.audio[:4])
            options = {"sample_rate": str(clip.audio_rate)} if pcmu else {}
            templates.append(
                av.open(
                    _BytesReader(audio_raw),
                    format="mulaw" if pcmu else "aac",
                    options=options,
                )
            )
        keep: list[bytes] = []  # a packet made from bytes refers to them until it is muxed
        try:
            with av.open(str(target), "w", format="mov") as out:
                video = out.add_stream_from_template(templates[0].streams.video[0])
                audio = (
                    out.add_stream_from_template(templates[1].streams.audio[0]) if live.has_audio else None
                )
                if audio is not None and clip.audio_codec == "aac":
                    audio.codec_context.extradata = clip.audio_config
                zero = live.video_ticks(first)
                g_audio = live.audio_index_from(zero)
                for g in range(first, stop):
                    au = clip.video[g % len(clip.video)]
                    data = (parameter_sets if au.keyframe else b"") + au.annexb
                    keep.append(data)
                    _mux(out, video, data, live.video_ticks(g) - zero, 90000, au.keyframe)
                    while audio is not None and live.audio_time(g_audio) < live.video_time(g + 1):
                        ticks = round((live.audio_time(g_audio) - live.video_time(first)) * clip.audio_rate)
                        unit = clip.audio[g_audio % len(clip.audio)].data
                        keep.append(unit)
                        if ticks >= 0:
                            _mux(out, audio, unit, ticks, clip.audio_rate, True)
                        g_audio += 1
        finally:
            for template in templates:
                template.close()
        return (
            datetime.fromtimestamp(live.wall(live.video_time(first)), UTC),
            datetime.fromtimestamp(live.wall(live.video_time(stop)), UTC),
        )

    def frame_at(self, path: str, when: datetime) -> int:
        """Which frame of its clip live ``path`` shows (and records) at wall-clock time ``when``."""
        live = self._paths[_normalize(path)]
        g = live.video_index_at(live.start + when.timestamp() - live.wall_start)
        return g % len(live.media.video)

    @property
    def paths(self) -> list[str]:
        return sorted(p or "/" for p in self._paths)

    def _start_path(self, live: _Path) -> None:
        live.task = asyncio.create_task(live.run(), name=f"rtsp-path:{live.name}")

    # Observation and faults.

    def auth_failures(self, path: str) -> int:
        """How many requests for ``path`` came with wrong credentials."""
        return self._failures.get(_normalize(path), 0)

    def session_count(self, path: str | None = None) -> int:
        """Open sessions, on one path or in all."""
        if path is None:
            return len(self._sessions)
        key = _normalize(path)
        return sum(1 for s in self._sessions.values() if s.path.name == key)

    def freeze(self) -> None:
        """Stop sending and answering, sockets left open: a SIGSTOP-ed or hung server."""
        self.frozen = True
        for connection in self._connections:
            if connection.transport is not None:
                connection.transport.pause_reading()

    def thaw(self) -> None:
        """Resume after :meth:`freeze`: requests that waited are answered, streams go on live."""
        self.frozen = False
        now = time.monotonic()
        for path in self._paths.values():
            path.resync(now)
            path.wake.set()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.resume_reading()
                connection.process()

    def close_all_sessions(self) -> None:
        """Close every client connection at once, as a server crash would; keep listening."""
        for connection in list(self._connections):
            for session in list(connection.sessions.values()):
                self._end_session(session)
            connection.close(abort=True)

    def set_paused(self, path: str, paused: bool) -> None:
        """Stop (or resume) one path's media while its RTSP sessions stay up (video loss)."""
        live = self._paths[_normalize(path)]
        live.paused = paused
        if not paused:
            live.resync(time.monotonic())
            live.wake.set()

    # Sessions.

    def _flush(self) -> None:
        """Write what a scheduler's wake-up queued: one write per client connection."""
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flush()

    def _end_session(self, session: _Session) -> None:
        if session.replay is not None:
            session.replay.cancel()
        session.path.stop_playing(session)
        self._sessions.pop(session.id, None)
        session.connection.sessions.pop(session.id, None)

    async def _reap(self) -> None:
        """Close sessions whose clients went quiet for longer than the session timeout."""
        interval = max(0.1, min(5.0, self.session_timeout / 4))
        log = get_logger("camhub.testing.rtsp")
        while True:
            await asyncio.sleep(interval)
            if self.frozen:
                continue
            now = time.monotonic()
            for session in list(self._sessions.values()):
                quiet = now - max(session.touched, session.connection.last_activity)
                if quiet > self.session_timeout:
                    log.info("rtsp session timed out", path=session.path.name, session=session.id)
                    connection = session.connection
                    self._end_session(session)
                    if not connection.sessions:
                        connection.close()

    # Requests.

    def _handle(self, conn: _Connection, req: _Request) -> None:
        cseq = req.headers.get("cseq")
        if cseq is None:
            conn.respond("0", 400)
            return
        if req.method == "OPTIONS":
            conn.respond(cseq, 200, [("Public", _PUBLIC)])
            return
        if req.method not in _METHODS:
            conn.respond(cseq, 405 if req.method in ("ANNOUNCE", "RECORD") else 501, [("Allow", _PUBLIC)])
            return
        live, track_id = self._resolve(req.target)
        if not self._authorized(req, live):
            conn.respond(cseq, 401, self._challenge())
            return
        session: _Session | None = None
        session_header = req.headers.get("session")
        if session_header is not None:
            session = self._sessions.get(session_header.split(";")[0].strip())
            if session is None:
                conn.respond(cseq, 454)
                return
            session.touched = time.monotonic()
        session_out = [("Session", f"{session.id};timeout={self.session_timeout}")] if session else []

        if req.method in ("GET_PARAMETER", "SET_PARAMETER"):  # keepalives
            conn.respond(cseq, 200, session_out)
        elif req.method == "DESCRIBE":
            if live is None or track_id is not None:
                conn.respond(cseq, 404)
                return
            base = req.url if req.url.endswith("/") else req.url + "/"
            host = urlsplit(req.url).hostname or self.host
            conn.respond(
                cseq,
                200,
                [("Content-Base", base), ("Content-Type", "application/sdp")],
                live.sdp(host),
            )
        elif req.method == "SETUP":
            self._setup(conn, req, cseq, live, track_id, session)
        elif session is None:
            conn.respond(cseq, 454)
        elif req.method == "PLAY" and session.path.replay:
            self._play_recording(conn, req, cseq, session, session_out)
        elif req.method == "PLAY":
            self._play(conn, cseq, session, session_out)
        elif req.method == "PAUSE":
            session.path.stop_playing(session)
            conn.respond(cseq, 200, session_out)
        else:  # TEARDOWN
            self._end_session(session)
            conn.respond(cseq, 200)

    def _resolve(self, target: str) -> tuple[_Path | None, int | None]:
        """The path a request names, and the track if it names one (``…/trackID=1``).

        A path registered with a query (Dahua's ``/cam/realmonitor?channel=1&subtype=0``) must
        match exactly; otherwise an unknown query (a playback ``?starttime=…``) is ignored.
        """
        # The track first: a playback URL's query may come before it (``…/?starttime=…/trackID=0``).
        head, _, tail = _normalize(target).rpartition("/")
        match = _TRACK_RE.fullmatch(tail)
        if match:
            live = self._lookup(head)
            if live is not None:
                return live, int(match.group(1))
        return self._lookup(target), None

    def _lookup(self, target: str) -> _Path | None:
        key = _normalize(target)
        if key in self._paths:
            return self._paths[key]
        return self._paths.get(_normalize(key.partition("?")[0]))

    def _setup(
        self,
        conn: _Connection,
        req: _Request,
        cseq: str,
        live: _Path | None,
        track_id: int | None,
        session: _Session | None,
    ) -> None:
        if live is None or track_id not in (_VIDEO_TRACK, _AUDIO_TRACK):
            conn.respond(cseq, 404)
            return
        if (track_id == _AUDIO_TRACK and not live.has_audio) or (
            track_id == _VIDEO_TRACK and not live.has_video
        ):
            conn.respond(cseq, 404)
            return
        if session is not None and (session.path is not live or session.connection is not conn):
            conn.respond(cseq, 459)
            return
        if session is not None and session.playing:
            conn.respond(cseq, 455)
            return
        transport = self._pick_transport(req.headers.get("transport", ""))
        if transport is None:
            conn.respond(cseq, 461)
            return
        # Channels are per connection: every session on it (this one included) holds some.
        used = {
            c
            for s in conn.sessions.values()
            for t in s.tracks.values()
            for c in (t.rtp_channel, t.rtcp_channel)
        }
        channels = transport or _free_channels(used)
        if channels[0] in used or channels[1] in used:
            conn.respond(cseq, 461)
            return
        if session is None:
            session = _Session(id=f"{secrets.randbits(40):012d}", connection=conn, path=live)
            self._sessions[session.id] = session
            conn.sessions[session.id] = session
        ssrc = live.video_ssrc if track_id == _VIDEO_TRACK else live.audio_ssrc
        session.tracks[track_id] = _Track(track_id, req.url, channels[0], channels[1], ssrc)
        conn.respond(
            cseq,
            200,
            [
                ("Transport", f"RTP/AVP/TCP;unicast;interleaved={channels[0]}-{channels[1]};ssrc={ssrc:08X}"),
                ("Session", f"{session.id};timeout={self.session_timeout}"),
            ],
        )

    @staticmethod
    def _pick_transport(header: str) -> tuple[int, int] | tuple[()] | None:
        """The interleaved channels of the first TCP transport offered; () if it names none."""
        for option in header.split(","):
            params = [p.strip() for p in option.split(";")]
            if not params or params[0].upper() not in ("RTP/AVP/TCP", "RTP/AVP/TCP/UNICAST"):
                continue
            for param in params[1:]:
                name, _, value = param.partition("=")
                if name.lower() == "interleaved":
                    low, _, high = value.partition("-")
                    try:
                        first = int(low)
                        second = int(high) if high else first + 1
                    except ValueError:
                        return None
                    if not (0 <= first <= 255 and 0 <= second <= 255):
                        return None
                    return first, second
            return ()
        return None

    def _play(
        self, conn: _Connection, cseq: str, session: _Session, session_out: list[tuple[str, str]]
    ) -> None:
        if not session.tracks:
            conn.respond(cseq, 455)
            return
        if session.playing:
            conn.respond(cseq, 200, [*session_out, ("Range", "npt=now-")])
            return
        first = session.path.play(session)
        rtp_info = ",".join(f"url={track.url};seq={track.seq};rtptime={ts}" for track, ts in first)
        conn.respond(cseq, 200, [*session_out, ("Range", "npt=now-"), ("RTP-Info", rtp_info)])
        get_logger("camhub.testing.rtsp").debug(
            "rtsp session playing", path=session.path.name or "/", session=session.id, peer=conn.peer
        )

    def _play_recording(
        self,
        conn: _Connection,
        req: _Request,
        cseq: str,
        session: _Session,
        session_out: list[tuple[str, str]],
    ) -> None:
        path = session.path
        if not session.tracks:
            conn.respond(cseq, 455)
            return
        span = _replay_span(req, [t.url for t in session.tracks.values()], onvif=path.onvif)
        if span is None or session.replay is not None:
            conn.respond(cseq, 400 if span is None else 455, session_out)
            return
        start, end = span
        first = path.keyframe_at_or_before(path.video_index_at(path.start + start - path.wall_start))
        session.start_video = first
        session.start_audio = path.audio_index_from(path.video_ticks(first))
        session.playing = True
        paced = req.headers.get("rate-control", "yes").lower() != "no"
        rtp_info = ",".join(
            f"url={t.url};seq={t.seq};rtptime="
            f"{path.video_rtp(first) if kind == _VIDEO_TRACK else path.audio_rtp(session.start_audio)}"
            for kind, t in sorted(session.tracks.items())
        )
        actual = f"clock={_clock_text(path.wall(path.video_time(first)))}-{_clock_text(end)}"
        conn.respond(cseq, 200, [*session_out, ("Range", actual), ("RTP-Info", rtp_info)])
        session.replay = asyncio.create_task(self._send_recording(session, end, paced))

    async def _send_recording(self, session: _Session, end: float, paced: bool) -> None:
        """Send a replay session's span, then an RTCP BYE per track."""
        path, conn = session.path, session.connection
        video, audio = session.tracks.get(_VIDEO_TRACK), session.tracks.get(_AUDIO_TRACK)
        g_video, g_audio = session.start_video, session.start_audio
        origin = path.video_time(g_video)
        began = time.monotonic()
        conn.send_reports(session, origin)  # the reports' NTP times are the recording's own
        while conn.transport is not None and not conn.transport.is_closing():
            video_at = path.video_time(g_video)
            audio_at = path.audio_time(g_audio) if audio is not None else math.inf
            at = min(video_at, audio_at)
            if path.wall(at) >= end:
                break
            if paced:
                await asyncio.sleep(max(0.0, began + (at - origin) - time.monotonic()))
            elif conn.transport.get_write_buffer_size() > self.max_buffer // 4:
                await asyncio.sleep(0.005)
                continue
            if video_at <= audio_at:
                if video is not None:
                    payloads = path.media.video[g_video % len(path.media.video)]
                    conn.send_rtp(video, _PT_H264, path.video_ssrc, path.video_rtp(g_video), payloads, True)
                g_video += 1
            else:
                assert audio is not None
                pt = _PT_AAC if path.media.clip.audio_codec == "aac" else _PT_PCMU
                payload = path.media.audio[g_audio % len(path.media.audio)]
                conn.send_rtp(audio, pt, path.audio_ssrc, path.audio_rtp(g_audio), (payload,), pt == _PT_AAC)
                g_audio += 1
            self._flush()
            if not paced:
                await asyncio.sleep(0)
        for kind, track in session.tracks.items():
            ssrc = path.video_ssrc if kind == _VIDEO_TRACK else path.audio_ssrc
            # A reason keeps the packet at 12 bytes: FFmpeg ignores shorter RTCP packets.
            conn.queue(
                [struct.pack("!BBHBBHI", 0x24, track.rtcp_channel, 12, 0x81, 203, 2, ssrc) + b"\x03end"]
            )
        self._flush()

    # Authentication (Digest like cameras, Basic accepted).

    def _challenge(self) -> list[tuple[str, str]]:
        stamp = f"{time.time_ns():x}"
        mac = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:16]
        return [
            ("WWW-Authenticate", f'Digest realm="{self.realm}", nonce="{stamp}{mac}", stale="FALSE"'),
            ("WWW-Authenticate", f'Basic realm="{self.realm}"'),
        ]

    def _nonce_ok(self, nonce: str) -> bool:
        stamp, mac = nonce[:-16], nonce[-16:]
        good = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:16]
        return hmac.compare_digest(mac, good)

    def _authorized(self, req: _Request, live: _Path | None) -> bool:
        if self._username is None or self._password is None:
            return True
        header = req.headers.get("authorization")
        if header is None:
            return False  # the first request of a client: challenge it, no failure counted
        scheme, _, rest = header.partition(" ")
        ok = False
        user = ""
        if scheme.lower() == "basic":
            try:
                user, _, given = base64.b64decode(rest.strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, given = "", None
            ok = (
                given is not None
                and hmac.compare_digest(user.encode(), self._username.encode())
                and hmac.compare_digest(given.encode(), self._password.encode())
            )
        elif scheme.lower() == "digest":
            params = {k.lower(): v.strip('"') for k, v in _AUTH_PARAM_RE.findall(rest)}
            user = params.get("username", "")
            ok = (
                user == self._username
                and self._nonce_ok(params.get("nonce", ""))
                and self._digest_ok(req.method, params)
            )
        if not ok:
            key = live.name if live is not None else _normalize(req.target)
            self._failures[key] = self._failures.get(key, 0) + 1
            # The username helps find a misconfigured recorder; the password never appears.
            get_logger("camhub.testing.rtsp").warning(
                "rtsp authentication failed", path=key or "/", username=user, scheme=scheme.lower()
            )
        return ok

    def _digest_ok(self, method: str, params: dict[str, str]) -> bool:
        assert self._username is not None
        assert self._password is not None

        def md5(text: str) -> str:
            return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

        ha1 = md5(f"{self._username}:{params.get('realm', '')}:{self._password}")
        ha2 = md5(f"{method}:{params.get('uri', '')}")
        nonce = params.get("nonce", "")
        if params.get("qop"):
            expected = md5(
                f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:{params['qop']}:{ha2}"
            )
        else:
            expected = md5(f"{ha1}:{nonce}:{ha2}")
        return params.get("realm") == self.realm and hmac.compare_digest(expected, params.get("response", ""))


_CLOCK_RE = re.compile(r"(\d{8}T\d{6}(?:\.\d+)?)Z")


def _parse_clock(text: str) -> float:
    """Unix time of ``20260101T000000Z`` or ``20260101T000000.250Z``."""
    body = text.removesuffix("Z")
    pattern = "%Y%m%dT%H%M%S.%f" if "." in body else "%Y%m%dT%H%M%S"
    return datetime.strptime(body, pattern).replace(tzinfo=UTC).timestamp()


def _clock_text(unix: float) -> str:
    moment = datetime.fromtimestamp(unix, UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"


def _replay_span(req: _Request, urls: list[str], *, onvif: bool) -> tuple[float, float] | None:
    """The span a replay PLAY asks for, as Unix times (the end at most now); None if it names none."""
    if onvif:
        if "onvif-replay" not in req.headers.get("require", "").lower():
            return None
        found = _CLOCK_RE.findall(req.headers.get("range", "").partition("clock=")[2])
    else:
        found = []
        for name in ("starttime", "endtime"):
            match = next((m for u in (req.url, *urls) if (m := re.search(name + r"=(\w+)", u))), None)
            if match is not None:
                found.append(match.group(1))
    if not found:
        return None
    start = _parse_clock(found[0])
    end = _parse_clock(found[1]) if len(found) > 1 else math.inf
    return start, min(end, time.time())


class _BytesReader:
    """A read-only file over bytes, for PyAV's demuxers (templates of raw elementary streams)."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._at + size
        chunk, self._at = self._data[self._at : end], min(end, len(self._data))
        return chunk


def _adts(config: bytes, frame: bytes) -> bytes:
    """A raw AAC frame behind an ADTS header made from its AudioSpecificConfig."""
    kind, rate, channels = config[0] >> 3, ((config[0] & 7) << 1) | (config[1] >> 7), (config[1] >> 3) & 15
    size = len(frame) + 7
    header = bytes(
        [
            0xFF,
            0xF1,
            ((kind - 1) << 6) | (rate << 2) | (channels >> 2),
            ((channels & 3) << 6) | (size >> 11),
            (size >> 3) & 0xFF,
            ((size & 7) << 5) | 0x1F,
            0xFC,
        ]
    )
    return header + frame


def _mux(out: Any, stream: Any, data: bytes, ticks: int, rate: int, keyframe: bool) -> None:
    packet = av.Packet(data)
    packet.pts = packet.dts = ticks
    packet.time_base = Fraction(1, rate)
    packet.stream = stream
    packet.is_keyframe = keyframe
    out.mux(packet)


def _normalize(path: str) -> str:
    """A path as a key: a leading slash, no trailing slash ("/" itself becomes "")."""
    path = path if path.startswith("/") else "/" + path
    return path.rstrip("/")


def _without_userinfo(url: str) -> str:
    """The URL without ``user:password@``: it must not be echoed in Content-Base or RTP-Info."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _free_channels(used: set[int]) -> tuple[int, int]:
    channel = 0
    while channel in used or channel + 1 in used:
        channel += 2
    return channel, channel + 1
