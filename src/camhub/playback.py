"""Playback helpers: one MP4 for a time range, remuxed across segments without re-encoding.

This is the base of evidence export: the clip holds the original coded pictures and sound of
the stored segments, bit for bit, only re-timed so that the segments play as one. The clip
starts at the last keyframe at or before the requested start (a clip cannot start between
keyframes without re-encoding) and ends after the last packet before the requested end; the
actual range is returned so a manifest can state both.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import av
import av.error

from camhub.errors import CamhubError

__all__ = ["Clip", "SegmentFile", "export_range"]

_MP4_OPTIONS = {"movflags": "+faststart"}


@attrs.frozen
class SegmentFile:
    """A stored segment: its file and the wall-clock span it covers (UTC)."""

    path: Path
    start: datetime
    end: datetime


@attrs.frozen(kw_only=True)
class Clip:
    """What :func:`export_range` wrote."""

    path: Path
    start: datetime  # the actual start: the keyframe at or before the requested one
    end: datetime
    segments: tuple[SegmentFile, ...]
    gaps: tuple[tuple[datetime, datetime], ...]  # holes between the segments used


def export_range(segments: Sequence[SegmentFile], start: datetime, end: datetime, output: Path) -> Clip:
    """Write the footage of ``[start, end)`` from ``segments`` (one channel) into ``output``.

    Segments are used in time order; holes between them become gaps in the clip (its
    timeline keeps real time, so a player shows the jump). Nothing is re-encoded.

    :raises CamhubError: when no segment overlaps the range or a segment cannot be read.
    """
    chosen = sorted((s for s in segments if s.end > start and s.start < end), key=lambda s: s.start)
    if not chosen:
        raise CamhubError(f"no footage between {start.isoformat()} and {end.isoformat()}")
    gaps = tuple((a.end, b.start) for a, b in itertools.pairwise(chosen) if b.start - a.end > timedelta(0))
    output.parent.mkdir(parents=True, exist_ok=True)
    writer = _ClipWriter(output)
    actual_start: datetime | None = None
    actual_end = chosen[0].start
    try:
        for segment in chosen:
            first, last = writer.append(segment, start, end)
            if first is not None:
                actual_start = first if actual_start is None else actual_start
                actual_end = max(actual_end, last)
    finally:
        writer.close()
    if actual_start is None:
        output.unlink(missing_ok=True)
        raise CamhubError("the segments in the range hold no packets")
    return Clip(path=output, start=actual_start, end=actual_end, segments=tuple(chosen), gaps=gaps)


class _ClipWriter:
    """Appends segments to one MP4, keeping each stream's timestamps increasing."""

    def __init__(self, path: Path) -> None:
        self.output = av.open(str(path), "w", format="mp4", options=_MP4_OPTIONS)
        self.streams: dict[str, Any] = {}  # "video"/"audio" -> output stream
        self.origin: datetime | None = None  # wall time of timestamp 0 in the clip
        self.last_dts: dict[str, int] = {}

    def append(
        self, segment: SegmentFile, start: datetime, end: datetime
    ) -> tuple[datetime | None, datetime]:
        """Copy the packets of ``segment`` inside ``[start, end)``; return the first and last times."""
        try:
            source = av.open(str(segment.path))
        except av.error.FFmpegError as exc:
            raise CamhubError(f"segment {segment.path.name} cannot be read: {type(exc).__name__}") from None
        first_at: datetime | None = None
        last_at = segment.start
        try:
            inputs = [s for s in source.streams if s.type in ("video", "audio")]
            video = next((s for s in inputs if s.type == "video"), None)
            for stream in inputs:
                if stream.type not in self.streams:
                    self.streams[stream.type] = self.output.add_stream_from_template(stream)
            begin = _keyframe_at_or_before(source, video, segment, start) if video is not None else start
            source.seek(0)
            zero: dict[int, int] = {}
            for packet in source.demux(inputs):
                if packet.dts is None or packet.time_base is None:
                    continue
                zero.setdefault(packet.stream_index, packet.dts)
                offset = (packet.dts - zero[packet.stream_index]) * packet.time_base
                at = segment.start + timedelta(seconds=float(offset))
                if at < begin or at >= end:
                    continue
                if self.origin is None:
                    self.origin = at
                kind = packet.stream.type
                out = self.streams[kind]
                dts = int((at - self.origin).total_seconds() / packet.time_base)
                pts_shift = (packet.pts - packet.dts) if packet.pts is not None else 0
                last = self.last_dts.get(kind)
                if last is not None and dts <= last:
                    dts = last + 1
                self.last_dts[kind] = dts
                packet.dts, packet.pts = dts, dts + pts_shift
                packet.stream = out
                self.output.mux(packet)
                first_at = at if first_at is None else first_at
                duration = float(packet.duration * packet.time_base) if packet.duration else 0.0
                last_at = max(last_at, at + timedelta(seconds=duration))
        except av.error.FFmpegError as exc:
            raise CamhubError(f"segment {segment.path.name} is damaged: {type(exc).__name__}") from None
        finally:
            source.close()
        return first_at, last_at

    def close(self) -> None:
        self.output.close()


def _keyframe_at_or_before(source: Any, video: Any, segment: SegmentFile, start: datetime) -> datetime:
    """The wall time of the last video keyframe at or before ``start`` in a segment."""
    best = segment.start
    zero: int | None = None
    for packet in source.demux(video):
        if packet.dts is None:
            continue
        zero = packet.dts if zero is None else zero
        at = segment.start + timedelta(seconds=float((packet.dts - zero) * Fraction(packet.time_base)))
        if at > start:
            break
        if packet.is_keyframe:
            best = at
    return best
