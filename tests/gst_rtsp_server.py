#!/usr/bin/python3
"""A real RTSP server (gst-rtsp-server) for the recorder tests: run it with the system interpreter.

``/usr/bin/python3 tests/gst_rtsp_server.py --mount /cam=h264+aac --mount /clip=file:/tmp/clip.ts``
binds 127.0.0.1 (port 0 unless ``--port``), then prints ``PORT <n>`` as its first stdout line and
serves until SIGTERM/SIGINT or until its stdin closes (the parent died). Everything else goes to
stderr. ``--check`` only checks that every element of every mount kind exists (exit 0, or exit 3
naming the missing element and its Debian package): a missing element otherwise shows only as a
"503 Service Unavailable" to the client.

Mount kinds (every media is shared: one pipeline per mount, whatever the number of clients):

``h264``, ``h264+aac``, ``h264+pcmu``
    Live 640x360 25 fps H.264 (an IDR every 2 s, a clock burnt in), AAC or G.711 µ-law tone.
``h264-splitidr`` (optionally ``+aac``/``+pcmu``)
    The same, but x264enc writes access unit delimiters and rtph264pay repeats SPS/PPS before
    every IDR: clients see each keyframe split in two packets with the same DTS, as from real
    cameras (the recorder must repair it).
``aac``, ``pcmu``
    Audio only (a microphone).
``file:/path/clip.ts``
    An MPEG-TS file (H.264, plus AAC when the file has it) played once in real time, as one
    shared media whose clock is published (CLOCK_AND_OFFSET): a client joining does not rewind it.

A kind may take ``;key=value`` options: ``width``, ``height``, ``fps``, ``bitrate`` (kbit/s),
``gop`` (frames), ``rate`` (audio sample rate), e.g. ``h264+aac;width=1280;height=720;bitrate=2000``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

try:
    import gi  # type: ignore[import-not-found, import-untyped, unused-ignore]

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
        GLib,
        Gst,
        GstRtsp,
        GstRtspServer,
    )
except (ImportError, ValueError) as exc:  # ValueError: gi present, typelib missing
    _GI_ERROR: Exception | None = exc
else:
    _GI_ERROR = None

#: Exit status when GStreamer, gi or an element is missing (the peer cannot run here).
EXIT_MISSING = 3
#: Exit status for a bad command line or an unusable mount (a wrong test, not a missing package).
EXIT_USAGE = 2

APT_PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad"
)

#: The Debian package of each element used, for the "missing element" message.
ELEMENT_PACKAGES = {
    "videotestsrc": "gstreamer1.0-plugins-base",
    "audiotestsrc": "gstreamer1.0-plugins-base",
    "audioconvert": "gstreamer1.0-plugins-base",
    "audioresample": "gstreamer1.0-plugins-base",
    "timeoverlay": "gstreamer1.0-plugins-base",
    "appsrc": "gstreamer1.0-plugins-base",
    "appsink": "gstreamer1.0-plugins-base",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "rtpmp4gpay": "gstreamer1.0-plugins-good",
    "rtppcmupay": "gstreamer1.0-plugins-good",
    "mulawenc": "gstreamer1.0-plugins-good",
    "aacparse": "gstreamer1.0-plugins-good",
    "rtpbin": "gstreamer1.0-plugins-good",
    "udpsrc": "gstreamer1.0-plugins-good",
    "multiudpsink": "gstreamer1.0-plugins-good",
    "voaacenc": "gstreamer1.0-plugins-bad",
    "h264parse": "gstreamer1.0-plugins-bad",
    "tsdemux": "gstreamer1.0-plugins-bad",
    "filesrc": "libgstreamer1.0-0",
    "queue": "libgstreamer1.0-0",
    "funnel": "libgstreamer1.0-0",
    "tee": "libgstreamer1.0-0",
}
#: Elements gst-rtsp-server itself builds around every media.
SERVER_ELEMENTS = ("rtpbin", "udpsrc", "multiudpsink", "appsrc", "appsink", "funnel", "tee", "queue")

VIDEO_KINDS = ("h264", "h264-splitidr")
AUDIO_KINDS = ("aac", "pcmu")
#: Every live kind, for --check.
ALL_KINDS = ("h264+aac", "h264-splitidr+pcmu", "aac", "pcmu", "file:")

_DEFAULTS = {"width": 640, "height": 360, "fps": 25, "bitrate": 1000, "gop": 50, "rate": 0}

#: How far apart (in time) the streams of a file may be interleaved and still play.
_QUEUE_NS = 5_000_000_000

# TS stream_type values (ISO 13818-1 / H.222 table 2-34).
_TS_H264, _TS_AAC_ADTS = 0x1B, 0x0F


class UsageError(Exception):
    """A mount that cannot be served (bad kind, missing or unsupported file)."""


class MissingError(Exception):
    """GStreamer, gi or an element is not installed."""


@dataclass(frozen=True)
class Mount:
    path: str
    kind: str
    launch: str


def _options(spec: str) -> tuple[str, dict[str, int]]:
    kind, *pairs = spec.split(";")
    opts = dict(_DEFAULTS)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in opts or not value.isdigit():
            raise UsageError(f"bad option {pair!r} in {spec!r} (known: {', '.join(opts)}; integers)")
        opts[key] = int(value)
    return kind, opts


def _video_launch(kind: str, opts: dict[str, int], pay: str) -> str:
    split = kind == "h264-splitidr"
    # aud=false and config-interval=0: one packet per access unit. The split variant keeps
    # x264enc's AUDs and makes rtph264pay insert SPS/PPS before every IDR, as many cameras do.
    encoder = (
        f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={opts['bitrate']} "
        f"key-int-max={opts['gop']}{'' if split else ' aud=false'}"
    )
    return (
        f"videotestsrc is-live=true pattern=smpte ! "
        f"video/x-raw,width={opts['width']},height={opts['height']},framerate={opts['fps']}/1 ! "
        f"timeoverlay ! {encoder} ! "
        f"rtph264pay name={pay} pt=96 config-interval={-1 if split else 0}"
    )


def _audio_launch(kind: str, opts: dict[str, int], pay: str) -> str:
    source = "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert ! audioresample"
    if kind == "aac":
        rate = opts["rate"] or 48000
        return f"{source} ! audio/x-raw,rate={rate},channels=1 ! voaacenc ! rtpmp4gpay name={pay} pt=97"
    # RTP/AVP payload 0 is 8 kHz mono by definition.
    return f"{source} ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name={pay} pt=0"


def _ts_stream_types(path: str, limit: int = 2 * 1024 * 1024) -> list[int]:
    """The stream_type of each elementary stream in the first PMT of an MPEG-TS file."""
    with open(path, "rb") as f:
        data = f.read(limit)
    if len(data) < 188 or data[0] != 0x47:
        raise UsageError(f"{path}: not an MPEG-TS file (no sync byte at offset 0)")
    pmt_pid: int | None = None
    for pos in range(0, len(data) - 187, 188):
        packet = data[pos : pos + 188]
        if packet[0] != 0x47 or not packet[1] & 0x40:  # payload_unit_start only: a section starts
            continue
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        adaptation = (packet[3] >> 4) & 0x3
        start = 4 + (1 + packet[4] if adaptation in (2, 3) else 0)
        if adaptation == 2 or start >= 188:
            continue
        section = packet[start + 1 + packet[start] :]  # skip the pointer field
        if pid == 0 and section[:1] == b"\x00" and pmt_pid is None:
            # PAT: program loops of 4 bytes after the 8-byte header; program 0 is the NIT.
            length = ((section[1] & 0x0F) << 8) | section[2]
            for loop in range(8, 3 + length - 4, 4):
                if int.from_bytes(section[loop : loop + 2], "big") != 0:
                    pmt_pid = ((section[loop + 2] & 0x1F) << 8) | section[loop + 3]
                    break
        elif pmt_pid is not None and pid == pmt_pid and section[:1] == b"\x02":
            length = ((section[1] & 0x0F) << 8) | section[2]
            end = 3 + length - 4
            info_length = ((section[10] & 0x0F) << 8) | section[11]
            loop = 12 + info_length
            types: list[int] = []
            while loop + 5 <= end:
                types.append(section[loop])
                loop += 5 + (((section[loop + 3] & 0x0F) << 8) | section[loop + 4])
            return types
    raise UsageError(f"{path}: no program map table in the first {limit // 1024} KiB")


def _file_launch(spec: str) -> str:
    path = spec.removeprefix("file:")
    if not path:
        return "filesrc ! tsdemux ! h264parse ! rtph264pay ! aacparse ! rtpmp4gpay"  # --check only
    if not os.path.isfile(path):
        raise UsageError(f"file mount: {path!r} does not exist")
    types = _ts_stream_types(path)
    if _TS_H264 not in types:
        raise UsageError(f"{path}: no H.264 stream (stream types {[hex(t) for t in types]})")
    # Queues bounded by time only (the default 200 buffers/10 MB/1 s stalls on the first audio
    # packet of a file whose streams are interleaved more than 1 s apart).
    queue = f"queue max-size-buffers=0 max-size-bytes=0 max-size-time={_QUEUE_NS}"
    launch = (
        f"filesrc location={shlex.quote(path)} ! tsdemux name=demux "
        f"demux. ! {queue} ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1"
    )
    if _TS_AAC_ADTS in types:
        launch += f" demux. ! {queue} ! aacparse ! rtpmp4gpay name=pay1 pt=97"
    return launch


def launch_for(spec: str) -> str:
    """The gst-launch description of a mount kind (see the module docstring)."""
    if spec.startswith("file:"):
        return _file_launch(spec)
    kind, opts = _options(spec)
    video, plus, audio = kind.partition("+")
    if video in AUDIO_KINDS and not plus:
        return _audio_launch(video, opts, "pay0")
    if video not in VIDEO_KINDS or (plus and audio not in AUDIO_KINDS):
        raise UsageError(
            f"unknown mount kind {spec!r}: use h264, h264-splitidr, either +aac or +pcmu, "
            "aac, pcmu or file:/path.ts"
        )
    launch = _video_launch(video, opts, "pay0")
    if plus:
        launch += " " + _audio_launch(audio, opts, "pay1")
    return launch


def elements_of(launch: str) -> list[str]:
    """Element factory names in a launch description (caps and pad references skipped)."""
    names: list[str] = []
    for chunk in launch.replace("!", " ! ").split("!"):
        for word in chunk.split():
            if "=" in word or word.endswith("."):
                continue  # a property, or a reference to a named element's pad
            if "/" not in word:
                names.append(word)
            break  # only the first word of a chunk names an element
    return names


def check_elements(launches: Iterable[str]) -> None:
    if _GI_ERROR is not None:
        raise MissingError(
            f"cannot load GStreamer's GObject introspection ({_GI_ERROR}): "
            "python3-gi or gir1.2-gst-rtsp-server-1.0 is missing"
        )
    Gst.init(None)
    wanted = list(SERVER_ELEMENTS)
    for launch in launches:
        wanted.extend(elements_of(launch))
    missing = sorted({name for name in wanted if Gst.ElementFactory.find(name) is None})
    if missing:
        listed = ", ".join(f"{name} (Debian package {ELEMENT_PACKAGES.get(name, '?')})" for name in missing)
        raise MissingError(f"missing GStreamer element(s): {listed}")


def parse_mounts(values: Sequence[str]) -> list[Mount]:
    mounts: list[Mount] = []
    for value in values:
        path, sep, kind = value.partition("=")
        if not sep or not path.startswith("/") or not kind:
            raise UsageError(f"--mount wants /path=kind, not {value!r}")
        if any(m.path == path for m in mounts):
            raise UsageError(f"mount point {path} given twice")
        mounts.append(Mount(path, kind, launch_for(kind)))
    return mounts


def _factory(mount: Mount, role: str | None) -> Any:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {mount.launch} )")
    # One pipeline per mount shared by all clients, as a camera encodes once for every viewer.
    factory.set_shared(True)
    if mount.kind.startswith("file:"):
        # Without a published clock gst-rtsp-server 1.22 treats the file as seekable and every
        # PLAY (FFmpeg sends Range: npt=0-) rewinds the shared pipeline; 50 joining clients hung it.
        factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
    if role is not None:
        factory.add_role_from_structure(
            Gst.Structure.new_from_string(
                f"{role}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )
    return factory


def _attach(server: Any, port: int, retry_for: float) -> int:
    """Bind and attach; retry while the port is still held (a restart on the same port)."""
    deadline = time.monotonic() + retry_for
    while True:
        server.set_service(str(port))
        if server.attach(None):
            bound: int = server.get_bound_port()
            return bound
        if time.monotonic() >= deadline:
            raise OSError(f"cannot bind 127.0.0.1:{port} (still in use after {retry_for:.0f} s)")
        time.sleep(0.1)


def serve(mounts: Sequence[Mount], port: int, user: str | None, password: str | None, retry: float) -> None:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    role = None
    if user is not None:
        role = "user"
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
        auth.add_digest(user, password or "", token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
    points = server.get_mount_points()
    for mount in mounts:
        points.add_factory(mount.path, _factory(mount, role))

    loop = GLib.MainLoop()
    bound = _attach(server, port, retry)

    def _quit(*_args: object) -> bool:
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, _quit)
    # The parent keeps our stdin open: EOF or hang-up means it died, and we must not outlive it.
    GLib.io_add_watch(
        GLib.IOChannel.unix_new(sys.stdin.fileno()),
        GLib.PRIORITY_DEFAULT,
        GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
        lambda *_: bool(os.read(sys.stdin.fileno(), 4096)) or _quit(),
    )
    for mount in mounts:
        print(f"mount {mount.path}: {mount.launch}", file=sys.stderr, flush=True)
    print(f"PORT {bound}", flush=True)
    loop.run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--mount", action="append", default=[], metavar="/PATH=KIND")
    parser.add_argument("--port", type=int, default=0, help="0 (default): any free port")
    parser.add_argument("--bind-retry", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--check", action="store_true", help="check that every element exists, then exit")
    args = parser.parse_args(argv)
    try:
        if args.check:
            check_elements(launch_for(kind) for kind in ALL_KINDS)
            print("OK", Gst.version_string(), flush=True)
            return 0
        if not args.mount:
            raise UsageError("give at least one --mount /path=kind")
        if (args.user is None) != (args.password is None):
            raise UsageError("--user and --password go together")
        mounts = parse_mounts(args.mount)
        check_elements(m.launch for m in mounts)
        serve(mounts, args.port, args.user, args.password, args.bind_retry)
    except MissingError as exc:
        print(f"gst_rtsp_server: {exc}", file=sys.stderr)
        print(f"install with: apt-get install -y {APT_PACKAGES}", file=sys.stderr, flush=True)
        return EXIT_MISSING
    except (UsageError, OSError) as exc:
        print(f"gst_rtsp_server: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
