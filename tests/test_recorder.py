"""The recorder on real streams from gst-rtsp-server: segments, seams, outages, credentials.

Every test records a live RTSP stream from a real server (tests/gst_peer.py) with a real
ChannelRecorder and reads the result back with PyAV: nothing is mocked. Segments are short (4 s
on a 2 s GOP) to keep the suite quick; the invariants are the same at 60 s.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
import structlog
from gst_peer import GstRtspServer, frame_index, make_index_clip, require_gst

from camhub.catalog import GapCause
from camhub.recorder import ChannelKey, ChannelRecorder, RecorderState, SealedSegment

GRID = 4.0
GOP = 2.0  # the peer's key-int-max=50 at 25 fps


class Sink:
    """Collects what the recorder reports (the hub's sink writes the same into the catalog)."""

    def __init__(self) -> None:
        self.segments: list[SealedSegment] = []
        self.gaps: list[dict[str, Any]] = []
        self.states: list[tuple[RecorderState, str]] = []
        self.lock = threading.Lock()

    def segment_sealed(self, segment: SealedSegment) -> None:
        with self.lock:
            self.segments.append(segment)

    def gap_opened(self, key: ChannelKey, start: datetime, cause: GapCause, detail: str) -> None:
        with self.lock:
            self.gaps.append({"start": start, "cause": cause, "detail": detail, "end": None})

    def gap_closed(self, key: ChannelKey, end: datetime) -> None:
        with self.lock:
            self.gaps[-1]["end"] = end

    def state_changed(self, key: ChannelKey, state: RecorderState, detail: str) -> None:
        with self.lock:
            self.states.append((state, detail))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GstRtspServer]:
    require_gst()
    clip = make_index_clip(tmp_path_factory.mktemp("clip") / "index.ts", seconds=20)
    mounts = {
        "/h264aac": "h264+aac",
        "/h264pcmu": "h264+pcmu",
        "/video": "h264",
        "/split": "h264-splitidr+aac",
        "/index": f"file:{clip}",
    }
    with GstRtspServer(mounts) as peer:
        yield peer


def record(url: str, spool: Path, seconds: float) -> tuple[Sink, ChannelRecorder, float]:
    sink = Sink()
    recorder = ChannelRecorder(ChannelKey("cam-1", 1), lambda: url, url, spool, sink, segment_seconds=GRID)
    started = time.monotonic()
    recorder.start()
    time.sleep(seconds)
    recorder.stop(15)
    return sink, recorder, time.monotonic() - started


def probe(path: Path) -> dict[str, object]:
    """Decode a whole segment: codecs, first frame a keyframe, frame count, errors."""
    with av.open(str(path)) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        frames = 0
        first_key = None
        if video is not None:
            for frame in container.decode(video=0):
                if first_key is None:
                    first_key = frame.key_frame
                frames += 1
    return {
        "video": video.codec_context.name if video else None,
        "audio": audio.codec_context.name if audio else None,
        "frames": frames,
        "first_key": first_key,
    }


@pytest.mark.parametrize(
    ("mount", "audio", "source"),
    [
        ("/h264aac", "aac", "aac"),
        ("/h264pcmu", "aac", "pcm_mulaw"),
        ("/video", None, None),
        ("/split", "aac", "aac"),
    ],
)
def test_segments_are_keyframe_aligned_on_the_grid(
    server: GstRtspServer, tmp_path: Path, mount: str, audio: str | None, source: str | None
) -> None:
    sink, _, _ = record(server.url(mount), tmp_path, 13)
    segments = sink.segments
    assert len(segments) >= 3, sink.states
    assert sink.gaps == []
    for segment in segments:
        info = probe(segment.path)
        assert info["video"] == "h264"
        assert info["audio"] == audio
        assert info["first_key"] is True, f"{segment.path.name} does not start with a keyframe"
        assert segment.audio_source_codec == source
        assert segment.path.suffix == ".mp4"
        assert not list(tmp_path.rglob("*.partial.mp4"))
    for segment in segments[:-1]:  # the last one is cut by stop()
        assert abs(segment.duration.total_seconds() - GRID) <= GOP + 0.2, segment.duration
    for before, after in itertools.pairwise(segments):
        assert before.end == after.start, "consecutive segments are contiguous"


def test_no_frame_is_lost_across_seams(server: GstRtspServer, tmp_path: Path) -> None:
    sink, _, _ = record(server.url("/index"), tmp_path, 11)
    indices: list[int | None] = []
    for segment in sink.segments:
        with av.open(str(segment.path)) as container:
            indices.extend(frame_index(frame) for frame in container.decode(video=0))
    frames = [i for i in indices if i is not None]
    assert len(frames) == len(indices), "a damaged frame"
    steps = {(b - a) % 500 for a, b in itertools.pairwise(frames)}
    assert steps == {1}, f"frames lost or repeated: steps {sorted(steps)}"
    assert len(indices) >= 8 * 25


def test_segment_spans_plus_gaps_equal_wall_time(server: GstRtspServer, tmp_path: Path) -> None:
    sink, _, elapsed = record(server.url("/h264aac"), tmp_path, 10)
    covered = sum((s.duration for s in sink.segments), timedelta())
    span = sink.segments[-1].end - sink.segments[0].start
    assert covered == span  # contiguous, nothing counted twice
    # The recording starts at the first keyframe after connecting and ends at stop():
    assert elapsed - GOP - 2.0 <= span.total_seconds() <= elapsed


def test_outages_become_one_gap_each_with_their_cause(tmp_path: Path) -> None:
    require_gst()
    with GstRtspServer({"/cam": "h264+aac"}) as peer:
        sink = Sink()
        recorder = ChannelRecorder(
            ChannelKey("cam-1", 1),
            lambda: peer.url("/cam"),
            peer.url("/cam"),
            tmp_path,
            sink,
            segment_seconds=GRID,
            socket_timeout=3.0,
            backoff=(0.5, 2.0),
        )
        recorder.start()
        try:
            time.sleep(6)
            peer.stop()  # the server is gone for 20 s
            time.sleep(20)
            peer.start()
            time.sleep(8)
            peer.freeze()  # then hangs for 20 s: sockets open, nothing sent
            time.sleep(20)
            peer.thaw()
            time.sleep(8)
        finally:
            recorder.stop(15)
    assert [(g["cause"], g["end"] is not None) for g in sink.gaps] == [
        (GapCause.STREAM_ENDED, True),
        (GapCause.STALL, True),
    ], sink.gaps
    stopped, frozen = sink.gaps
    assert 18 <= (stopped["end"] - stopped["start"]).total_seconds() <= 30
    assert 18 <= (frozen["end"] - frozen["start"]).total_seconds() <= 30
    # Every second is accounted for: segments and gaps tile the recording without overlap.
    pieces = sorted([(s.start, s.end) for s in sink.segments] + [(g["start"], g["end"]) for g in sink.gaps])
    for (_, end), (start, _) in itertools.pairwise(pieces):
        assert start >= end - timedelta(milliseconds=50), "segments and gaps overlap"
        assert start - end <= timedelta(seconds=1), "an unexplained hole"


def test_wrong_credentials_no_tight_loop_and_no_password_logged(tmp_path: Path) -> None:
    require_gst()
    with GstRtspServer({"/cam": "h264"}, user="admin", password="right-Pässword") as peer:
        attempts = []

        def open_url() -> str:
            attempts.append(time.monotonic())
            return peer.url("/cam", user="admin", password="wrong-Pässword-42")

        sink = Sink()
        recorder = ChannelRecorder(
            ChannelKey("cam-1", 1),
            open_url,
            peer.url("/cam"),
            tmp_path,
            sink,
            segment_seconds=GRID,
        )
        with structlog.testing.capture_logs() as logs:
            recorder.start()
            time.sleep(8)
            state, detail = recorder.state, recorder.detail
            recorder.stop(15)
    assert state is RecorderState.RETRYING
    assert "credentials refused" in detail
    assert [g["cause"] for g in sink.gaps] == [GapCause.AUTH]
    assert len(attempts) == 1, "refused credentials are not retried within the auth backoff"
    assert "wrong-Pässword-42" not in repr(logs) + repr(sink.states) + repr(sink.gaps)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["recorder_outage"]
