"""Playback: one MP4 for a range across recorded segments, packets copied, nothing re-encoded."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from pathlib import Path

import av
import pytest
from gst_peer import GstRtspServer, frame_index, make_index_clip, require_gst

from camhub.errors import CamhubError
from camhub.playback import SegmentFile, export_range
from camhub.recorder import ChannelKey, ChannelRecorder, SealedSegment


class Sink:
    def __init__(self) -> None:
        self.segments: list[SealedSegment] = []

    def segment_sealed(self, segment: SealedSegment) -> None:
        self.segments.append(segment)

    def gap_opened(self, *args: object) -> None: ...

    def gap_closed(self, *args: object) -> None: ...

    def state_changed(self, *args: object) -> None: ...


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[SealedSegment]:
    require_gst()
    folder = tmp_path_factory.mktemp("playback")
    clip = make_index_clip(folder / "index.ts", seconds=20)
    with GstRtspServer({"/index": f"file:{clip}"}) as peer:
        sink = Sink()
        url = peer.url("/index")
        recorder = ChannelRecorder(
            ChannelKey("cam", 1), lambda: url, url, folder / "spool", sink, segment_seconds=4
        )
        recorder.start()
        time.sleep(14)
        recorder.stop(15)
    assert len(sink.segments) >= 3
    return sink.segments


def test_export_spans_segments_without_reencoding(recorded: list[SealedSegment], tmp_path: Path) -> None:
    files = [SegmentFile(s.path, s.start, s.end) for s in recorded]
    start = recorded[0].start + timedelta(seconds=3)  # inside the first segment, between keyframes
    end = recorded[2].start + timedelta(seconds=1)  # inside the third
    clip = export_range(files, start, end, tmp_path / "clip.mp4")
    assert clip.start <= start, "the clip starts at the keyframe at or before the requested start"
    assert start - clip.start <= timedelta(seconds=2.1)  # within one GOP
    assert clip.end >= end - timedelta(milliseconds=80)
    assert [s.path for s in clip.segments] == [s.path for s in recorded[:3]]
    assert clip.gaps == ()
    with av.open(str(clip.path)) as container:
        indices = [frame_index(frame) for frame in container.decode(video=0)]
    frames = [i for i in indices if i is not None]
    assert len(frames) == len(indices), "a damaged frame"
    assert {(b - a) % 500 for a, b in itertools.pairwise(frames)} == {1}, "no frame lost at seams"
    # Bit for bit: every video packet of the clip is a packet of a segment.
    source: set[bytes] = set()
    for segment in clip.segments:
        with av.open(str(segment.path)) as container:
            source.update(bytes(p) for p in container.demux(video=0) if p.size)
    with av.open(str(clip.path)) as container:
        exported = [bytes(p) for p in container.demux(video=0) if p.size]
    assert exported
    assert all(p in source for p in exported)


def test_export_of_an_empty_range_is_a_clear_error(recorded: list[SealedSegment], tmp_path: Path) -> None:
    files = [SegmentFile(s.path, s.start, s.end) for s in recorded]
    before = recorded[0].start - timedelta(hours=1)
    with pytest.raises(CamhubError, match="no footage between"):
        export_range(files, before, before + timedelta(minutes=1), tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()
