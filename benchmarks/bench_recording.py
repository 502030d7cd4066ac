"""Benchmark: camhub recording N live RTSP streams beside N ``ffmpeg -c copy -f segment`` processes.

One run, the same streams: a real gst-rtsp-server (``tests/gst_rtsp_server.py``) plays one
pre-encoded clip (1280x720 25 fps H.264 at 2 Mbit/s + AAC, every frame's index burnt into the
picture) as ONE shared real-time media (CLOCK_AND_OFFSET, see TESTBED), so serving many clients
costs the server little. A small RTSP client in this process starts the stream first, so both
tools join a running stream, as they would join a camera. Then, at the same time and on the same
mount:

* camhub: N :class:`~camhub.recorder.ChannelRecorder` threads in ONE worker process
  (60 s segments, a temporary spool, an in-memory callbacks object);
* the baseline: N processes of Debian's
  ``ffmpeg -loglevel error -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60 out%03d.mp4``.

After everyone is recording and a warm-up, a window of ``--seconds`` is measured:

* CPU seconds per camera-minute: utime+stime from ``/proc/PID/stat`` (all threads) over the
  window; for ffmpeg summed over its N processes. The server's own CPU is reported too.
* peak memory: the sum of PSS (``/proc/PID/smaps_rollup``) sampled every second in the window
  (PSS, not RSS: N ffmpeg processes share their libraries). This process never loads PyAV, so
  it takes no share of the camhub worker's pages.
* context switches per camera-second and the user share of the CPU (in the notes printed to
  stderr): a recorder thread that waits for the GIL shows up there.

Then everything is stopped (camhub seals its segments, ffmpeg gets SIGINT and writes its
trailer) and every recording is checked, for both tools:

* frames lost or repeated: each recorded video frame is identified by its burnt-in index. The
  clip is decoded once and every frame's index read from its picture; a recorded frame is then
  matched to its source frame by the bytes of its coded slices (remuxing copies them bit for
  bit), and the indices must run consecutively across every segment seam. A frame whose slices
  match no source frame counts as damaged. One stream per tool (all with ``--decode all``) is
  also decoded in full and its pictures' indices compared with the matched ones.
* the start artefact: how much longer than one frame the first picture of a stream's first
  segment is held — its jump (the first frame's timestamp against the following frames', by
  their index distance at 25 fps) plus its lead (the file starting, with audio, before the
  first picture). ffmpeg joining a running stream starts its file up to a GOP (2 s) before the
  first picture; the goal for camhub is none. More than 0.1 s counts.

``--max-search 100,150,...`` then steps camhub alone up (``--max-seconds`` windows) and stops
at the first N that loses frames, ends a stream more than 2 s behind the others, or fills the
machine: the most streams one machine records without losing packets.

Options for experiments, all off by default: ``--phases K`` serves K mounts of the clip started
a fraction of a frame apart (by default every client gets each frame at the same moment);
``--camhub-procs P`` spreads camhub's recorders over P processes (as ``camhub run --workers``);
``--camhub-env NAME=VALUE`` sets environment for the camhub worker only (e.g. malloc tuning).

    python benchmarks/bench_recording.py [--streams 1,10,50] [--seconds 60] [--max-search 100,150]

The machine is shared and noisy: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TESTS = ROOT / "tests"
SERVER_SCRIPT = TESTS / "gst_rtsp_server.py"
SYSTEM_PYTHON = os.environ.get("CAMHUB_GST_PYTHON", "/usr/bin/python3")
FFMPEG = os.environ.get("CAMHUB_BENCH_FFMPEG", "/usr/bin/ffmpeg")

WIDTH, HEIGHT, FPS, GOP = 1280, 720, 25, 50
VIDEO_BITRATE = 2_000_000
SEGMENT_SECONDS = 60
#: Media format of the cached clip and its index table: bump when either changes.
CLIP_VERSION = 1
#: A first picture held this much longer (or shorter) than one frame is a start artefact; RTP
#: jitter moves it by a frame at most.
ARTEFACT_TOLERANCE = 0.1
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: A max-search step fails when a stream ends this far behind the others (seconds).
MAX_BEHIND_S = 2.0
#: Share of all cores used by camhub and the server above which a max-search step is saturated
#: (the machine's own busy share counts other users' work too: it is reported, not used).
SATURATED = 0.95


# --- /proc ---------------------------------------------------------------------------------------


def cpu_times(pid: int) -> tuple[float, float, int]:
    """(utime, stime) of a process (all its threads, not its children) in seconds, and its
    context switches (voluntary and not, summed over its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    switches = 0
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with (
                contextlib.suppress(FileNotFoundError),
                open(f"/proc/{pid}/task/{task}/status", encoding="ascii") as handle,
            ):
                for line in handle:
                    if "ctxt_switches:" in line:
                        switches += int(line.split()[1])
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK, switches


def pss_kib(pid: int) -> int:
    """Proportional set size of a process (shared pages divided among their users), in KiB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user/nice
    return float(total - idle), float(total)


# --- the peer ------------------------------------------------------------------------------------


class Server:
    """gst-rtsp-server (system interpreter, with gi) serving ``mounts`` file mounts of one clip.

    Each mount is one shared real-time media: its clients all get each frame at the same moment.
    """

    def __init__(self, clip: Path, mounts: int = 1) -> None:
        command = [SYSTEM_PYTHON, str(SERVER_SCRIPT)]
        for k in range(mounts):
            command += ["--mount", f"/clip{k}=file:{clip}"]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # never written: the server exits when it closes
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(
                f"gst-rtsp-server did not start (first line {line!r}); is GStreamer installed? See TESTBED"
            )
        self.port = int(line.split()[1])
        self.urls = [f"rtsp://127.0.0.1:{self.port}/clip{k}" for k in range(mounts)]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class Primer(threading.Thread):
    """A minimal RTSP/TCP client (stdlib only) that plays the mount and discards what it gets.

    It starts the shared media before the measured clients connect, so that they join a running
    stream. It lives in the benchmark's own process, which is not measured, and maps none of the
    libraries camhub or ffmpeg use (it would otherwise take a share of their PSS).
    """

    def __init__(self, url: str) -> None:
        super().__init__(name="rtsp-primer", daemon=True)
        match = re.match(r"rtsp://([^:/]+):(\d+)(/.*)", url)
        assert match is not None
        self.url = url
        self.address = (match.group(1), int(match.group(2)))
        self.sock = socket.create_connection(self.address, timeout=10)
        self.cseq = 0
        self.session = ""
        self.playing = threading.Event()
        self.closed = threading.Event()
        self.bytes = 0

    def _request(self, method: str, url: str, headers: dict[str, str]) -> tuple[dict[str, str], bytes]:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", *(f"{k}: {v}" for k, v in headers.items())]
        if self.session:
            lines.append(f"Session: {self.session}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"RTSP {method}: connection closed")
            buffer += chunk
        head, body = buffer.split(b"\r\n\r\n", 1)
        status, *rest = head.decode("latin-1").split("\r\n")
        if " 200 " not in status:
            raise ConnectionError(f"RTSP {method}: {status}")
        reply = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in rest)}
        length = int(reply.get("content-length", "0"))
        while len(body) < length:
            body += self.sock.recv(length - len(body))
        return reply, body

    def run(self) -> None:
        try:
            reply, sdp = self._request("DESCRIBE", self.url, {"Accept": "application/sdp"})
            base = reply.get("content-base", self.url + "/")
            controls = re.findall(r"^a=control:(\S+)", sdp.decode("latin-1"), flags=re.MULTILINE)
            tracks = [c for c in controls if c != "*"]
            for channel, control in enumerate(tracks):
                target = control if control.startswith("rtsp://") else base.rstrip("/") + "/" + control
                transport = f"RTP/AVP/TCP;unicast;interleaved={2 * channel}-{2 * channel + 1}"
                reply, _ = self._request("SETUP", target, {"Transport": transport})
                self.session = reply.get("session", "").split(";")[0]
            self._request("PLAY", base, {"Range": "npt=0.000-"})
            self.playing.set()
            self.sock.settimeout(1.0)
            last_keepalive = time.monotonic()
            while not self.closed.is_set():
                try:
                    chunk = self.sock.recv(1 << 16)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                self.bytes += len(chunk)
                if time.monotonic() - last_keepalive > 15:  # the server's session timeout is 60 s
                    self.cseq += 1
                    keepalive = (
                        f"GET_PARAMETER {base} RTSP/1.0\r\nCSeq: {self.cseq}\r\nSession: {self.session}"
                    )
                    self.sock.sendall((keepalive + "\r\n\r\n").encode())
                    last_keepalive = time.monotonic()
        except OSError:
            return
        finally:
            self.playing.set()

    def stop(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.join(5)
        self.sock.close()


# --- the clip (made and read in worker processes: this process never loads PyAV) ----------------


def clip_paths(seconds: int) -> tuple[Path, Path]:
    user = os.getuid()
    folder = Path(tempfile.gettempdir()) / f"camhub-media-{user}"
    stem = f"bench-recording-v{CLIP_VERSION}-{WIDTH}x{HEIGHT}-{FPS}fps-{VIDEO_BITRATE // 1000}k-{seconds}s"
    return folder / f"{stem}.ts", folder / f"{stem}.index.json"


def _split_annexb(data: bytes) -> list[bytes]:
    nals = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        nals.append(data[begin : len(data) if nxt < 0 else nxt])
        start = nxt
    return nals


def _split_lengths(data: bytes, size: int) -> list[bytes]:
    nals = []
    pos = 0
    while pos + size <= len(data):
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
        nals.append(data[pos : pos + length])
        pos += length
    return nals


def slice_digest(data: bytes, length_size: int) -> str:
    """A digest of the coded slices of an access unit (NAL types 1-5), whatever its framing.

    ``length_size`` 0 means Annex B (start codes), else the NAL length prefix size (MP4/avcC).
    Parameter sets, AUDs and SEI are left out: the RTSP path adds or drops those.
    """
    nals = _split_annexb(data) if length_size == 0 else _split_lengths(data, length_size)
    digest = hashlib.blake2b(digest_size=12)
    for nal in nals:
        if nal and 1 <= nal[0] & 0x1F <= 5:
            digest.update(nal.rstrip(b"\x00"))
    return digest.hexdigest()


def _length_size(extradata: bytes | None) -> int:
    """NAL length size of an avcC record, or 0 for Annex B extradata/none."""
    if extradata and extradata[0] == 1 and len(extradata) > 4:
        return (extradata[4] & 0x03) + 1
    return 0


def make_clip_and_index(seconds: int) -> tuple[str, str]:
    """(worker) Make the clip if missing, and the table: slice digest -> burnt-in frame index."""
    sys.path.insert(0, str(TESTS))
    import av
    from gst_peer import frame_index, make_index_clip

    clip, table = clip_paths(seconds)
    if clip.exists() and table.exists():
        return str(clip), str(table)
    clip.parent.mkdir(parents=True, exist_ok=True)
    make_index_clip(
        clip, seconds=seconds, width=WIDTH, height=HEIGHT, fps=FPS, gop=GOP, video_bitrate=VIDEO_BITRATE
    )
    digests: list[str] = []
    indices: list[int | None] = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        size = _length_size(stream.codec_context.extradata)
        for packet in container.demux(stream):
            if packet.size:
                digests.append(slice_digest(bytes(packet), size))
            indices.extend(frame_index(frame) for frame in packet.decode())
    if len(digests) != len(indices) or indices != list(range(len(indices))):
        raise RuntimeError(f"{clip}: burnt-in indices are not 0..n-1 in packet order")
    if len(set(digests)) != len(digests):
        raise RuntimeError(f"{clip}: two frames have the same coded slices")
    partial = table.with_suffix(".partial")
    partial.write_text(json.dumps(dict(zip(digests, range(len(digests)), strict=True))))
    os.replace(partial, table)
    return str(clip), str(table)


# --- checking recordings (worker processes) ------------------------------------------------------


@dataclass
class StreamCheck:
    """What one stream's recording holds, read back from its files."""

    files: int = 0
    frames: int = 0
    first: int | None = None
    last: int | None = None
    lost: int = 0
    repeated: int = 0
    damaged: int = 0
    #: How much longer than one frame the first picture of the first segment is held (s): its
    #: jump (the following frames' timestamps minus where their indices put them after it) plus
    #: its lead (the file starts, with audio, before the first picture). None: no first segment.
    artefact: float | None = None
    jump: float = 0.0
    lead: float = 0.0
    #: Frames decoded in full whose burnt-in index differs from the matched one (-1: not decoded).
    decode_mismatches: int = -1
    error: str = ""


_TABLES: dict[str, dict[str, int]] = {}


def check_stream(files: Sequence[str], table_path: str, decode: bool) -> StreamCheck:
    """(worker) Identify every recorded video frame of one stream, in order, across its files."""
    sys.path.insert(0, str(TESTS))
    import av
    import av.error

    table = _TABLES.get(table_path)
    if table is None:
        table = _TABLES[table_path] = json.loads(Path(table_path).read_text())
    result = StreamCheck(files=len(files))
    previous: int | None = None
    for number, name in enumerate(files):
        stamps: list[tuple[float, int]] = []
        starts: dict[int, float] = {}
        matched: list[int | None] = []
        try:
            with av.open(name) as container:
                stream = container.streams.video[0]
                size = _length_size(stream.codec_context.extradata)
                wanted = [stream, *container.streams.audio[:1]]
                for packet in container.demux(wanted):
                    if not packet.size:
                        continue
                    if packet.pts is not None and packet.time_base is not None:
                        starts.setdefault(packet.stream_index, float(packet.pts * packet.time_base))
                    if packet.stream_index != stream.index:
                        continue
                    index = table.get(slice_digest(bytes(packet), size))
                    matched.append(index)
                    if index is None:
                        result.damaged += 1
                        continue
                    if number == 0 and len(stamps) < 2 * FPS and packet.pts is not None:
                        stamps.append((float(packet.pts * (packet.time_base or 0)), index))
                    if previous is not None:
                        if index <= previous:
                            result.repeated += 1
                        elif index > previous + 1:
                            result.lost += index - previous - 1
                    if result.first is None:
                        result.first = index
                    previous = result.last = index
                    result.frames += 1
                video_start = starts.get(stream.index)
            if decode:
                mismatches = _decode_mismatches(name, matched)
                result.decode_mismatches = max(result.decode_mismatches, 0) + mismatches
        except (av.error.FFmpegError, IndexError) as exc:
            result.error = f"{Path(name).name}: {exc}"
            continue
        if number == 0 and len(stamps) > 1 and video_start is not None:
            # The first picture is held too long when it is stamped early against the frames
            # after it (the jump), or when the file starts before it (audio first: the lead).
            t0, i0 = stamps[0]
            result.jump = statistics.median((t - t0) - (i - i0) / FPS for t, i in stamps[1:])
            result.lead = video_start - min(starts.values())
            result.artefact = result.jump + result.lead
    return result


def _decode_mismatches(name: str, matched: list[int | None]) -> int:
    import av
    from gst_peer import frame_index

    with av.open(name) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        decoded = [frame_index(frame) for frame in container.decode(stream)]
    if len(decoded) != len(matched):
        return abs(len(decoded) - len(matched)) + sum(a != b for a, b in zip(decoded, matched, strict=False))
    return sum(a != b for a, b in zip(decoded, matched, strict=True))


# --- camhub worker (a process of its own, measured) ----------------------------------------------


def camhub_worker(urls: Sequence[str], channels: range, spool: Path) -> None:
    """ChannelRecorders for ``channels`` in this process; READY when all record; 'stop' on stdin
    seals and exits.

    READY and DONE go to the original stdout; everything else written to fd 1 (camhub's log)
    goes to stderr, so that the protocol pipe never fills up with log lines.
    """
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    from datetime import datetime

    from camhub.catalog import GapCause
    from camhub.recorder import ChannelKey, ChannelRecorder, RecorderState, SealedSegment
    from camhub.recorder.memory import limit_freed_memory

    limit_freed_memory()  # as `camhub run` does

    class Callbacks:
        """Trivial in-memory callbacks (the hub's would write the catalog)."""

        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.segments: list[SealedSegment] = []
            self.gaps: list[tuple[str, str]] = []
            self.recording: set[ChannelKey] = set()
            self.changed = threading.Event()

        def segment_sealed(self, segment: SealedSegment) -> None:
            with self.lock:
                self.segments.append(segment)

        def gap_opened(self, key: ChannelKey, start: datetime, cause: GapCause, detail: str) -> None:
            with self.lock:
                self.gaps.append((str(key), f"{cause.value}: {detail}"))

        def gap_closed(self, key: ChannelKey, end: datetime) -> None:
            pass

        def state_changed(self, key: ChannelKey, state: RecorderState, detail: str) -> None:
            with self.lock:
                if state is RecorderState.RECORDING:
                    self.recording.add(key)
            self.changed.set()

    callbacks = Callbacks()
    recorders = [
        ChannelRecorder(
            ChannelKey(f"cam{i:03d}", 1),
            functools.partial(str, urls[i % len(urls)]),
            urls[i % len(urls)],
            spool,
            callbacks,
            segment_seconds=SEGMENT_SECONDS,
        )
        for i in channels
    ]
    for recorder in recorders:
        recorder.start()
    while len(callbacks.recording) < len(recorders):
        callbacks.changed.wait(1.0)
        callbacks.changed.clear()
    print("READY", file=protocol, flush=True)
    sys.stdin.readline()
    for recorder in recorders:
        recorder.request_stop()
    for recorder in recorders:
        recorder.stop(30)
    summary = {
        "segments": len(callbacks.segments),
        "gaps": callbacks.gaps,
        "packets": sum(r.packets for r in recorders),
        "alive": sum(r.alive for r in recorders),
    }
    print("DONE " + json.dumps(summary), file=protocol, flush=True)


# --- one round -----------------------------------------------------------------------------------


@dataclass
class ToolResult:
    cpu_per_cam_min: float = 0.0
    cpu_share: float = 0.0  # of one core, over the window
    peak_pss_mib: float = 0.0
    lost: int = 0
    repeated: int = 0
    damaged: int = 0
    frames: int = 0
    streams_checked: int = 0
    empty_streams: int = 0
    artefact_streams: int = 0
    artefact_max: float = 0.0
    decode_mismatches: int = -1
    #: Frames between the stream furthest ahead and the one furthest behind when they stopped
    #: (all stop together: a recorder that cannot keep up falls behind before it loses frames).
    behind_frames: int = 0
    errors: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class RoundResult:
    streams: int
    seconds: float
    tools: dict[str, ToolResult]
    server_cpu_share: float
    server_pss_mib: float
    machine_busy: float  # share of all cores busy over the window (everything on the machine)
    clients: int


class Round:
    """Everything started for one N, stopped in reverse order whatever happens."""

    def __init__(
        self,
        clip: Path,
        streams: int,
        tools: Sequence[str],
        workdir: Path,
        env: dict[str, str] | None = None,
        phases: int = 1,
        camhub_procs: int = 1,
    ) -> None:
        self.clip = clip
        self.env = env or {}
        self.phases = phases
        self.camhub_procs = max(1, min(camhub_procs, streams))
        self.streams = streams
        self.tools = tools
        self.workdir = workdir
        self.server: Server | None = None
        self.primers: list[Primer] = []
        self.camhubs: list[subprocess.Popen[str]] = []
        self.ffmpeg: list[subprocess.Popen[bytes]] = []
        self.camhub_summary: dict[str, Any] = {}
        self.ffmpeg_restarts = 0
        self.started = 0.0

    def url(self, i: int) -> str:
        """The mount stream ``i`` records (round robin over the phases)."""
        assert self.server is not None
        return self.server.urls[i % len(self.server.urls)]

    def start(self) -> None:
        self.started = time.monotonic()
        self.server = Server(self.clip, self.phases)
        for url in self.server.urls:
            # Each mount starts when its primer plays it: mounts started a fraction of a frame
            # apart deliver their frames at different moments, as independent cameras do.
            primer = Primer(url)
            self.primers.append(primer)
            primer.start()
            if not primer.playing.wait(15) or not primer.is_alive():
                raise RuntimeError("the primer client could not play the mount")
            time.sleep(1 / FPS / len(self.server.urls))
        time.sleep(3.0)  # the measured clients join a stream that is already running
        if "camhub" in self.tools:
            spool = self.workdir / "camhub"
            spool.mkdir()
            # One process with every recorder (the benchmark's subject), or the hub's --workers
            # split: channels spread over several processes.
            bounds = [self.streams * k // self.camhub_procs for k in range(self.camhub_procs + 1)]
            urls = ",".join(self.server.urls)
            for first, end in itertools.pairwise(bounds):
                command = [sys.executable, __file__, "--worker-camhub", urls, f"{first}:{end}", str(spool)]
                self.camhubs.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=(self.workdir / f"camhub-{first}.log").open("w"),
                        text=True,
                        env={**os.environ, **self.env},
                    )
                )
        if "ffmpeg" in self.tools:
            self.ffmpeg = [self._start_ffmpeg(i) for i in range(self.streams)]

    def _start_ffmpeg(self, i: int) -> subprocess.Popen[bytes]:
        assert self.server is not None
        folder = self.workdir / "ffmpeg" / f"cam{i:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        command = [FFMPEG, "-loglevel", "error", "-rtsp_transport", "tcp", "-i", self.url(i)]
        command += ["-c", "copy", "-f", "segment", "-segment_time", str(SEGMENT_SECONDS)]
        command += [str(folder / "out%03d.mp4")]
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(folder / "ffmpeg.log").open("a"),
        )

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        deadline = started + timeout
        for worker in self.camhubs:
            assert worker.stdout is not None
            line = worker.stdout.readline().strip()  # the worker prints READY or dies
            if line != "READY":
                raise RuntimeError(f"camhub worker did not get ready: {line!r} (see camhub-*.log)")
        for i in range(len(self.ffmpeg)):
            first = self.workdir / "ffmpeg" / f"cam{i:03d}" / "out000.mp4"
            while not first.exists():
                if self.ffmpeg[i].poll() is not None:
                    # It failed to connect (the server answers a burst of connections badly at
                    # times): start it again, as a supervisor would. camhub retries by itself.
                    self.ffmpeg_restarts += 1
                    if self.ffmpeg_restarts > self.streams:
                        raise RuntimeError(f"ffmpeg {i} keeps exiting before recording (see ffmpeg.log)")
                    self.ffmpeg[i] = self._start_ffmpeg(i)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ffmpeg {i} did not start recording in {timeout:.0f} s")
                time.sleep(0.1)
        return time.monotonic() - started

    def pids(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        if self.camhubs:
            found["camhub"] = [worker.pid for worker in self.camhubs]
        if self.ffmpeg:
            found["ffmpeg"] = [p.pid for p in self.ffmpeg]
        return found

    def stop(self) -> None:
        for worker in self.camhubs:
            if worker.poll() is None:
                assert worker.stdin is not None
                with contextlib.suppress(OSError):
                    worker.stdin.write("stop\n")
                    worker.stdin.flush()
        for proc in self.ffmpeg:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # ffmpeg finishes the segment and writes its trailer
        for worker in self.camhubs:
            try:
                out, _ = worker.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
                continue
            for line in out.splitlines():
                if line.startswith("DONE "):
                    for key, value in json.loads(line[5:]).items():  # counts add up, lists extend
                        self.camhub_summary[key] = self.camhub_summary.get(key, type(value)()) + value
        for proc in self.ffmpeg:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for primer in self.primers:
            primer.stop()
        if self.server is not None:
            self.server.stop()


@dataclass
class Window:
    """What one window measured."""

    cpu: dict[str, tuple[float, float, int]]  # per tool: user s, system s, context switches
    pss_kib: dict[str, int]  # per tool: peak of the summed PSS
    server_cpu: float
    server_pss_kib: int
    machine_busy: float


def measure_window(round_: Round, seconds: float) -> Window:
    """CPU and context switches over ``seconds``, and peak PSS sampled every second."""
    assert round_.server is not None
    tools = round_.pids()
    every = [pid for pids in tools.values() for pid in pids] + [round_.server.pid]
    before = {pid: cpu_times(pid) for pid in every}
    busy0, total0 = machine_busy()
    peak = dict.fromkeys(tools, 0)
    server_peak = 0
    end = time.monotonic() + seconds
    while True:
        for tool, pids in tools.items():
            peak[tool] = max(peak[tool], sum(pss_kib(pid) for pid in pids))
        server_peak = max(server_peak, pss_kib(round_.server.pid))
        now = time.monotonic()
        if now >= end:
            break
        time.sleep(min(1.0, end - now))
    after = {pid: cpu_times(pid) for pid in every}
    busy1, total1 = machine_busy()

    def spent(pids: Sequence[int]) -> tuple[float, float, int]:
        return (
            sum(after[p][0] - before[p][0] for p in pids),
            sum(after[p][1] - before[p][1] for p in pids),
            sum(after[p][2] - before[p][2] for p in pids),
        )

    server = spent([round_.server.pid])
    return Window(
        cpu={tool: spent(pids) for tool, pids in tools.items()},
        pss_kib=peak,
        server_cpu=server[0] + server[1],
        server_pss_kib=server_peak,
        machine_busy=(busy1 - busy0) / max(1.0, total1 - total0),
    )


def recordings(workdir: Path, tool: str, streams: int) -> list[list[str]]:
    """Each stream's recorded files in time order."""
    if tool == "camhub":
        return [
            sorted(str(p) for p in (workdir / "camhub" / f"cam{i:03d}" / "1").glob("*/*.mp4"))
            for i in range(streams)
        ]
    return [
        sorted(str(p) for p in (workdir / "ffmpeg" / f"cam{i:03d}").glob("out*.mp4")) for i in range(streams)
    ]


def run_round(
    clip: Path, table: Path, streams: int, seconds: float, tools: Sequence[str], args: argparse.Namespace
) -> RoundResult:
    workdir = Path(tempfile.mkdtemp(prefix=f"camhub-bench-rec-{streams}-"))
    try:
        return _run_round(clip, table, streams, seconds, tools, args, workdir)
    finally:
        if args.keep:
            print(f"  (recordings kept in {workdir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_round(
    clip: Path,
    table: Path,
    streams: int,
    seconds: float,
    tools: Sequence[str],
    args: argparse.Namespace,
    workdir: Path,
) -> RoundResult:
    env = dict(item.split("=", 1) for item in args.camhub_env)
    round_ = Round(clip, streams, tools, workdir, env, args.phases, args.camhub_procs)
    results = {tool: ToolResult() for tool in tools}
    try:
        round_.start()
        ready = round_.wait_ready(timeout=60 + streams)
        time.sleep(args.warmup)
        print(f"  N={streams}: all recording after {ready:.0f} s; measuring {seconds:g} s", file=sys.stderr)
        window = measure_window(round_, seconds)
        if time.monotonic() - round_.started > args.clip_seconds - 2:
            raise RuntimeError(
                "the clip ended before the window did (file mounts do not loop): use a longer one"
            )
    finally:
        round_.stop()
    minutes = seconds / 60
    for tool, (user, system, switches) in window.cpu.items():
        result = results[tool]
        result.cpu_per_cam_min = (user + system) / streams / minutes
        result.cpu_share = (user + system) / seconds
        result.peak_pss_mib = window.pss_kib[tool] / 1024
        result.notes["user_share"] = round(user / max(1e-9, user + system), 2)
        result.notes["switches_per_cam_s"] = round(switches / streams / seconds)
    results.get("camhub", ToolResult()).notes.update(round_.camhub_summary)
    if "ffmpeg" in results:
        results["ffmpeg"].notes["restarts"] = round_.ffmpeg_restarts
    for result in results.values():
        result.notes["ready_after_s"] = round(ready, 1)
    decode_mode = args.decode
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        for tool in tools:
            files = recordings(workdir, tool, streams)
            decode = [decode_mode == "all" or (decode_mode == "first" and i == 0) for i in range(streams)]
            checks = list(pool.map(check_stream, files, [str(table)] * streams, decode))
            summarize(results[tool], checks)
    assert round_.server is not None
    return RoundResult(
        streams=streams,
        seconds=seconds,
        tools=results,
        server_cpu_share=window.server_cpu / seconds,
        server_pss_mib=window.server_pss_kib / 1024,
        machine_busy=window.machine_busy,
        clients=streams * len(tools) + args.phases,
    )


def summarize(result: ToolResult, checks: Sequence[StreamCheck]) -> None:
    result.streams_checked = len(checks)
    lasts = [check.last for check in checks if check.last is not None]
    result.behind_frames = max(lasts) - min(lasts) if lasts else 0
    for check in checks:
        result.lost += check.lost
        result.repeated += check.repeated
        result.damaged += check.damaged
        result.frames += check.frames
        result.empty_streams += check.frames == 0
        if check.error:
            result.errors.append(check.error)
        if check.artefact is not None and abs(check.artefact) > ARTEFACT_TOLERANCE:
            result.artefact_streams += 1
        if check.artefact is not None and abs(check.artefact) > abs(result.artefact_max):
            result.artefact_max = check.artefact
        result.notes["max_jump_s"] = max(result.notes.get("max_jump_s", 0.0), round(abs(check.jump), 3))
        result.notes["max_lead_s"] = max(result.notes.get("max_lead_s", 0.0), round(check.lead, 3))
        if check.decode_mismatches >= 0:
            result.decode_mismatches = max(result.decode_mismatches, 0) + check.decode_mismatches


# --- reporting -----------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def frames_cell(result: ToolResult) -> str:
    text = f"{result.lost}/{result.repeated}"
    if result.damaged or result.empty_streams or result.errors:
        text += f" ({result.damaged} damaged, {result.empty_streams} empty, {len(result.errors)} errors)"
    return text


def artefact_cell(result: ToolResult) -> str:
    if result.artefact_streams == 0:
        return f"none (max {result.artefact_max * 1000:+.0f} ms)"
    return f"{result.artefact_streams}/{result.streams_checked} streams, up to {result.artefact_max:+.2f} s"


def print_table(rounds: Sequence[RoundResult]) -> None:
    header = (
        "| N | camhub CPU-s/cam-min | ffmpeg CPU-s/cam-min | CPU ratio | camhub PSS MiB | "
        "ffmpeg PSS MiB | PSS ratio | lost/repeated camhub | lost/repeated ffmpeg | "
        "start artefact camhub | start artefact ffmpeg | server CPU | machine busy |"
    )
    print(header)
    print("|" + " ---: |" * 13)
    for r in rounds:
        c, f = r.tools.get("camhub", ToolResult()), r.tools.get("ffmpeg", ToolResult())
        print(
            f"| {r.streams} | {c.cpu_per_cam_min:.3f} | {f.cpu_per_cam_min:.3f} | "
            f"{ratio(c.cpu_per_cam_min, f.cpu_per_cam_min)} | {c.peak_pss_mib:.1f} | {f.peak_pss_mib:.1f} | "
            f"{ratio(c.peak_pss_mib, f.peak_pss_mib)} | {frames_cell(c)} | {frames_cell(f)} | "
            f"{artefact_cell(c)} | {artefact_cell(f)} | {r.server_cpu_share * 100:.0f}% of a core "
            f"({r.clients} clients) | {r.machine_busy * 100:.0f}% |"
        )
    for r in rounds:
        for tool, t in r.tools.items():
            print(
                f"  N={r.streams} {tool}: {t.frames} frames checked in {t.streams_checked} streams, "
                f"decode cross-check mismatches {t.decode_mismatches}, CPU {t.cpu_share * 100:.0f}% of a core, "
                f"{t.notes}" + (f", errors {t.errors[:3]}" if t.errors else ""),
                file=sys.stderr,
            )


def print_search(rounds: Sequence[RoundResult]) -> None:
    print(
        "\n| N (camhub alone) | CPU-s/cam-min | camhub CPU | server CPU | machine busy | PSS MiB | "
        "lost/repeated | behind (frames) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rounds:
        c = r.tools["camhub"]
        print(
            f"| {r.streams} | {c.cpu_per_cam_min:.3f} | {c.cpu_share * 100:.0f}% of a core | "
            f"{r.server_cpu_share * 100:.0f}% | {r.machine_busy * 100:.0f}% | {c.peak_pss_mib:.1f} | "
            f"{frames_cell(c)} | {c.behind_frames} |"
        )


# --- main ----------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--streams", type=_ints, default=[1, 10, 50], help="N values, e.g. 1,10,50")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per N")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds between all recording and the window"
    )
    parser.add_argument("--tools", default="camhub,ffmpeg", help="camhub, ffmpeg or both")
    parser.add_argument("--max-search", type=_ints, default=[], help="camhub alone: N values to step up")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="window of each max-search step")
    parser.add_argument("--decode", choices=("none", "first", "all"), default="first")
    parser.add_argument(
        "--camhub-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the camhub worker only (experiments, e.g. MALLOC_ARENA_MAX=2)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the recordings")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--phases",
        type=int,
        default=1,
        help="mounts of the clip, started a fraction of a frame apart, streams spread over them "
        "(1: every client gets every frame at the same moment)",
    )
    parser.add_argument(
        "--camhub-procs",
        type=int,
        default=1,
        help="spread camhub's recorders over this many processes (as the hub's --workers); default 1",
    )
    parser.add_argument(
        "--worker-camhub", nargs=3, metavar=("URLS", "FIRST:END", "SPOOL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker_camhub:
        urls, channels, spool = args.worker_camhub
        first, end = (int(part) for part in channels.split(":"))
        camhub_worker(urls.split(","), range(first, end), Path(spool))
        return
    if not shutil.which(FFMPEG) and "ffmpeg" in args.tools:
        sys.exit(f"{FFMPEG} not found: apt-get install ffmpeg")
    tools = [t for t in ("camhub", "ffmpeg") if t in args.tools.split(",")]
    # The clip must outlast every round's start, warm-up, window and stop (file mounts do not loop).
    longest = max([*args.streams, *args.max_search, 1])
    clip_seconds = int(max(args.seconds, args.max_seconds) + args.warmup + 30 + longest * 0.3 + 20)
    clip_seconds = (clip_seconds + 29) // 30 * 30  # a few sizes only, so the cache is reused
    args.clip_seconds = clip_seconds
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        clip_name, table_name = pool.submit(make_clip_and_index, clip_seconds).result()
    clip, table = Path(clip_name), Path(table_name)
    print(
        f"clip {clip.name} ({clip_seconds} s, ready after {time.monotonic() - started:.0f} s); "
        f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')}",
        file=sys.stderr,
    )
    rounds: list[RoundResult] = []
    for streams in args.streams:
        t0 = time.monotonic()
        rounds.append(run_round(clip, table, streams, args.seconds, tools, args))
        print(f"  N={streams} done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if rounds:
        print_table(rounds)
    search: list[RoundResult] = []
    for streams in args.max_search:
        t0 = time.monotonic()
        result = run_round(clip, table, streams, args.max_seconds, ["camhub"], args)
        search.append(result)
        camhub = result.tools["camhub"]
        print(f"  max-search N={streams} done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        if camhub.lost or camhub.repeated or camhub.damaged or camhub.empty_streams:
            break
        if camhub.behind_frames > MAX_BEHIND_S * FPS:
            break
        if (camhub.cpu_share + result.server_cpu_share) / (os.cpu_count() or 1) >= SATURATED:
            break  # the recorder and the server alone fill the machine
    if search:
        print_search(search)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in (*rounds, *search)], indent=1))
    print(f"total {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
