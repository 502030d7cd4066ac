"""The gst-rtsp-server test peer works, with PyAV as the client: the recorder tests can trust it.

Each mount gives its codecs; the file mount plays once, in real time, shared (a client joining
does not rewind the others) with every frame index present; Digest auth refuses wrong credentials;
freeze, stop and restart on the same port behave as the recorder's outage tests need.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import av.container
import av.error
import gst_peer
import pytest
from gst_peer import (
    SERVER_SCRIPT,
    STANDARD_MOUNTS,
    SYSTEM_PYTHON,
    GstRtspServer,
    frame_index,
    make_index_clip,
    open_rtsp,
    require_gst,
)

USER, PASSWORD = "admin", "p@ss w:rd"


@pytest.fixture
def gst() -> None:
    """Skip (fail under CI=true) when the GStreamer peer cannot run here."""
    require_gst()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GstRtspServer]:
    """Every standard live mount, and /file: a 12 s clip with frame indices burnt in."""
    require_gst()
    clip = make_index_clip(tmp_path_factory.mktemp("gst") / "clip.ts", seconds=12, audio="aac")
    with GstRtspServer({**STANDARD_MOUNTS, "/file": f"file:{clip}"}) as srv:
        yield srv


@pytest.fixture
def video_server(gst: None) -> Iterator[GstRtspServer]:
    """A server of its own, for the tests that stop or freeze it."""
    with GstRtspServer({"/video": "h264"}) as srv:
        yield srv


def _read_for(container: av.container.InputContainer, seconds: float) -> int:
    """Demux for ``seconds``; the number of packets."""
    deadline = time.monotonic() + seconds
    count = 0
    for _ in container.demux():
        count += 1
        if time.monotonic() >= deadline:
            break
    return count


def _drain(container: av.container.InputContainer, within: float) -> None:
    """Demux to the end of the stream, which must come ``within`` seconds."""
    deadline = time.monotonic() + within
    for _ in container.demux():
        assert time.monotonic() < deadline, f"the stream did not end or fail within {within} s"


# --- codecs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "codecs"),
    [
        ("/h264aac", ["h264", "aac"]),
        ("/h264pcmu", ["h264", "pcm_mulaw"]),
        ("/video", ["h264"]),
        ("/mic", ["aac"]),
    ],
)
def test_live_mount_gives_its_codecs(server: GstRtspServer, path: str, codecs: list[str]) -> None:
    with open_rtsp(server.url(path)) as container:
        assert [s.codec_context.name for s in container.streams] == codecs
        seen: set[str] = set()
        keyframe = False
        last_dts: int | None = None
        deadline = time.monotonic() + 4
        for packet in container.demux():
            if packet.dts is None:
                continue
            seen.add(packet.stream.codec_context.name)
            if packet.stream.type == "video":
                keyframe = keyframe or packet.is_keyframe
                # aud=false, config-interval=0: one packet per access unit, DTS strictly increasing.
                assert last_dts is None or packet.dts > last_dts, "equal DTS on the clean mount"
                last_dts = packet.dts
            if ((keyframe or "h264" not in codecs) and seen == set(codecs)) or time.monotonic() > deadline:
                break
    assert seen == set(codecs)
    assert keyframe or "h264" not in codecs


def test_splitidr_mount_splits_keyframes_with_equal_dts(server: GstRtspServer) -> None:
    """The camera quirk the recorder must repair: each IDR comes as two packets with one DTS."""
    equal_at_keyframe = 0
    with open_rtsp(server.url("/splitidr")) as container:
        assert [s.codec_context.name for s in container.streams] == ["h264", "aac"]
        previous: tuple[int, bool] | None = None  # (DTS, keyframe) of the previous packet
        deadline = time.monotonic() + 5
        for packet in container.demux(video=0):
            if packet.dts is None:
                continue
            if previous is not None and packet.dts == previous[0] and previous[1]:
                equal_at_keyframe += 1
                if equal_at_keyframe == 2:
                    break
            previous = (packet.dts, packet.is_keyframe)
            if time.monotonic() > deadline:
                break
    assert equal_at_keyframe == 2


# --- the file mount --------------------------------------------------------------------------------


def test_file_mount_is_real_time_shared_and_lossless(server: GstRtspServer) -> None:
    """Client A reads ~3.5 s; B joins after 1.5 s. A's indices run on (B's PLAY did not rewind the
    shared playback: the CLOCK_AND_OFFSET trap), B starts mid-clip, both lose nothing."""
    url = server.url("/file")

    def read_first() -> tuple[list[int | None], float]:
        started = time.monotonic()
        with open_rtsp(url) as container:
            indices = [
                frame_index(frame) for frame, _ in zip(container.decode(video=0), range(88), strict=False)
            ]
        return indices, time.monotonic() - started

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(read_first)
        time.sleep(1.5)
        with open_rtsp(url) as container:
            second = [
                frame_index(frame) for frame, _ in zip(container.decode(video=0), range(25), strict=False)
            ]
        first, elapsed = future.result(timeout=15)
    assert first == list(range(88)), first
    # 88 frames at 25 fps take 3.5 s from PLAY: real time, not as fast as the file can be read.
    assert elapsed >= 3.0, elapsed
    # The decoder may drop or grey out frames before B's first keyframe; from there on, consecutive.
    joined = [i for i in second if i is not None]
    assert joined and joined[0] > 0, second
    assert joined == list(range(joined[0], joined[0] + len(joined))), second


# --- authentication ------------------------------------------------------------------------------


def test_digest_auth_admits_the_right_credentials_only(gst: None) -> None:
    with GstRtspServer({"/video": "h264"}, user=USER, password=PASSWORD) as srv:
        with open_rtsp(srv.url("/video", user=USER, password=PASSWORD)) as container:
            assert [s.codec_context.name for s in container.streams] == ["h264"]
        for user, password in [(USER, "wrong"), ("intruder", PASSWORD), (None, None)]:
            with pytest.raises(av.error.HTTPUnauthorizedError):
                open_rtsp(srv.url("/video", user=user, password=password))
        # Digest only: the right password sent in clear (Basic) is refused too.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            sock.sendall(
                f"DESCRIBE {srv.url('/video')} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic {basic}\r\n\r\n".encode()
            )
            reply = sock.recv(4096).decode()
        assert reply.startswith("RTSP/1.0 401"), reply
        assert 'WWW-Authenticate: Digest realm="' in reply


# --- faults ----------------------------------------------------------------------------------------


def test_freeze_makes_a_reading_client_time_out(video_server: GstRtspServer) -> None:
    # FFmpeg's RTSP-over-TCP read gives up after about twice its `timeout` option (measured 2 s ->
    # 4.2 s, 5 s -> 10.2 s); 2.5 s makes the stall surface within about 5 s.
    with open_rtsp(video_server.url("/video"), timeout=2.5) as container:
        assert _read_for(container, 0.5) > 0
        video_server.freeze()
        frozen_at = time.monotonic()
        with pytest.raises(av.error.TimeoutError):
            _drain(container, within=10)
        waited = time.monotonic() - frozen_at
    assert waited < 7, waited
    video_server.thaw()
    with open_rtsp(video_server.url("/video")) as container:
        assert _read_for(container, 0.2) > 0


def test_stop_ends_the_stream_and_restart_serves_on_the_same_port(video_server: GstRtspServer) -> None:
    port, url = video_server.port, video_server.url("/video")
    with open_rtsp(url) as container:
        assert _read_for(container, 0.5) > 0
        stopped_at = time.monotonic()
        video_server.stop()
        with contextlib.suppress(av.error.FFmpegError):  # EOF, or an error depending on timing
            _drain(container, within=5)
        assert time.monotonic() - stopped_at < 3
    assert not video_server.running
    with pytest.raises(av.error.ConnectionRefusedError):
        open_rtsp(url)
    video_server.start()
    assert video_server.port == port
    with open_rtsp(url) as container:
        assert [s.codec_context.name for s in container.streams] == ["h264"]
        assert _read_for(container, 0.2) > 0
    video_server.restart(downtime=0.2)
    assert video_server.port == port
    with open_rtsp(url) as container:
        assert _read_for(container, 0.2) > 0


def test_stop_works_on_a_frozen_server(video_server: GstRtspServer) -> None:
    video_server.freeze()
    started = time.monotonic()
    video_server.stop()
    assert not video_server.running
    assert time.monotonic() - started < 3


# --- failures are clear ------------------------------------------------------------------------------


def test_missing_element_is_named_with_its_package(gst: None, tmp_path: Path) -> None:
    """A missing element would otherwise only show as "503" to the client."""
    empty = tmp_path / "no-plugins"
    empty.mkdir()
    env = {
        **os.environ,
        "GST_PLUGIN_SYSTEM_PATH_1_0": str(empty),
        "GST_PLUGIN_PATH_1_0": str(empty),
        "GST_REGISTRY_1_0": str(tmp_path / "registry.bin"),
    }
    result = subprocess.run(
        [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--mount", "/v=h264+aac"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == gst_peer.EXIT_MISSING
    assert "x264enc (Debian package gstreamer1.0-plugins-ugly)" in result.stderr
    assert "voaacenc (Debian package gstreamer1.0-plugins-bad)" in result.stderr
    assert result.stdout == ""


def test_unusable_mount_fails_start_with_the_reason(gst: None, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        GstRtspServer({"/clip": f"file:{tmp_path / 'missing.ts'}"}).start()
    with pytest.raises(RuntimeError, match="unknown mount kind"):
        GstRtspServer({"/x": "h265"}).start()


def test_require_gst_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gst_peer, "find_gst", lambda: "no gi here")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no gi here"):
        gst_peer.require_gst()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install"):
        gst_peer.require_gst()
