"""Recording one channel: a live stream remuxed (never re-encoded) into fragmented-MP4 segments.

The invariants, and the crash story (DESIGN §4):

* Every segment starts with a keyframe and is cut at the first keyframe at or after the next
  boundary of a fixed grid (default 60 s) anchored at the recorder's first keyframe, so segment
  durations sit on the grid within one GOP, and every segment plays on its own in a browser.
* Video is copied bit for bit. AAC is copied. G.711 cannot live in MP4, so it is decoded and
  encoded to AAC (cheap at 8 kHz); the segment records the source codec.
* A segment is written under a temporary name as fragmented MP4 (one fragment per keyframe,
  flushed to the OS as it goes), then fsynced, renamed, hashed (SHA-256) and handed over. A
  crash loses at most the fragment being written; :func:`recover_partials` turns what a crash
  left into sealed segments (playable up to the last complete fragment) or removes it.
* Equal or decreasing timestamps (split keyframe access units, seen on real cameras) are
  repaired, not fatal. End of stream from a live source is a disconnect. A stalled source is
  caught by the RTSP demuxer's own socket timeout (cheap, in C; PyAV's interrupt callback costs
  several times the CPU with many streams). The recorder reconnects with capped backoff, and
  every outage becomes exactly one gap with its cause; refused credentials wait long between
  attempts (devices lock accounts).
"""

from __future__ import annotations

import contextlib
import enum
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, cast

import attrs
import av
import av.error

from camhub.catalog._records import GapCause
from camhub.errors import DeviceAuthError, DeviceError, DeviceTimeout, DeviceUnreachable
from camhub.log import get_logger
from camhub.storage import sha256_file

__all__ = [
    "ChannelKey",
    "ChannelRecorder",
    "GapCause",
    "RecorderCallbacks",
    "RecorderState",
    "SealedSegment",
    "recover_partials",
]

PARTIAL_SUFFIX = ".partial.mp4"
#: Fragments start at each keyframe and are cut at most every half second: a crash loses at most
#: that much of an open segment, and the muxer holds at most that much of a stream in memory (with
#: one fragment per 2 s GOP it held about 1 MB per channel).
_FMP4_OPTIONS = {
    "movflags": "+frag_keyframe+empty_moov+default_base_moof",
    "frag_duration": "500000",
    "flush_packets": "1",
}
#: Probing a live stream: an RTSP camera describes its codecs in its SDP, so FFmpeg needs only the
#: first packets, not its default 5 MB / 5 s (which it buffers per channel while it probes).
_PROBE_OPTIONS = {"probesize": "262144", "analyzeduration": "1000000"}
_G711 = {"pcm_mulaw", "pcm_alaw"}
_AAC_RATE = 8000
#: A read that took longer than this waited for data (a packet already in the socket takes µs).
_CAUGHT_UP = 0.005
#: Once a recorder has caught up with its source, it lets packets gather in the socket before
#: reading on: each wake-up then takes several packets instead of one, which with many channels
#: in one process saves most of the thread wake-ups and GIL hand-offs. The wait is at most
#: ``_GATHER`` seconds and at most about ``_GATHER_BYTES`` of the stream (measured), so that the
#: kernel's default TCP receive window holds it and a camera never has to hold back; 0 disables.
_GATHER = 0.2
#: A live connection's first seconds are held until the recorder has caught up with the source:
#: FFmpeg hands over what it buffered while probing the stream (about a second) all at once, and
#: stamping the first keyframe with the time it came out would place the recording that much late.
#: Held for at most this many seconds of media.
_SETTLE_SPAN = 3.0
_GATHER_BYTES = 48 * 1024


class RecorderState(enum.Enum):
    """What a channel recorder is doing, for ``camhub status``."""

    STARTING = "starting"
    RECORDING = "recording"
    RETRYING = "retrying"
    STOPPED = "stopped"


@attrs.frozen
class ChannelKey:
    """A channel of a device: what a recorder records."""

    device_id: str
    channel: int

    def __str__(self) -> str:
        return f"{self.device_id}/ch{self.channel}"


@attrs.frozen(kw_only=True)
class SealedSegment:
    """A finished segment on disk, as handed to the catalog."""

    key: ChannelKey
    path: Path
    start: datetime
    end: datetime
    bytes: int
    sha256: str
    video_codec: str | None
    audio_codec: str | None
    audio_source_codec: str | None
    container: str = "mp4"
    recovered: bool = False

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def catalog_fields(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`camhub.catalog.Catalog.add_segment` that describe it."""
        return {
            "device_id": self.key.device_id,
            "channel": self.key.channel,
            "start": self.start,
            "end": self.end,
            "duration": self.duration,
            "size": self.bytes,
            "sha256": self.sha256,
            "video_codec": self.video_codec,
            "audio_codec": self.audio_codec,
            # Recorded only when the audio was transcoded (G.711 → AAC).
            "audio_source_codec": None
            if self.audio_source_codec == self.audio_codec
            else self.audio_source_codec,
            "container": self.container,
            "local_path": str(self.path),
        }


class RecorderCallbacks(Protocol):
    """Where a recorder reports; called from the recorder's thread."""

    def segment_sealed(self, segment: SealedSegment) -> None: ...

    def gap_opened(self, key: ChannelKey, start: datetime, cause: GapCause, detail: str) -> None: ...

    def gap_closed(self, key: ChannelKey, end: datetime) -> None: ...

    def state_changed(self, key: ChannelKey, state: RecorderState, detail: str) -> None: ...


class _Outage(Exception):  # carries the cause of a disconnect, not a bug
    def __init__(self, cause: GapCause, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail


class _SpanDone(Exception):  # a recording reached the end of the span asked for
    pass


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Segment:
    """One fragmented-MP4 segment being written under its temporary name.

    Per packet it works in integer timestamps and float seconds since the connection's anchor
    (``rel``); its wall-clock end is worked out once, when it is closed (see ``end_at``).
    """

    def __init__(
        self,
        path: Path,
        video: av.video.stream.VideoStream | None,
        audio: av.audio.stream.AudioStream | None,
        start: datetime,
        base: dict[int, int],
        start_rel: float = 0.0,
    ) -> None:
        self.path = path
        self.start = start
        self.end = start
        self.start_rel = start_rel  # seconds since the connection's anchor, at ``start``
        self.end_rel = start_rel  # the latest end of a written packet, on the same scale
        self.due_rel = float("inf")  # from here on, a cut point may be due (set by the recorder)
        self.base = base  # per input stream index: the timestamp that becomes 0
        self.last_dts: dict[int, int] = {}
        self.output = av.open(str(path), "w", format="mp4", options=_FMP4_OPTIONS)
        self.streams: dict[int, Any] = {}
        self.audio_encoder: Any = None
        self.audio_resampler: av.AudioResampler | None = None
        self.audio_source_codec: str | None = None
        if video is not None:
            self.streams[video.index] = self.output.add_stream_from_template(video)
        if audio is not None:
            name = audio.codec_context.name
            self.audio_source_codec = name
            if name in _G711:
                encoder = self.output.add_stream("aac", rate=_AAC_RATE)
                encoder.layout = "mono"
                encoder.bit_rate = 32_000
                self.audio_encoder = encoder
                self.audio_resampler = av.AudioResampler(format="fltp", layout="mono", rate=_AAC_RATE)
                self.streams[audio.index] = encoder
            else:
                self.streams[audio.index] = self.output.add_stream_from_template(audio)
        self.video_codec = video.codec_context.name if video is not None else None
        self.audio_codec = (
            ("aac" if self.audio_encoder is not None else self.audio_source_codec) if audio else None
        )
        # Everything ``write`` needs per input stream, looked up once per packet:
        # (output stream, True when the packet must be moved to it, seconds per tick, base).
        # mux_one() only reads the packet's stream index, so a packet whose index is already the
        # output stream's skips the ``stream`` setter.
        self._routes: dict[int, tuple[Any, bool, float, int]] = {
            stream.index: (
                self.streams[stream.index],
                self.streams[stream.index].index != stream.index,
                float(stream.time_base or 0),
                base.get(stream.index, 0),
            )
            for stream in (video, audio)
            if stream is not None
        }
        self._mux_one = self.output.mux_one

    def write(self, packet: av.Packet[Any], index: int, dts: int, rel: float) -> None:
        """Write a packet of input stream ``index`` with decoding timestamp ``dts`` (not None),
        which happened ``rel`` seconds after the connection's anchor (its end extends the segment).
        """
        route = self._routes.get(index)
        if route is None:
            return
        out, move, tick, base = route
        duration = packet.duration  # read before mux_one() rescales it to the output time base
        if out is self.audio_encoder:
            self._transcode(packet)
        else:
            pts = packet.pts
            dts -= base
            pts = dts if pts is None else pts - base
            last_dts = self.last_dts
            last = last_dts.get(index)
            if last is not None and dts <= last:
                # Equal or decreasing DTS (split access units, RTP jitter): nudge, never drop.
                dts = last + 1
            if pts < dts:
                pts = dts
            if dts < 0:  # audio that arrived just after the cut but belongs a moment before it
                return
            last_dts[index] = dts
            packet.dts = dts
            packet.pts = pts
            if move:
                packet.stream = out
            self._mux_one(packet)
        end = rel + duration * tick if duration else rel
        if end > self.end_rel:
            self.end_rel = end

    def end_at(self) -> datetime:
        """The wall-clock end of what was written: ``start`` plus the span of its packets."""
        return self.start + timedelta(seconds=self.end_rel - self.start_rel)

    def _transcode(self, packet: av.Packet[Any]) -> None:
        assert self.audio_resampler is not None
        for frame in cast("list[av.AudioFrame]", packet.decode()):
            for resampled in self.audio_resampler.resample(frame):
                resampled.pts = None  # the encoder stamps consecutive samples
                for encoded in self.audio_encoder.encode(resampled):
                    self.output.mux(encoded)

    def close(self) -> None:
        if self.audio_encoder is not None:
            with contextlib.suppress(av.error.FFmpegError):
                for encoded in self.audio_encoder.encode(None):
                    self.output.mux(encoded)
        self.output.close()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def seal(
    path: Path,
    key: ChannelKey,
    start: datetime,
    end: datetime,
    codecs: tuple[str | None, str | None, str | None],
    *,
    recovered: bool = False,
) -> SealedSegment:
    """fsync, rename to the final name ``<start>_<end>.mp4`` beside it, hash, describe."""
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())
    final = path.with_name(f"{_stamp(start)}_{_stamp(end)}.mp4")
    os.replace(path, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself must survive a power cut
    finally:
        os.close(directory)
    video, audio, source = codecs
    return SealedSegment(
        key=key,
        path=final,
        start=start,
        end=end,
        bytes=final.stat().st_size,
        sha256=sha256_file(final)[0],
        video_codec=video,
        audio_codec=audio,
        audio_source_codec=source,
        recovered=recovered,
    )


class _Connection:
    """Per-connection timing: the wall-clock anchor, and timestamps for packets that lack them.

    Timing stays in numbers per packet: a packet's time is ``rel``, float seconds since the
    anchor (the first keyframe), from its integer DTS and its stream's seconds per tick; it
    becomes a wall-clock time (:meth:`wall`) only where one is needed — at cuts, gaps and outages.

    RTSP depacketizers hand some packets over without timestamps (a keyframe carrying its
    parameter sets, at the start of a stream): such a packet is held until the next packet of
    its stream and stamped one frame before it.
    """

    def __init__(self, video: Any, audio: Any) -> None:
        self.video = video
        self.audio = audio
        self.lead = video if video is not None else audio
        self.lead_index: int = self.lead.index
        self.anchor_wall: datetime | None = None
        self.anchor: float | None = None  # the anchor packet's DTS in seconds
        self.written_rel: float | None = None  # ``rel`` of the last packet written
        # The span to record, as ``rel``: all of it for a live source; a window of a recording.
        self.from_rel = float("-inf")
        self.until_rel = float("inf")
        self.bytes_at_anchor = 0  # the recorder's bytes_in when the anchor was set
        # Settling a live anchor (see _SETTLE_SPAN): packets held until then, and how much earlier
        # than its provisional time the anchor was received at most (``now - rel``, least of all).
        self.pending: list[tuple[av.Packet[Any], int, int, int, float, bool]] | None = []
        self.caught_up = False  # a read had to wait for data: the packets now are live
        self.anchor_mono = 0.0
        self.lateness = 0.0
        self.seconds: dict[int, float] = {
            s.index: float(s.time_base or 0) for s in (video, audio) if s is not None
        }
        self.last_dts: dict[int, int] = {}
        self.held: dict[int, av.Packet[Any]] = {}
        self.steps = {s.index: _frame_step(s) for s in (video, audio) if s is not None}

    def wall(self, rel: float) -> datetime:
        """The wall-clock time ``rel`` seconds after the anchor."""
        assert self.anchor_wall is not None
        return self.anchor_wall + timedelta(seconds=rel)

    def settle(self) -> list[tuple[av.Packet[Any], int, int, int, float, bool]]:
        """Fix the anchor's wall-clock time; return the packets held until now, to be placed.

        A packet of a live stream cannot arrive before it was sent, so the anchor was sent at
        most ``now - rel`` after its provisional time, for every packet seen (``lateness``, at
        most 0): the least of them, reached by the packets that came in as they were sent, places
        the anchor when it was live, not when it came out of FFmpeg's probe buffer.
        """
        assert self.anchor_wall is not None and self.pending is not None
        self.anchor_wall += timedelta(seconds=self.lateness)
        pending, self.pending = self.pending, None
        return pending

    def stamped(self, packet: av.Packet[Any]) -> list[av.Packet[Any]]:
        """The packets ready to place, in order, with timestamps (none while one is held).

        The recorder calls this only for a packet without a DTS or while a packet is held; any
        other packet just has its DTS noted in :attr:`last_dts`.
        """
        index = packet.stream_index
        if packet.dts is None and packet.pts is not None:
            packet.dts = packet.pts
        if packet.dts is None:
            last = self.last_dts.get(index)
            if last is None:
                self.held[index] = packet
                return []
            packet.dts = packet.pts = last + self.steps[index]
        ready = []
        held = self.held.pop(index, None)
        if held is not None:
            held.dts = held.pts = packet.dts - self.steps[index]
            ready.append(held)
        self.last_dts[index] = packet.dts
        ready.append(packet)
        return ready


def _frame_step(stream: Any) -> int:
    """One frame's duration in the stream's time base (a 25 fps guess when the rate is unknown)."""
    rate = getattr(stream, "average_rate", None) or getattr(stream, "guessed_rate", None) or Fraction(25)
    if stream.type == "audio":
        rate = Fraction(stream.codec_context.sample_rate or 8000, stream.codec_context.frame_size or 1024)
    return max(1, round(1 / (Fraction(rate) * Fraction(stream.time_base))))


class ChannelRecorder:
    """Records one channel in a thread until :meth:`stop`.

    :param key: the channel.
    :param open_url: returns the URL to open, credentials included (called at every connect,
        so a changed password or address is picked up); it is never logged.
    :param shown_url: the same URL without credentials, for logs and status.
    :param spool: folder under which ``<device>/<channel>/<UTC date>/`` segments are written.
    :param callbacks: where segments, gaps and states are reported.
    :param segment_seconds: the grid.
    :param socket_timeout: seconds of silence after which the source counts as stalled.
    :param forget_url: called when connecting fails, so ``open_url`` asks the device afresh.
    :param grid_origin: a time on the grid to cut at (default: the first keyframe recorded), so
        that segments recorded later for the same channel (:meth:`record_span`) share its grid.
    """

    def __init__(
        self,
        key: ChannelKey,
        open_url: Callable[[], str],
        shown_url: str,
        spool: Path,
        callbacks: RecorderCallbacks,
        *,
        segment_seconds: float = 60.0,
        socket_timeout: float = 5.0,
        backoff: tuple[float, float] = (1.0, 30.0),
        auth_backoff: tuple[float, float] = (60.0, 600.0),
        clock: Callable[[], datetime] = _utc_now,
        forget_url: Callable[[], None] | None = None,
        grid_origin: datetime | None = None,
    ) -> None:
        self.key = key
        self._open_url = open_url
        self.shown_url = shown_url
        self.spool = spool
        self.callbacks = callbacks
        self.segment = timedelta(seconds=segment_seconds)
        self.socket_timeout = socket_timeout
        self.backoff = backoff
        self.auth_backoff = auth_backoff
        self.clock = clock
        self._forget_url = forget_url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._grid_origin: datetime | None = grid_origin
        self._window: tuple[datetime, datetime] | None = None
        self._current: _Segment | None = None
        self._gap_open = False
        self._last_connection: _Connection | None = None
        self._signature: tuple[Any, ...] | None = None
        self.state = RecorderState.STARTING
        self.detail = ""
        self.packets = 0
        self.bytes_in = 0
        self.segments = 0
        self._log = get_logger(__name__, channel=str(key), url=shown_url)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"rec-{self.key}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the recorder to stop without waiting for it."""
        self._stop.set()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the recorder to stop; it seals its open segment. Waits up to ``timeout``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """The recorder loop: connect, record, and on any outage open a gap and retry."""
        failures = 0
        while not self._stop.is_set():
            try:
                self._record_connection()
                failures = 0
                if self._stop.is_set():
                    break
                raise _Outage(GapCause.STREAM_ENDED, "the stream ended")
            except _Outage as outage:
                self._outage(outage)
                failures += 1
                low, high = self.auth_backoff if outage.cause is GapCause.AUTH else self.backoff
                self._set_state(RecorderState.RETRYING, outage.detail)
                self._stop.wait(min(high, low * 2 ** min(failures - 1, 16)))
            except Exception as exc:  # noqa: BLE001 - a recorder thread must never die silently
                # No traceback: PyAV's messages carry the URL, and the URL carries the password.
                self._log.error("recorder_failed", error=_describe(exc), type=type(exc).__name__)
                self._outage(_Outage(GapCause.STREAM_ENDED, f"recorder error: {type(exc).__name__}"))
                failures += 1
                self._stop.wait(min(self.backoff[1], self.backoff[0] * 2 ** min(failures, 16)))
        self._close_segment()
        if self._gap_open:
            self.callbacks.gap_closed(self.key, self.clock())
            self._gap_open = False
        self._set_state(RecorderState.STOPPED, "")

    def record_span(self, start: datetime, end: datetime) -> None:
        """Remux one finite source (a span of a device's own recording) into segments, and return.

        The source's first keyframe is placed at what ``clock`` says at that moment (for a
        recording, the time the device says it starts at); packets then keep their own timing.
        Segments start at the first keyframe at or after ``start``, are cut on the grid, and end
        by ``end``: nothing outside ``[start, end)`` is written. No gap is reported (the caller
        knows which span it asked for and what came back). Segments sealed before a failure are
        kept.

        :raises DeviceAuthError: the source refused the credentials.
        :raises DeviceError: the source could not be opened or broke off (its detail says how).
        """
        self._window = (start, end)
        failure: _Outage | None = None
        try:
            self._record_connection()
        except _SpanDone:
            pass
        except _Outage as outage:
            failure = outage
        current = self._current
        if current is not None:
            self._close_segment(end=min(current.end_at(), end))
        self._set_state(RecorderState.STOPPED, failure.detail if failure else "")
        if failure is not None:
            error = {GapCause.AUTH: DeviceAuthError, GapCause.STALL: DeviceTimeout}.get(
                failure.cause, DeviceUnreachable
            )
            raise error(self.key.device_id, failure.detail)

    # -- one connection ------------------------------------------------------------------------
    def _connect(self) -> av.container.InputContainer:
        try:
            url = self._open_url()
        except DeviceAuthError as exc:
            raise _Outage(GapCause.AUTH, exc.detail) from None
        except DeviceError as exc:
            raise _Outage(GapCause.UNREACHABLE, exc.detail) from None
        except TimeoutError:
            raise _Outage(
                GapCause.UNREACHABLE, "the device did not give its stream address in time"
            ) from None
        # FFmpeg's RTSP demuxer notices a silent socket after about twice its ``timeout``.
        options = {
            "rtsp_transport": "tcp",
            "timeout": str(int(self.socket_timeout * 500_000)),
            **_PROBE_OPTIONS,
        }
        try:
            return self._open(url, options)
        except _Outage:
            if self._forget_url is not None:
                self._forget_url()  # ask the device again next time: its address or password may have changed
            raise

    def _open(self, url: str, options: dict[str, str]) -> av.container.InputContainer:
        try:
            return av.open(url, options=options)
        except av.error.HTTPUnauthorizedError:
            raise _Outage(GapCause.AUTH, "credentials refused (401)") from None
        except av.error.HTTPForbiddenError:
            raise _Outage(GapCause.AUTH, "access forbidden (403)") from None
        except av.error.ConnectionRefusedError:
            raise _Outage(GapCause.UNREACHABLE, "connection refused") from None
        except TimeoutError:
            raise _Outage(GapCause.UNREACHABLE, "no answer (timeout)") from None
        except av.error.FFmpegError as exc:
            raise _Outage(GapCause.UNREACHABLE, _describe(exc)) from None
        except OSError as exc:
            raise _Outage(GapCause.UNREACHABLE, _describe(exc)) from None

    def _record_connection(self) -> None:
        container = self._connect()
        try:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            if video is None and audio is None:
                raise _Outage(GapCause.STREAM_ENDED, "the source has no audio or video")
            if video is not None and not (video.codec_context.width and video.codec_context.height):
                # The stream was set up but no picture arrived while FFmpeg probed it (a camera
                # that answers RTSP but sends nothing yet): the muxer cannot take it; try again.
                raise _Outage(GapCause.STALL, "the stream sent no picture")
            signature = tuple(
                (
                    s.codec_context.name,
                    getattr(s.codec_context, "width", 0),
                    getattr(s.codec_context, "height", 0),
                )
                for s in (video, audio)
                if s is not None
            )
            if self._signature is not None and signature != self._signature:
                self._close_segment()
                self._note_codec_change(signature)
            self._signature = signature
            self._demux(container, video, audio)
        finally:
            with contextlib.suppress(Exception):
                container.close()

    def _note_codec_change(self, signature: tuple[Any, ...]) -> None:
        if not self._gap_open:  # a change without an outage still closes the segment: a zero gap
            now = self.clock()
            self.callbacks.gap_opened(self.key, now, GapCause.CODEC_CHANGE, f"stream changed to {signature}")
            self._gap_open = True

    def _demux(self, container: av.container.InputContainer, video: Any, audio: Any) -> None:
        connection = _Connection(video, audio)
        streams = [s for s in (video, audio) if s is not None]
        # The per-packet loop: everything it touches is bound to a local once. A packet with a
        # DTS, while none is held (nearly all of them), skips _Connection.stamped().
        # A read that had to wait for data means the recorder has caught up: it then lets the next
        # packets gather (see _GATHER) and takes them in one go.
        stopped = self._stop.is_set
        wait = self._stop.wait
        clock = time.monotonic
        handle = self._handle
        held = connection.held
        last_dts = connection.last_dts
        done = clock()
        try:
            for packet in container.demux(streams):
                if clock() - done > _CAUGHT_UP:
                    connection.caught_up = True
                    if connection.written_rel is not None and wait(self._gather_time(connection)):
                        return
                if stopped():
                    return
                size = packet.size
                if size:
                    dts = packet.dts
                    if dts is not None and not held:
                        index = packet.stream_index
                        last_dts[index] = dts
                        handle(connection, packet, index, dts, size)
                    else:
                        for ready in connection.stamped(packet):
                            assert ready.dts is not None
                            handle(connection, ready, ready.stream_index, ready.dts, ready.size)
                done = clock()
        except TimeoutError:
            raise _Outage(GapCause.STALL, f"no data for {self.socket_timeout:g} s") from None
        except av.error.EOFError:
            return
        except av.error.FFmpegError as exc:
            raise _Outage(GapCause.STREAM_ENDED, _describe(exc)) from None
        except OSError as exc:
            raise _Outage(
                GapCause.STALL if "timed out" in str(exc).lower() else GapCause.STREAM_ENDED, _describe(exc)
            ) from None
        finally:
            if connection.pending:  # the connection ended while settling: place what came
                for held_packet in connection.settle():
                    self._place(connection, *held_packet)

    def _gather_time(self, connection: _Connection) -> float:
        """How long to let packets gather: up to _GATHER, and up to _GATHER_BYTES of this stream."""
        span = connection.written_rel
        if not span or span <= 0:
            return 0.0
        rate = (self.bytes_in - connection.bytes_at_anchor) / span
        return min(_GATHER, _GATHER_BYTES / rate) if rate > 0 else _GATHER

    def _handle(
        self, connection: _Connection, packet: av.Packet[Any], index: int, dts: int, size: int
    ) -> None:
        """Place one timestamped packet: wait for the first keyframe, cut on the grid, write.

        Per packet this is float arithmetic on ``rel`` (seconds since the anchor); a wall-clock
        time is made only at a cut point that may be due, or when a gap closes.
        """
        anchor = connection.anchor
        is_cut_point = index == connection.lead_index and (connection.video is None or packet.is_keyframe)
        if anchor is None:
            if not is_cut_point:
                return  # a segment starts with a keyframe: wait for one
            anchor = connection.anchor = dts * connection.seconds[index]
            connection.anchor_wall = self.clock()
            connection.anchor_mono = time.monotonic()
            connection.bytes_at_anchor = self.bytes_in
            if self._window is not None:
                connection.pending = None  # a recording is placed by the device's own time
                connection.from_rel = (self._window[0] - connection.anchor_wall).total_seconds()
                connection.until_rel = (self._window[1] - connection.anchor_wall).total_seconds()
        rel = dts * connection.seconds[index] - anchor
        pending = connection.pending
        if pending is None:
            self._place(connection, packet, index, dts, size, rel, is_cut_point)
            return
        pending.append((packet, index, dts, size, rel, is_cut_point))
        connection.lateness = min(connection.lateness, time.monotonic() - connection.anchor_mono - rel)
        if connection.caught_up or rel >= _SETTLE_SPAN:
            for held_packet in connection.settle():
                self._place(connection, *held_packet)

    def _place(
        self,
        connection: _Connection,
        packet: av.Packet[Any],
        index: int,
        dts: int,
        size: int,
        rel: float,
        is_cut_point: bool,
    ) -> None:
        """Write one packet ``rel`` seconds after the anchor: cut on the grid, close a gap."""
        if rel >= connection.until_rel:
            raise _SpanDone
        if self._gap_open:
            self._resume(connection.wall(rel))
        current = self._current
        if current is None or (is_cut_point and rel >= current.due_rel):
            if not is_cut_point or rel < connection.from_rel:
                return
            at = connection.wall(rel)
            if current is None or self._due(at):
                self._close_segment(end=at)  # contiguous: one ends where the next begins
                self._open_segment(connection, packet, at, rel)
                current = self._current
                assert current is not None
        current.write(packet, index, dts, rel)
        connection.written_rel = rel
        self.packets += 1
        self.bytes_in += size

    # -- segments and gaps ---------------------------------------------------------------------
    def _due(self, at: datetime) -> bool:
        assert self._current is not None and self._grid_origin is not None
        elapsed = (self._current.start - self._grid_origin) // self.segment
        boundary = self._grid_origin + (elapsed + 1) * self.segment
        return at >= boundary

    def _open_segment(self, connection: _Connection, first: av.Packet[Any], at: datetime, rel: float) -> None:
        if self._grid_origin is None:
            self._grid_origin = at
        video, audio = connection.video, connection.audio
        folder = self.spool / self.key.device_id / str(self.key.channel) / at.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_stamp(at)}{PARTIAL_SUFFIX}"
        assert first.dts is not None and first.time_base is not None
        cut = first.dts * first.time_base
        base = {stream.index: int(cut / stream.time_base) for stream in (video, audio) if stream is not None}
        segment = _Segment(path, video, audio, at, base, start_rel=rel)
        # Packets before the next grid boundary (less a millisecond for rounding) skip _due().
        elapsed = (at - self._grid_origin) // self.segment
        boundary = self._grid_origin + (elapsed + 1) * self.segment
        segment.due_rel = rel + (boundary - at).total_seconds() - 1e-3
        self._current = segment
        self._last_connection = connection  # whose written_rel is the last packet written
        self._set_state(RecorderState.RECORDING, "")

    def _close_segment(self, end: datetime | None = None) -> datetime | None:
        """Seal the open segment, if any; returns where the sealed segment ends."""
        current, self._current = self._current, None
        if current is None:
            return None
        current.end = end if end is not None else current.end_at()
        try:
            current.close()
        except av.error.FFmpegError as exc:
            self._log.warning("segment_close_failed", error=_describe(exc))
        if not current.path.exists() or current.end <= current.start:
            current.path.unlink(missing_ok=True)
            return None
        sealed = seal(
            current.path,
            self.key,
            current.start,
            current.end,
            (current.video_codec, current.audio_codec, current.audio_source_codec),
        )
        self.segments += 1
        self.callbacks.segment_sealed(sealed)
        return sealed.end

    def _outage(self, outage: _Outage) -> None:
        sealed_end = self._close_segment()
        if not self._gap_open:
            # The gap starts where the segment just sealed ends (its last packet's end), never
            # inside it; with no segment open, where the last packet written happened.
            start = sealed_end or self._last_written or self.clock()
            self.callbacks.gap_opened(self.key, start, outage.cause, outage.detail)
            self._gap_open = True
        self._log.warning("recorder_outage", cause=outage.cause.value, detail=outage.detail)

    @property
    def _last_written(self) -> datetime | None:
        """When the last packet written happened (worked out on demand, not per packet)."""
        connection = self._last_connection
        if connection is None or connection.written_rel is None:
            return None
        return connection.wall(connection.written_rel)

    def _resume(self, at: datetime) -> None:
        if self._gap_open:
            self.callbacks.gap_closed(self.key, at)
            self._gap_open = False

    def _set_state(self, state: RecorderState, detail: str) -> None:
        if (state, detail) != (self.state, self.detail):
            self.state, self.detail = state, detail
            self.callbacks.state_changed(self.key, state, detail)


def _describe(exc: BaseException) -> str:
    """An error in one line without any URL (which could hold credentials)."""
    text = getattr(exc, "strerror", None) or type(exc).__name__
    return str(text).split("rtsp://")[0].strip() or type(exc).__name__


def recover_partials(spool: Path, callbacks: RecorderCallbacks) -> list[SealedSegment]:
    """Turn the segments a crash left half-written into sealed ones, or remove them.

    A partial fragmented MP4 is readable up to its last complete fragment: those packets are
    remuxed into a sealed segment (times from its name and the packets' durations). A partial
    with nothing readable is removed.
    """
    recovered = []
    for partial in sorted(spool.rglob(f"*{PARTIAL_SUFFIX}")):
        key = ChannelKey(partial.parent.parent.parent.name, int(partial.parent.parent.name))
        start = datetime.strptime(partial.name.removesuffix(PARTIAL_SUFFIX), "%Y%m%dT%H%M%S.%fZ").replace(
            tzinfo=UTC
        )
        target = partial.with_name(partial.name.replace(PARTIAL_SUFFIX, ".recovering.mp4"))
        try:
            duration, codecs = _salvage(partial, target)
        except av.error.FFmpegError:
            duration, codecs = 0.0, (None, None, None)
        partial.unlink(missing_ok=True)
        if duration <= 0:
            target.unlink(missing_ok=True)
            continue
        segment = seal(target, key, start, start + timedelta(seconds=duration), codecs, recovered=True)
        callbacks.segment_sealed(segment)
        recovered.append(segment)
    return recovered


def _salvage(partial: Path, target: Path) -> tuple[float, tuple[str | None, str | None, str | None]]:
    """Remux the readable packets of ``partial`` into ``target``; return seconds and codecs."""
    source = av.open(str(partial))
    try:
        streams = [s for s in source.streams if s.type in ("video", "audio")]
        if not streams:
            return 0.0, (None, None, None)
        output = av.open(str(target), "w", format="mp4", options=_FMP4_OPTIONS)
        mapping = {s.index: output.add_stream_from_template(s) for s in streams}
        first: dict[int, int] = {}
        last = 0.0
        try:
            for packet in source.demux(streams):
                if packet.dts is None:
                    continue
                start = first.setdefault(packet.stream_index, packet.dts)
                end = (packet.dts - start + (packet.duration or 0)) * packet.time_base
                last = max(last, float(end))
                packet.stream = mapping[packet.stream_index]
                output.mux(packet)
        except av.error.FFmpegError:
            pass  # the torn last fragment: everything before it is kept
        output.close()
        video = next((s.codec_context.name for s in streams if s.type == "video"), None)
        audio = next((s.codec_context.name for s in streams if s.type == "audio"), None)
        return last, (video, audio, audio)
    finally:
        source.close()
