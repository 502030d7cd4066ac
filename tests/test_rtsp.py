"""The simulators' RTSP server, checked on the wire and with PyAV (FFmpeg's RTSP client) as recorders use it.

Wire tests speak RTSP/RTP from a small asyncio client in this file and check the bytes: SDP,
transports, RTP-Info, RFC 6184/3640 packetization against the clip's own NAL units and AAC
frames, sender reports, the shared live clock, keepalives and timeouts. PyAV tests run FFmpeg's
client in this thread against a server on an event loop in another, and prove with the frame
index burnt into every picture that nothing is lost.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import itertools
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import attrs
import av
import av.error
import pytest
from structlog.testing import capture_logs

from camhub.testing.media import Clip, cached_clip, read_frame_index
from camhub.testing.rtsp import RtspServer

T = TypeVar("T")

SECONDS, FPS, GOP = 2, 25, 25
FRAMES = SECONDS * FPS
PASSWORD = "s3cret pass:word@cam"  # characters that need escaping in a URL
OPEN_OPTIONS = {"rtsp_transport": "tcp", "timeout": "5000000"}  # the demuxer's socket timeout, in µs


@pytest.fixture(scope="module")
def aac_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return cached_clip(seconds=SECONDS, fps=FPS, gop=GOP, audio="aac", cache_dir=tmp_path_factory.mktemp("m"))


@pytest.fixture(scope="module")
def pcmu_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return cached_clip(
        seconds=SECONDS, fps=FPS, gop=GOP, audio="pcmu", cache_dir=tmp_path_factory.mktemp("m")
    )


def run(coro: Coroutine[Any, Any, T], limit: float = 20.0) -> T:
    """Run a wire test with a hard time limit."""
    return asyncio.run(asyncio.wait_for(coro, limit))


# --- a minimal RTSP client for wire checks --------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers[name.lower()][0]


@dataclass
class Frame:
    channel: int
    data: bytes
    at: float  # time.monotonic() of arrival


@dataclass
class Rtp:
    marker: bool
    pt: int
    seq: int
    ts: int
    ssrc: int
    payload: bytes
    at: float

    @classmethod
    def parse(cls, frame: Frame) -> Rtp:
        b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", frame.data[:12])
        assert b0 == 0x80  # version 2, no padding, no extension, no CSRC
        return cls(bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc, frame.data[12:], frame.at)


class WireClient:
    """RTSP requests and interleaved frames over one TCP connection, nothing hidden."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.cseq = 0
        self.frames: list[Frame] = []  # interleaved frames that arrived while waiting for a response

    @classmethod
    async def connect(cls, server: RtspServer) -> WireClient:
        return cls(*await asyncio.open_connection(server.host, server.port))

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()

    async def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> Response:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: camhub-test"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            item = await self._next()
            if isinstance(item, Response):
                assert item.header("CSeq") == str(self.cseq)
                return item
            assert item is not None, "connection closed while waiting for a response"
            self.frames.append(item)

    async def frame(self, timeout: float) -> Frame | None:
        """The next interleaved frame; None at EOF. Raises TimeoutError if none comes in time."""
        if self.frames:
            return self.frames.pop(0)
        item = await asyncio.wait_for(self._next(), timeout)
        assert not isinstance(item, Response)
        return item

    async def frames_for(self, seconds: float) -> list[Frame]:
        out: list[Frame] = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                frame = await self.frame(left)
            except TimeoutError:
                break
            if frame is None:
                break
            out.append(frame)
        return out

    async def _next(self) -> Frame | Response | None:
        try:
            first = await self.reader.readexactly(1)
        except asyncio.IncompleteReadError:
            return None
        if first == b"$":
            head = await self.reader.readexactly(3)
            data = await self.reader.readexactly(int.from_bytes(head[1:3], "big"))
            return Frame(head[0], data, time.monotonic())
        raw = first + await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode().split("\r\n")
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), []).append(value.strip())
        length = int(headers.get("content-length", ["0"])[0])
        body = await self.reader.readexactly(length) if length else b""
        return Response(int(lines[0].split()[1]), headers, body)

    async def play(self, url: str, tracks: int = 2) -> tuple[str, Response]:
        """DESCRIBE, SETUP each track (interleaved 0-1, 2-3) and PLAY; returns the session and PLAY answer."""
        described = await self.request("DESCRIBE", url, {"Accept": "application/sdp"})
        assert described.status == 200
        base = described.header("Content-Base")
        session = ""
        for track in range(tracks):
            headers = {"Transport": f"RTP/AVP/TCP;unicast;interleaved={2 * track}-{2 * track + 1}"}
            if session:
                headers["Session"] = session
            answer = await self.request("SETUP", f"{base}trackID={track}", headers)
            assert answer.status == 200, answer
            session = answer.header("Session").split(";")[0]
        played = await self.request("PLAY", base, {"Session": session, "Range": "npt=0.000-"})
        assert played.status == 200
        return session, played


def rtp_info(response: Response) -> dict[str, tuple[int, int]]:
    """RTP-Info as {track url: (seq, rtptime)}."""
    out = {}
    for item in response.header("RTP-Info").split(","):
        params = dict(p.split("=", 1) for p in item.split(";"))
        out[params["url"]] = (int(params["seq"]), int(params["rtptime"]))
    return out


def access_units(packets: list[Rtp]) -> list[tuple[int, list[bytes]]]:
    """Reassemble RFC 6184 packets into (timestamp, NAL units) per access unit (ends at the marker)."""
    units: list[tuple[int, list[bytes]]] = []
    nals: list[bytes] = []
    fragment = bytearray()
    for packet in packets:
        payload = packet.payload
        if payload[0] & 0x1F == 28:  # FU-A
            if payload[1] & 0x80:
                fragment = bytearray([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
            fragment += payload[2:]
            if payload[1] & 0x40:
                nals.append(bytes(fragment))
        else:
            nals.append(payload)
        if packet.marker:
            units.append((packet.ts, nals))
            nals = []
    return units


def signed(delta: int) -> int:
    """A difference of two 32-bit RTP timestamps, as a signed number."""
    delta &= 0xFFFFFFFF
    return delta - (1 << 32) if delta >= 1 << 31 else delta


def sender_reports(frames: list[Frame], channel: int) -> list[tuple[float, int, int]]:
    """(NTP time in seconds, RTP timestamp, SSRC) of the RTCP sender reports on a channel."""
    reports = []
    for frame in frames:
        if frame.channel == channel:
            _, pt, _, ssrc, sec, frac, ts = struct.unpack("!BBHIIII", frame.data[:20])
            assert pt == 200
            assert frame.data[28 + 1] == 202  # followed by SDES (CNAME), as a compound RTCP packet
            reports.append((sec + frac / 2**32, ts, ssrc))
    return reports


# --- wire tests -----------------------------------------------------------------------------------


def test_describe_setup_play_and_the_rtp_on_the_wire(aac_clip: Clip) -> None:
    async def scenario() -> None:
        async with RtspServer() as server:
            server.add_path("/Streaming/Channels/101", aac_clip)
            url = server.url_for("/Streaming/Channels/101")
            client = await WireClient.connect(server)

            options = await client.request("OPTIONS", url)
            assert options.status == 200
            assert "GET_PARAMETER" in options.header("Public")

            described = await client.request("DESCRIBE", url, {"Accept": "application/sdp"})
            assert described.status == 200
            assert described.header("Content-Type") == "application/sdp"
            assert described.header("Content-Base") == url + "/"
            sdp = described.body.decode()
            sprop = f"{base64.b64encode(aac_clip.sps).decode()},{base64.b64encode(aac_clip.pps).decode()}"
            assert "m=video 0 RTP/AVP 96" in sdp
            assert "a=rtpmap:96 H264/90000" in sdp
            assert (
                f"a=fmtp:96 packetization-mode=1;profile-level-id={aac_clip.profile_level_id};"
                f"sprop-parameter-sets={sprop}"
            ) in sdp
            assert "a=rtpmap:97 MPEG4-GENERIC/16000/1" in sdp
            assert (
                "mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;"
                f"config={aac_clip.audio_config.hex().upper()}"
            ) in sdp
            assert "a=control:trackID=0" in sdp
            assert "a=control:trackID=1" in sdp

            udp = await client.request(
                "SETUP", url + "/trackID=0", {"Transport": "RTP/AVP;unicast;client_port=5000-5001"}
            )
            assert udp.status == 461

            video = await client.request(
                "SETUP", url + "/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
            )
            assert video.status == 200
            assert "interleaved=0-1" in video.header("Transport")
            session, _, timeout = video.header("Session").partition(";")
            assert timeout == "timeout=60"
            audio = await client.request(
                "SETUP",
                url + "/trackID=1",
                {"Transport": "RTP/AVP/TCP;unicast;interleaved=2-3", "Session": session},
            )
            assert audio.status == 200
            assert "interleaved=2-3" in audio.header("Transport")

            played = await client.request("PLAY", url + "/", {"Session": session, "Range": "npt=0.000-"})
            assert played.status == 200
            assert played.header("Range") == "npt=now-"
            info = rtp_info(played)
            assert set(info) == {url + "/trackID=0", url + "/trackID=1"}
            frames = await client.frames_for(2.2)  # a keyframe comes within 1 s (GOP 25 at 25 fps)

            alive = await client.request("GET_PARAMETER", url + "/", {"Session": session})
            assert alive.status == 200
            ended = await client.request("TEARDOWN", url + "/", {"Session": session})
            assert ended.status == 200
            assert server.session_count() == 0
            assert await client.frames_for(0.3) == []  # nothing after TEARDOWN
            await client.close()

        # The session opens with sender reports, so the client can map RTP time to wall-clock.
        assert {frames[0].channel, frames[1].channel} == {1, 3}
        video_packets = [Rtp.parse(f) for f in frames if f.channel == 0]
        audio_packets = [Rtp.parse(f) for f in frames if f.channel == 2]
        assert len(video_packets) > 20
        assert len(audio_packets) > 10

        # Video: starts where RTP-Info said, no gaps, small payloads, FU-A for the big NAL units.
        seq0, ts0 = info[url + "/trackID=0"]
        assert (video_packets[0].seq, video_packets[0].ts) == (seq0, ts0)
        assert [p.seq for p in video_packets] == [(seq0 + i) & 0xFFFF for i in range(len(video_packets))]
        assert {p.pt for p in video_packets} == {96}
        assert len({p.ssrc for p in video_packets}) == 1
        assert max(len(p.payload) for p in video_packets) <= 1400
        assert any(p.payload[0] & 0x1F == 28 for p in video_packets)
        units = access_units(video_packets)
        assert len({ts for ts, _ in units}) == len(units)  # the marker ends each access unit
        assert all(sum(p.ts == ts for p in video_packets if p.marker) == 1 for ts, _ in units)
        # The first access unit is an IDR with SPS and PPS in-band before it, as cameras send.
        first_ts, first_nals = units[0]
        assert [n[0] & 0x1F for n in first_nals[:2]] == [7, 8]
        assert first_nals[:2] == [aac_clip.sps, aac_clip.pps]
        # Every NAL unit arrives byte for byte, in clip order, 3600 ticks (1/25 s) apart.
        start = next(
            i for i, au in enumerate(aac_clip.video) if au.keyframe and list(au.nal_units) == first_nals[2:]
        )
        for k, (ts, nals) in enumerate(units):
            au = aac_clip.video[(start + k) % FRAMES]
            expected = [aac_clip.sps, aac_clip.pps, *au.nal_units] if au.keyframe else list(au.nal_units)
            assert nals == expected
            assert ts == (first_ts + k * 3600) & 0xFFFFFFFF

        # Audio: RFC 3640 AU headers, the clip's AAC frames in order, 1024 samples apart.
        aseq0, ats0 = info[url + "/trackID=1"]
        assert (audio_packets[0].seq, audio_packets[0].ts) == (aseq0, ats0)
        frame_of = {u.data: j for j, u in enumerate(aac_clip.audio)}
        first_audio = frame_of[audio_packets[0].payload[4:]]
        for k, packet in enumerate(audio_packets):
            assert packet.pt == 97
            assert packet.marker
            assert packet.payload[:2] == b"\x00\x10"  # AU-headers-length: one 16-bit header
            assert int.from_bytes(packet.payload[2:4], "big") >> 3 == len(packet.payload) - 4
            assert packet.payload[4:] == aac_clip.audio[(first_audio + k) % len(aac_clip.audio)].data
            assert packet.seq == (aseq0 + k) & 0xFFFF
            loop, i = divmod(first_audio + k, len(aac_clip.audio))
            elapsed = loop * aac_clip.audio_duration + aac_clip.audio[i].pts - aac_clip.audio[first_audio].pts
            assert packet.ts == (ats0 + elapsed) & 0xFFFFFFFF  # on the clock, across the clip's loop

        # Sender reports put both streams on one clock: audio starts with the keyframe.
        (v_ntp, v_rtp, v_ssrc), *_ = sender_reports(frames, 1)
        (a_ntp, a_rtp, a_ssrc), *_ = sender_reports(frames, 3)
        assert (v_ssrc, a_ssrc) == (video_packets[0].ssrc, audio_packets[0].ssrc)
        video_wall = v_ntp + signed(ts0 - v_rtp) / 90000
        audio_wall = a_ntp + signed(ats0 - a_rtp) / 16000
        assert 0 <= audio_wall - video_wall <= 1024 / 16000 + 0.002  # within one AAC frame
        # Paced in real time: each access unit leaves at its timestamp (within scheduling jitter).
        arrivals = {p.ts: p.at for p in video_packets if p.marker}
        late = [arrivals[ts] - arrivals[first_ts] - ((ts - first_ts) & 0xFFFFFFFF) / 90000 for ts, _ in units]
        assert max(late) - min(late) < 0.1

    run(scenario())


def test_a_late_joiner_shares_the_live_clock_and_starts_at_a_keyframe(aac_clip: Clip) -> None:
    async def scenario() -> None:
        async with RtspServer() as server:
            server.add_path("cam", aac_clip)
            url = server.url_for("/cam")
            early = await WireClient.connect(server)
            await early.play(url, tracks=1)
            await asyncio.sleep(0.7)
            late = await WireClient.connect(server)
            _, played = await late.play(url, tracks=1)
            early_frames, late_frames = await asyncio.gather(early.frames_for(1.5), late.frames_for(1.5))
            for client in (early, late):
                await client.close()
        early_units = access_units([Rtp.parse(f) for f in early_frames if f.channel == 0])
        late_packets = [Rtp.parse(f) for f in late_frames if f.channel == 0]
        late_units = access_units(late_packets)
        assert late_packets[0].ts == next(iter(rtp_info(played).values()))[1]
        assert late_units[0][1][0][0] & 0x1F == 7  # SPS first: the late joiner starts at a keyframe
        # Same SSRC, same timestamps, same bytes: one live source fanned out to both.
        assert {Rtp.parse(f).ssrc for f in early_frames if f.channel == 0} == {late_packets[0].ssrc}
        early_by_ts = dict(early_units)
        shared = [(ts, nals) for ts, nals in late_units if ts in early_by_ts]
        assert len(shared) >= len(late_units) - 2
        assert all(early_by_ts[ts] == nals for ts, nals in shared)

    run(scenario())


def test_a_paused_path_sends_nothing_and_resumes_at_a_keyframe(aac_clip: Clip) -> None:
    async def scenario() -> None:
        async with RtspServer() as server:
            server.add_path("/cam", aac_clip)
            url = server.url_for("/cam")
            client = await WireClient.connect(server)
            session, _ = await client.play(url, tracks=1)
            frames = await client.frames_for(1.2)
            server.set_paused("/cam", True)
            frames += await client.frames_for(0.1)  # what was already on its way
            before = [Rtp.parse(f) for f in frames if f.channel == 0]
            assert await client.frames_for(0.5) == []
            alive = await client.request("GET_PARAMETER", url + "/", {"Session": session})
            assert alive.status == 200  # RTSP still answers: only the media stopped
            server.set_paused("/cam", False)
            after = [Rtp.parse(f) for f in await client.frames_for(1.2) if f.channel == 0]
            await client.close()
        assert before
        assert after
        assert after[0].payload[0] & 0x1F == 7  # resumes with SPS, PPS and an IDR
        assert after[0].seq == (before[-1].seq + 1) & 0xFFFF  # no packet numbers skipped
        gap = ((after[0].ts - before[-1].ts) & 0xFFFFFFFF) / 90000
        assert gap >= 0.5  # the live clock kept running while paused

    run(scenario())


def test_an_audio_only_path_sends_just_the_audio_and_a_late_joiner_starts_at_the_next_frame(
    aac_clip: Clip,
) -> None:
    async def scenario() -> None:
        async with RtspServer() as server:
            server.add_path("/mic", aac_clip, video=False)
            silent = attrs.evolve(aac_clip, audio_codec=None, audio=(), audio_duration=0)
            with pytest.raises(ValueError, match="audio"):
                server.add_path("/silent", silent, video=False)
            url = server.url_for("/mic")
            early, late = await WireClient.connect(server), await WireClient.connect(server)

            described = await early.request("DESCRIBE", url, {"Accept": "application/sdp"})
            assert described.status == 200
            sdp = described.body.decode()
            assert [line for line in sdp.split("\r\n") if line.startswith("m=")] == ["m=audio 0 RTP/AVP 97"]
            assert "a=rtpmap:97 MPEG4-GENERIC/16000/1" in sdp
            assert "a=control:trackID=1" in sdp
            assert "trackID=0" not in sdp
            assert "H264" not in sdp
            no_video = await early.request(
                "SETUP", url + "/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
            )
            assert no_video.status == 404

            async def play(client: WireClient) -> tuple[Response, float]:
                answer = await client.request(
                    "SETUP", url + "/trackID=1", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
                )
                assert answer.status == 200
                session = answer.header("Session").split(";")[0]
                played = await client.request("PLAY", url + "/", {"Session": session})
                assert played.status == 200
                return played, time.monotonic()

            early_played, _ = await play(early)
            await asyncio.sleep(0.5)
            late_played, late_at = await play(late)
            early_frames, late_frames = await asyncio.gather(early.frames_for(1.2), late.frames_for(1.2))
            assert server.session_count("/mic") == 2
            for client in (early, late):
                await client.close()

        # Each session opens with a sender report for its one track, then RTP on channel 0.
        for frames in (early_frames, late_frames):
            assert frames[0].channel == 1
            assert {f.channel for f in frames} == {0, 1}
        early_packets = [Rtp.parse(f) for f in early_frames if f.channel == 0]
        late_packets = [Rtp.parse(f) for f in late_frames if f.channel == 0]
        for played, frames, packets in (
            (early_played, early_frames, early_packets),
            (late_played, late_frames, late_packets),
        ):
            info = rtp_info(played)
            assert list(info) == [url + "/trackID=1"]
            seq0, ts0 = info[url + "/trackID=1"]
            assert (packets[0].seq, packets[0].ts) == (seq0, ts0)
            assert [p.seq for p in packets] == [(seq0 + i) & 0xFFFF for i in range(len(packets))]
            assert {p.pt for p in packets} == {97}
            assert {signed(b.ts - a.ts) for a, b in itertools.pairwise(packets)} == {1024}
            (_, _, ssrc), *_ = sender_reports(frames, 1)
            assert ssrc == packets[0].ssrc
        # No keyframe to wait for: the late joiner gets the next audio frame (64 ms apart) at once.
        assert late_packets[0].at - late_at < 1024 / 16000 + 0.05
        # One live source fanned out: same SSRC, and the late joiner's frames are the early one's.
        assert late_packets[0].ssrc == early_packets[0].ssrc
        early_by_ts = {p.ts: p.payload for p in early_packets}
        assert late_packets[0].ts in early_by_ts
        assert all(early_by_ts[p.ts] == p.payload for p in late_packets if p.ts in early_by_ts)

    run(scenario())


def test_idle_sessions_time_out_and_keepalives_keep_them(aac_clip: Clip) -> None:
    async def scenario() -> None:
        async with RtspServer(session_timeout=1) as server:
            server.add_path("/cam", aac_clip)
            url = server.url_for("/cam")
            quiet, chatty = await WireClient.connect(server), await WireClient.connect(server)
            await quiet.play(url)
            session, played = await chatty.play(url)
            assert played.header("Session").endswith(";timeout=1")
            started = time.monotonic()

            async def read_until_eof() -> float:
                while await quiet.frame(5.0) is not None:
                    pass
                return time.monotonic() - started

            async def keep_alive() -> None:
                for _ in range(6):
                    await asyncio.sleep(0.4)
                    answer = await chatty.request("GET_PARAMETER", url + "/", {"Session": session})
                    assert answer.status == 200

            closed_after, _ = await asyncio.gather(read_until_eof(), keep_alive())
            assert 0.9 <= closed_after < 3.0  # idle since PLAY, just before started
            assert server.session_count("/cam") == 1  # the client that sent keepalives
            for client in (quiet, chatty):
                await client.close()

    run(scenario())


def test_a_client_that_stops_reading_is_dropped_and_others_play_on(aac_clip: Clip) -> None:
    async def scenario() -> None:
        # A camera-sized socket buffer, so falling behind shows within a second or two.
        async with RtspServer(max_buffer=64 * 1024, send_buffer=32 * 1024) as server:
            server.add_path("/cam", aac_clip)
            url = server.url_for("/cam")
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((server.host, server.port))
            sock.setblocking(False)
            stalled = WireClient(*await asyncio.open_connection(sock=sock, limit=4096))
            healthy = await WireClient.connect(server)
            await stalled.play(url)
            await healthy.play(url)
            started = time.monotonic()
            frames = await healthy.frames_for(3.5)  # the stalled client reads nothing from here on
            assert server.session_count("/cam") == 1
            for client in (stalled, healthy):
                await client.close()
        assert time.monotonic() - started < 5
        video = [Rtp.parse(f) for f in frames if f.channel == 0]
        assert [p.seq for p in video] == [(video[0].seq + i) & 0xFFFF for i in range(len(video))]
        assert len(access_units(video)) > 2.5 * FPS

    with capture_logs() as logs:
        run(scenario())
    assert [e["event"] for e in logs].count("rtsp client too slow, dropped") == 1


def test_digest_and_basic_auth_count_failures_and_never_log_the_password(aac_clip: Clip) -> None:
    def digest(method: str, url: str, challenge: str, password: str, qop: bool = False) -> str:
        params = dict(
            kv.split("=", 1) for kv in challenge.removeprefix("Digest ").replace('"', "").split(", ")
        )
        realm, nonce = params["realm"], params["nonce"]

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1, ha2 = md5(f"admin:{realm}:{password}"), md5(f"{method}:{url}")
        if qop:
            response = md5(f"{ha1}:{nonce}:00000001:abcdef:auth:{ha2}")
            extra = ', qop=auth, nc=00000001, cnonce="abcdef"'
        else:
            response, extra = md5(f"{ha1}:{nonce}:{ha2}"), ""
        return (
            f'Digest username="admin", realm="{realm}", nonce="{nonce}", uri="{url}", '
            f'response="{response}"{extra}'
        )

    async def scenario() -> None:
        async with RtspServer(username="admin", password=PASSWORD) as server:
            assert PASSWORD not in repr(server)
            server.add_path("/cam", aac_clip)
            url = server.url_for("/cam")
            client = await WireClient.connect(server)
            assert (await client.request("OPTIONS", url)).status == 200  # cameras answer OPTIONS freely
            challenged = await client.request("DESCRIBE", url)
            assert challenged.status == 401
            challenges = challenged.headers["www-authenticate"]
            assert challenges[0].startswith('Digest realm="camhub-sim", nonce="')
            assert challenges[1] == 'Basic realm="camhub-sim"'
            assert server.auth_failures("/cam") == 0  # a first request without credentials is no failure

            right = digest("DESCRIBE", url, challenges[0], PASSWORD)
            assert (await client.request("DESCRIBE", url, {"Authorization": right})).status == 200
            right_qop = digest("DESCRIBE", url, challenges[0], PASSWORD, qop=True)
            assert (await client.request("DESCRIBE", url, {"Authorization": right_qop})).status == 200
            wrong = digest("DESCRIBE", url, challenges[0], "guess")
            refused = await client.request("DESCRIBE", url, {"Authorization": wrong})
            assert refused.status == 401
            assert "www-authenticate" in refused.headers
            forged_nonce = right.replace('nonce="', 'nonce="0')
            assert (await client.request("DESCRIBE", url, {"Authorization": forged_nonce})).status == 401

            basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
            assert (await client.request("DESCRIBE", url, {"Authorization": f"Basic {basic}"})).status == 200
            bad_basic = base64.b64encode(b"admin:nope").decode()
            assert (
                await client.request("DESCRIBE", url, {"Authorization": f"Basic {bad_basic}"})
            ).status == 401
            assert server.auth_failures("/cam") == 3
            await client.close()

    with capture_logs() as logs:
        run(scenario())
    failures = [e for e in logs if e["event"] == "rtsp authentication failed"]
    assert len(failures) == 3
    assert all(e["username"] == "admin" and e["path"] == "/cam" for e in failures)
    assert "s3cret" not in repr(logs)


# --- PyAV (FFmpeg's RTSP client) ------------------------------------------------------------------


class ServerThread:
    """An RtspServer on its own event loop in a thread, so blocking PyAV calls can run in this one."""

    def __init__(self, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rtsp-server", daemon=True)
        self.server = RtspServer(**kwargs)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        self.run_async(self.server.start)
        return self

    def __exit__(self, *exc: object) -> None:
        self.run_async(self.server.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` on the server's loop and return its result."""

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def run_async(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` on the server's loop and return its result."""

        async def call() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)


@dataclass
class Received:
    """What a PyAV client got from a stream."""

    video_codec: str = ""
    size: tuple[int, int] = (0, 0)
    audio_codec: str = ""
    audio_rate: int = 0
    opened_after: float = 0.0
    video: list[tuple[float, int | None, bool]] = field(default_factory=list)  # (arrival, pts, keyframe)
    indices: list[int] = field(default_factory=list)
    audio_pts: list[int | None] = field(default_factory=list)


def receive(url: str, seconds: float, options: dict[str, str] = OPEN_OPTIONS) -> Received:
    """Open ``url`` with PyAV, demux for ``seconds`` after opening, decode the video."""
    got = Received()
    started = time.monotonic()
    with av.open(url, options=options) as container:
        opened = time.monotonic()
        got.opened_after = opened - started
        video = container.streams.video[0].codec_context
        got.video_codec, got.size = video.name, (video.width, video.height)
        if container.streams.audio:
            audio = container.streams.audio[0].codec_context
            got.audio_codec, got.audio_rate = audio.name, audio.sample_rate
        for packet in container.demux():
            now = time.monotonic()
            if packet.size and packet.stream.type == "video":
                got.video.append((now, packet.pts, packet.is_keyframe))
                got.indices += [read_frame_index(f) for f in packet.decode() if isinstance(f, av.VideoFrame)]
            elif packet.size and packet.stream.type == "audio":
                got.audio_pts.append(packet.pts)
            if now - opened >= seconds:
                break
    return got


def assert_live_without_loss(got: Received, seconds: float) -> None:
    assert got.video[0][2], "the first video packet is a keyframe"
    # The burnt-in index: consecutive frames (wrapping at the end of the clip's loop), none lost.
    assert len(got.indices) >= seconds * FPS * 0.8
    gaps = [(a, b) for a, b in itertools.pairwise(got.indices) if (b - a) % FRAMES != 1]
    assert gaps == []
    # RTP timestamps continue across the loop: every packet 3600 ticks (1/25 s) after the one before.
    pts = [p for _, p, _ in got.video if p is not None]
    assert {b - a for a, b in itertools.pairwise(pts)} == {3600}
    # Real time: after what the probe buffered, packets arrive at 25 per second.
    steady = [at for at, _, _ in got.video if at >= got.video[0][0] + got.opened_after + 0.3]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    assert 20 < rate < 30, rate


@pytest.fixture(scope="module")
def shared_server(aac_clip: Clip, pcmu_clip: Clip) -> Iterator[RtspServer]:
    with ServerThread() as thread:
        thread.run(lambda: thread.server.add_path("/Streaming/Channels/101", aac_clip))
        thread.run(lambda: thread.server.add_path("/cam/realmonitor?channel=1&subtype=0", pcmu_clip))
        thread.run(lambda: thread.server.add_path("/shared", aac_clip))
        yield thread.server


def test_pyav_receives_h264_and_aac_live_without_loss(shared_server: RtspServer) -> None:
    got = receive(shared_server.url_for("/Streaming/Channels/101"), 3.0)
    assert (got.video_codec, got.size) == ("h264", (640, 360))
    assert (got.audio_codec, got.audio_rate) == ("aac", 16000)
    assert_live_without_loss(got, 3.0)
    assert len(got.audio_pts) > 2.5 * 16000 / 1024
    # Audio and video start together (FFmpeg's first video packet has no pts: take the second's).
    first_video = next(p for _, p, _ in got.video if p is not None) / 90000 - 1 / FPS
    assert got.audio_pts[0] is not None
    assert abs(got.audio_pts[0] / 16000 - first_video) < 0.1


def test_pyav_receives_h264_and_pcmu(shared_server: RtspServer) -> None:
    got = receive(shared_server.url_for("/cam/realmonitor?channel=1&subtype=0"), 3.0)
    assert (got.video_codec, got.size) == ("h264", (640, 360))
    assert (got.audio_codec, got.audio_rate) == ("pcm_mulaw", 8000)
    assert_live_without_loss(got, 3.0)
    assert len(got.audio_pts) > 2.5 * 50  # 20 ms packets


def test_two_pyav_clients_on_one_path_both_receive(shared_server: RtspServer) -> None:
    url = shared_server.url_for("/shared")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: receive(url, 2.5), range(2))
    for got in (first, second):
        assert_live_without_loss(got, 2.5)
    # One live source fanned out: the two clients were shown the same pictures.
    assert set(first.indices) & set(second.indices)


def test_pyav_digest_auth_right_password_plays_wrong_one_is_refused(
    aac_clip: Clip, capsys: pytest.CaptureFixture[str]
) -> None:
    with capture_logs() as logs, ServerThread(username="admin", password=PASSWORD) as thread:
        thread.run(lambda: thread.server.add_path("/Streaming/Channels/101", aac_clip))
        server = thread.server
        got = receive(server.url_for("/Streaming/Channels/101", credentials=True), 1.0)
        assert got.indices
        assert server.auth_failures("/Streaming/Channels/101") == 0
        wrong = server.url_for("/Streaming/Channels/101").replace("rtsp://", "rtsp://admin:guess@")
        with pytest.raises(av.error.HTTPUnauthorizedError, match="401 Unauthorized"):
            receive(wrong, 1.0)
        with pytest.raises(av.error.HTTPUnauthorizedError):
            receive(server.url_for("/Streaming/Channels/101"), 1.0)  # no credentials at all
        assert server.auth_failures("/Streaming/Channels/101") == 1
    assert any(e["event"] == "rtsp authentication failed" for e in logs)
    captured = capsys.readouterr()
    for text in (repr(logs), captured.out, captured.err):
        assert "s3cret" not in text


def drain(packets: Iterator[av.Packet[Any]], since: float) -> None:
    """Read until the stream ends or fails; fail if packets still flow 5 s after ``since``."""
    for _ in packets:
        assert time.monotonic() - since < 5, "packets still flowing"


def test_pyav_sees_a_frozen_server_as_a_timeout_and_thaw_resumes(aac_clip: Clip) -> None:
    with ServerThread() as thread:
        thread.run(lambda: thread.server.add_path("/cam", aac_clip))
        url = thread.server.url_for("/cam")
        options = {**OPEN_OPTIONS, "timeout": "1000000"}  # 1 s socket timeout
        with av.open(url, options=options) as container:
            packets = container.demux(video=0)
            for _ in range(10):
                next(packets)
            thread.run(thread.server.freeze)
            frozen_at = time.monotonic()
            with pytest.raises(TimeoutError):  # av.error.TimeoutError is a TimeoutError
                drain(packets, frozen_at)
            waited = time.monotonic() - frozen_at
        assert 0.9 < waited < 3.5
        thread.run(thread.server.thaw)
        got = receive(url, 0.5)
        assert got.video[0][2]
        assert len(got.indices) >= 10


def test_pyav_sees_close_all_sessions_as_the_end_of_the_stream(aac_clip: Clip) -> None:
    with ServerThread() as thread:
        thread.run(lambda: thread.server.add_path("/cam", aac_clip))
        url = thread.server.url_for("/cam")
        with av.open(url, options=OPEN_OPTIONS) as container:
            packets = container.demux(video=0)
            for _ in range(10):
                next(packets)
            thread.run(thread.server.close_all_sessions)
            closed_at = time.monotonic()
            try:
                for packet in packets:
                    assert time.monotonic() - closed_at < 5, "packets still flowing after the crash"
                    if packet.size == 0:
                        break  # the flush packet at EOF
            except (OSError, av.error.FFmpegError):
                pass  # an error is as good as EOF: the recorder treats both as a disconnect
            assert time.monotonic() - closed_at < 2.0
        assert thread.server.session_count() == 0
        # The server is still listening, like a camera after a restart.
        assert receive(url, 0.5).indices


# --- audio-only paths (microphones) with PyAV ------------------------------------------------------


@dataclass
class AudioReceived:
    """What a PyAV client got from an audio-only stream."""

    streams: list[str] = field(default_factory=list)  # the type of each stream, e.g. ["audio"]
    codec: str = ""
    rate: int = 0
    opened_at: float = 0.0
    packets: list[tuple[float, int | None]] = field(default_factory=list)  # (arrival, pts)


def receive_audio(
    url: str, seconds: float, *, at: Callable[[float], None] | None = None, delay: float = 0.0
) -> AudioReceived:
    """Open an audio-only ``url`` with PyAV and demux for ``seconds``; ``at(elapsed)`` after each packet."""
    time.sleep(delay)
    got = AudioReceived()
    with av.open(url, options=OPEN_OPTIONS) as container:
        got.opened_at = time.monotonic()
        got.streams = [stream.type for stream in container.streams]
        audio = container.streams.audio[0].codec_context
        got.codec, got.rate = audio.name, audio.sample_rate
        for packet in container.demux():
            now = time.monotonic()
            if packet.size:
                got.packets.append((now, packet.pts))
            if at is not None:
                at(now - got.opened_at)
            if now - got.opened_at >= seconds:
                break
    return got


def steady_rate(arrivals: list[float], since: float) -> float:
    """Packets per second after ``since`` (past what the stream probe buffered)."""
    steady = [at for at in arrivals if at >= since]
    return (len(steady) - 1) / (steady[-1] - steady[0])


@pytest.fixture(scope="module")
def microphones(aac_clip: Clip, pcmu_clip: Clip) -> Iterator[ServerThread]:
    with ServerThread() as thread:
        thread.run(lambda: thread.server.add_path("/mic/aac", aac_clip, video=False))
        thread.run(lambda: thread.server.add_path("/mic/pcmu", pcmu_clip, video=False))
        yield thread


@pytest.mark.parametrize(
    ("path", "codec", "rate", "samples"),
    [("/mic/aac", "aac", 16000, 1024), ("/mic/pcmu", "pcm_mulaw", 8000, 160)],
)
def test_pyav_receives_an_audio_only_path_live_on_two_clients(
    microphones: ServerThread, path: str, codec: str, rate: int, samples: int
) -> None:
    url = microphones.server.url_for(path)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # The second client joins a stream already playing.
        clients = list(pool.map(lambda i: receive_audio(url, 2.0, delay=0.4 * i), range(2)))
    for got in clients:
        assert got.streams == ["audio"]
        assert (got.codec, got.rate) == (codec, rate)
        pts = [p for _, p in got.packets if p is not None]
        assert len(pts) == len(got.packets)
        assert all(b > a for a, b in itertools.pairwise(pts))
        # Real time: after what the probe buffered, one packet per audio frame of the clip.
        expected = rate / samples
        measured = steady_rate([at for at, _ in got.packets], got.opened_at + 0.3)
        assert 0.85 * expected < measured < 1.15 * expected, (measured, expected)
        assert len(got.packets) > 1.7 * expected


def test_pyav_audio_only_path_pauses_and_resumes(microphones: ServerThread) -> None:
    server, path = microphones.server, "/mic/pcmu"
    switched: list[float] = []

    def pause_once(elapsed: float) -> None:
        if elapsed >= 1.0 and not switched:
            switched.append(time.monotonic())
            # Paused for a second (the server's loop resumes it), then 1.5 s more of playing.
            microphones.run(lambda: server.set_paused(path, True))
            microphones.run(lambda: microphones.loop.call_later(1.0, server.set_paused, path, False))

    got = receive_audio(server.url_for(path), 3.5, at=pause_once)
    paused_at = switched[0]
    arrivals = [at for at, _ in got.packets]
    pts = [p for _, p in got.packets if p is not None]
    assert len(pts) == len(got.packets)
    assert all(b > a for a, b in itertools.pairwise(pts))
    # Nothing arrived while paused (but what was on its way), then packets flowed again.
    assert not [at for at in arrivals if paused_at + 0.1 < at < paused_at + 0.95]
    after = [(at, p) for at, p in got.packets if at > paused_at + 0.95]
    assert len(after) > 50  # 20 ms packets for about 1.5 s
    assert steady_rate([at for at, _ in after], after[0][0] + 0.2) > 40
    # The live clock kept running while paused: the timestamps jump by about the pause.
    before = [p for at, p in got.packets if at <= paused_at + 0.1]
    assert before[-1] is not None
    assert after[0][1] is not None
    assert (after[0][1] - before[-1]) / 8000 > 0.8
