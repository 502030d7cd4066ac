"""A real RTSP peer for the recorder tests: gst-rtsp-server in a subprocess, with faults on demand.

:class:`GstRtspServer` runs ``tests/gst_rtsp_server.py`` under the system interpreter (which has
``gi``; the venv does not) on 127.0.0.1, and can stop it (EOF for clients), freeze it (SIGSTOP: a
hung camera, sockets open and silent), thaw it, and start it again on the same port (a camera
back after an outage). Mount kinds are documented in the server script: ``h264``, ``h264+aac``,
``h264+pcmu``, ``h264-splitidr[+aac|+pcmu]`` (keyframes split in two packets with equal DTS, as
from real cameras), ``aac``/``pcmu`` (a microphone) and ``file:/path/clip.ts`` (one shared
real-time playback, e.g. of :func:`make_index_clip`, whose frames carry their index).

Tests call :func:`require_gst` first: without GStreamer the test is skipped with the command that
installs it, except under ``CI=true``, where a missing peer is a failure.
"""

from __future__ import annotations

import atexit
import functools
import os
import select
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

import av
import av.container
import av.video.frame
import pytest

from camhub.testing.media import make_clip, read_frame_index

__all__ = [
    "APT_COMMAND",
    "STANDARD_MOUNTS",
    "GstRtspServer",
    "find_gst",
    "frame_index",
    "in_ci",
    "make_index_clip",
    "open_rtsp",
    "read_frame_index",
    "read_indices",
    "require_gst",
]

#: The interpreter with gi (override with CAMHUB_GST_PYTHON, e.g. on a distribution that keeps it elsewhere).
SYSTEM_PYTHON = os.environ.get("CAMHUB_GST_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")
APT_COMMAND = (
    "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-gi "
    "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad"
)
#: The server script's exit status when GStreamer, gi or an element is missing.
EXIT_MISSING = 3

#: The live mounts the recorder acceptance tests need (add a ``file:`` mount for indexed media).
STANDARD_MOUNTS: Mapping[str, str] = {
    "/h264aac": "h264+aac",
    "/h264pcmu": "h264+pcmu",
    "/video": "h264",
    "/splitidr": "h264-splitidr+aac",
    "/mic": "aac",
}


# --- availability --------------------------------------------------------------------------------


@functools.cache
def find_gst() -> str | None:
    """Why the GStreamer peer cannot run on this machine, or None when it can.

    Runs the server script's ``--check`` (gi, the GstRtspServer typelib and every element) once
    per process.
    """
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} (the system interpreter, which has gi) does not exist"
    try:
        result = subprocess.run(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--check"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} {SERVER_SCRIPT.name} --check failed: {exc}"
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
        problems = [
            line.removeprefix("gst_rtsp_server: ") for line in lines if line.startswith("gst_rtsp_server: ")
        ]
        detail = problems or lines[-1:]
        return detail[0] if detail else f"{SERVER_SCRIPT.name} --check exited with {result.returncode}"
    return None


def in_ci() -> bool:
    """True under a CI runner (``CI=true``, as GitHub Actions, GitLab and most others set)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_gst() -> None:
    """Skip the calling test when the GStreamer peer cannot run here; under CI, fail it instead."""
    reason = find_gst()
    if reason is None:
        return
    message = f"gst-rtsp-server peer unavailable: {reason}\ninstall it with: {APT_COMMAND}"
    if in_ci():
        pytest.fail(f"{message}\n(CI=true: a missing test peer is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


# --- the server ----------------------------------------------------------------------------------

#: Servers not yet garbage-collected: stopped at interpreter exit, so that none outlives the tests
#: (a frozen one would not notice its parent's death: SIGSTOP-ed processes read no stdin).
_LIVE: weakref.WeakSet[GstRtspServer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop(timeout=2.0)


class GstRtspServer:
    """gst-rtsp-server serving ``mounts`` (``{"/path": "kind"}``) on 127.0.0.1, in a subprocess.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`). The first start binds a
    free port; every later :meth:`start` binds that same port again, so the URLs stay valid across
    :meth:`stop`/:meth:`start` and :meth:`restart`. With ``user`` and ``password`` every mount
    asks for Digest authentication (Basic is refused, as is every other user or password).
    The server's stderr is kept in :attr:`log` for failure messages.
    """

    def __init__(
        self,
        mounts: Mapping[str, str],
        user: str | None = None,
        password: str | None = None,
        *,
        start_timeout: float = 15.0,
    ) -> None:
        if not mounts:
            raise ValueError("GstRtspServer needs at least one mount")
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self.mounts = dict(mounts)
        self.user = user
        self.password = password
        self.start_timeout = start_timeout
        self._port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen = False
        fd, log_path = tempfile.mkstemp(prefix="gst-rtsp-server-", suffix=".log")
        os.close(fd)
        self._log_path = Path(log_path)
        self._finalizer = weakref.finalize(self, self._log_path.unlink, missing_ok=True)
        _LIVE.add(self)

    # -- addresses

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the server has not been started yet")
        return self._port

    def url(self, path: str = "/", *, user: str | None = None, password: str | None = None) -> str:
        """``rtsp://[user:password@]127.0.0.1:PORT/path``; credentials are URL-quoted."""
        if not path.startswith("/"):
            path = "/" + path
        userinfo = ""
        if user is not None:
            userinfo = quote(user, safe="")
            if password is not None:
                userinfo += ":" + quote(password, safe="")
            userinfo += "@"
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{path}"

    # -- state

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def frozen(self) -> bool:
        return self._frozen

    @property
    def log(self) -> str:
        """Everything the server wrote to stderr, over all its starts."""
        try:
            return self._log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # -- life cycle

    def _command(self) -> list[str]:
        command = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self._port)]
        for path, kind in self.mounts.items():
            command += ["--mount", f"{path}={kind}"]
        if self.user is not None and self.password is not None:
            command += ["--user", self.user, "--password", self.password]
        return command

    def start(self) -> Self:
        """Start the server (on the port of the first start, if any) and wait until it listens."""
        if self.running:
            raise RuntimeError(f"the server is already running (pid {self.pid})")
        with self._log_path.open("ab") as log:
            # O_APPEND: every start adds to the log; the parent reads it by path, never by offset.
            proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.PIPE,  # never written: the server exits when it closes (we died)
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # a Ctrl-C for pytest must not kill it behind our back
            )
        self._proc, self._frozen = proc, False
        try:
            self._port = self._wait_for_port(proc)
        except BaseException:
            self._kill(proc)
            self._proc = None
            raise
        return self

    def _wait_for_port(self, proc: subprocess.Popen[bytes]) -> int:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + self.start_timeout
        buffer = b""
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"gst-rtsp-server printed no PORT line within {self.start_timeout:.0f} s\n{self._tail()}"
                )
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:  # stdout closed: the server exited
                code = proc.wait()
                what = "a GStreamer element or package is missing" if code == EXIT_MISSING else "failed"
                raise RuntimeError(f"gst-rtsp-server {what} (exit status {code}):\n{self._tail()}")
            buffer += chunk
        line = buffer.split(b"\n", 1)[0].decode(errors="replace")
        word, _, number = line.partition(" ")
        if word != "PORT" or not number.isdigit():
            raise RuntimeError(f"gst-rtsp-server's first line is {line!r}, not 'PORT <n>'\n{self._tail()}")
        return int(number)

    def _tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``); return its exit status.

        A frozen server is stopped too. Clients see their connections closed (EOF). Stopping a
        server that is not running does nothing and returns None.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            if self._frozen:
                proc.send_signal(signal.SIGCONT)  # a stopped process only acts on SIGTERM once resumed
        self._frozen = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
        self._close_pipes(proc)
        return proc.returncode

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        GstRtspServer._close_pipes(proc)

    @staticmethod
    def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    def restart(self, downtime: float = 0.0) -> Self:
        """Stop, wait ``downtime`` seconds, and start again on the same port."""
        self.stop()
        if downtime > 0:
            time.sleep(downtime)
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP the server: sockets stay open, nothing is sent or answered (a hung camera)."""
        proc = self._require_running()
        proc.send_signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT a frozen server: it carries on where it stopped."""
        proc = self._require_running()
        proc.send_signal(signal.SIGCONT)
        self._frozen = False

    def _require_running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("the server is not running")
        return self._proc

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "frozen" if self._frozen else "running" if self.running else "stopped"
        return f"<GstRtspServer 127.0.0.1:{self._port or '?'} {state} {self.mounts}>"


# --- media and clients -----------------------------------------------------------------------------


def make_index_clip(
    path: str | os.PathLike[str],
    *,
    seconds: int = 10,
    audio: Literal["aac"] | None = "aac",
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    gop: int = 50,
    video_bitrate: int = 1_000_000,
) -> Path:
    """An MPEG-TS clip for a ``file:`` mount: H.264 (+ AAC) whose frame ``i`` shows ``i`` burnt in.

    Read the index back from a decoded frame with :func:`read_frame_index`. The clip is encoded by
    :func:`camhub.testing.media.make_clip` as MP4, then remuxed (no re-encode) into MPEG-TS in
    timestamp order: ``make_clip`` muxes all video before any audio, which a TS muxer only
    interleaves over its 10 s ``max_interleave_delta``, and its AAC priming starts below zero,
    which wraps in TS. A longer clip written directly as .ts has its audio at the end of the file
    and a timestamp 26.5 hours away: tsdemux cannot play it in real time (clients get "Invalid data").
    """
    out = Path(path)
    if out.suffix.lower() != ".ts":
        raise ValueError("file mounts serve MPEG-TS: name the clip *.ts")
    with tempfile.TemporaryDirectory(prefix="camhub-clip-") as tmp:
        mp4 = make_clip(
            Path(tmp) / "clip.mp4",
            seconds=seconds,
            width=width,
            height=height,
            fps=fps,
            gop=gop,
            video_bitrate=video_bitrate,
            audio=audio,
            burn_index=True,
        )
        partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
        try:
            with av.open(str(mp4)) as source, av.open(str(partial), "w", format="mpegts") as sink:
                streams = {s.index: sink.add_stream_from_template(s) for s in source.streams}
                # The MP4 demuxer hands out samples in timestamp order (within 1 s); the TS muxer
                # converts avcC to Annex B and adds ADTS headers, and shifts the AAC priming to >= 0.
                for packet in source.demux(list(source.streams)):
                    if packet.dts is None:
                        continue
                    packet.stream = streams[packet.stream.index]
                    sink.mux(packet)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    return out


def open_rtsp(url: str, *, timeout: float = 5.0) -> av.container.InputContainer:
    """Open an RTSP URL with PyAV over TCP, with the RTSP demuxer's own socket timeout.

    The ``timeout`` option (µs) is handled in C; ``av.open(timeout=...)`` would install PyAV's
    interrupt callback, which takes the GIL on every read check (see TESTBED).
    """
    return av.open(url, options={"rtsp_transport": "tcp", "timeout": str(round(timeout * 1_000_000))})


def read_indices(url: str, frames: int, *, timeout: float = 5.0) -> list[int | None]:
    """Decode ``frames`` video frames from ``url``; the burnt-in index of each (None: damaged)."""
    indices: list[int | None] = []
    with open_rtsp(url, timeout=timeout) as container:
        for frame in container.decode(video=0):
            indices.append(frame_index(frame))
            if len(indices) >= frames:
                break
    return indices


def frame_index(frame: av.video.frame.VideoFrame) -> int | None:
    """The burnt-in index of a decoded frame, or None when the picture is damaged or has none."""
    try:
        return read_frame_index(frame)
    except ValueError:
        return None
