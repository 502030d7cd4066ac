"""Profile G: footage on the device's own storage, found with the search service, replayed over RTSP.

Recordings are listed with ``FindRecordings`` + ``GetRecordingSearchResults`` (search service);
a device without them is asked ``GetRecordings`` (recording service) and then
``GetRecordingInformation`` per recording, or ``GetRecordingSummary`` for the whole store.
Each recording's video track reports the range it holds (``DataFrom``–``DataTo``); that range,
clipped to the range asked for, is the span. (ONVIF reports a range per track, not the gaps in
it; ``FindEvents`` could find them, and is not used.)

A recording is tied to a channel by its ``Source/SourceId`` when that names a video source,
source configuration or profile token (as device-created recordings do); otherwise the
remaining recordings take the remaining channels in order.

Replay (ONVIF Streaming Specification §6): ``GetReplayUri`` gives an RTSP URI for the whole
recording; the span is chosen at ``PLAY`` with ``Range: clock=<start>-<end>`` and the header
``Require: onvif-replay``. :class:`ReplaySource` carries the span and builds those headers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime

import attrs

from camhub.adapter import MediaSource, RecordingSpan
from camhub.errors import DeviceError, DeviceProtocolError, DeviceUnsupported
from camhub.net import child, children, text
from camhub_onvif.client import OnvifClient, Services
from camhub_onvif.media import MediaChannel, channel_of_token
from camhub_onvif.soap import parse_datetime, x

__all__ = [
    "RecordingInfo",
    "ReplaySource",
    "Track",
    "assign_channels",
    "find_recordings",
    "parse_recording_information",
    "parse_recording_item",
    "spans_of",
]

#: Most GetRecordingSearchResults rounds for one search (each waits at most ``WaitTime``).
MAX_SEARCH_ROUNDS = 30


@attrs.frozen
class Track:
    """One track of a recording and the range of data it holds."""

    token: str
    type: str
    data_from: datetime | None = None
    data_to: datetime | None = None


@attrs.frozen
class RecordingInfo:
    """A recording on the device: its token, where it comes from, and its tracks."""

    token: str
    source_id: str = ""
    source_name: str = ""
    earliest: datetime | None = None
    latest: datetime | None = None
    tracks: tuple[Track, ...] = ()


@attrs.frozen(kw_only=True)
class ReplaySource(MediaSource):
    """An RTSP replay URI and the span to ask for when playing it."""

    start: datetime
    end: datetime

    def rtsp_headers(self, *, fast: bool = False) -> dict[str, str]:
        """Headers of the RTSP ``PLAY`` that selects the span (``fast``: as fast as the device can send)."""
        headers = {
            "Require": "onvif-replay",
            "Range": f"clock={_clock(self.start)}-{_clock(self.end)}",
        }
        if fast:
            headers["Rate-Control"] = "no"
        return headers


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"


# -- parsing ----------------------------------------------------------------------------------
def parse_recording_information(element: ET.Element) -> RecordingInfo:
    """A ``tt:RecordingInformation`` (search service)."""
    return RecordingInfo(
        token=text(element, "RecordingToken"),
        source_id=text(element, "Source", "SourceId"),
        source_name=text(element, "Source", "Name"),
        earliest=parse_datetime(text(element, "EarliestRecording")),
        latest=parse_datetime(text(element, "LatestRecording")),
        tracks=tuple(
            Track(
                token=text(track, "TrackToken"),
                type=text(track, "TrackType"),
                data_from=parse_datetime(text(track, "DataFrom")),
                data_to=parse_datetime(text(track, "DataTo")),
            )
            for track in children(element, "Track")
        ),
    )


def parse_recording_item(element: ET.Element) -> RecordingInfo:
    """A ``trc:RecordingItem`` (recording service ``GetRecordings``): no times in it."""
    return RecordingInfo(
        token=text(element, "RecordingToken"),
        source_id=text(element, "Configuration", "Source", "SourceId"),
        source_name=text(element, "Configuration", "Source", "Name"),
        tracks=tuple(
            Track(token=text(track, "TrackToken"), type=text(track, "Configuration", "TrackType"))
            for track in children(child(element, "Tracks"), "Track")
        ),
    )


# -- finding ----------------------------------------------------------------------------------
async def find_recordings(client: OnvifClient, services: Services) -> list[RecordingInfo]:
    """Every recording on the device, with the ranges its tracks hold."""
    if services.search:
        try:
            return await _search(client, services.search)
        except DeviceUnsupported:
            pass
    if not services.recording:
        raise DeviceUnsupported(
            client.device_id, "the device offers no Profile G search or recording service"
        )
    answer = await client.call(services.recording, "trc", "GetRecordings")
    items = [parse_recording_item(item) for item in children(answer, "RecordingItem")]
    if not services.search:
        return items
    try:
        return [await _information(client, services.search, item) for item in items]
    except DeviceUnsupported:
        summary = child(await client.call(services.search, "tse", "GetRecordingSummary"), "Summary")
        earliest, latest = (
            parse_datetime(text(summary, "DataFrom")),
            parse_datetime(text(summary, "DataUntil")),
        )
        return [attrs.evolve(item, earliest=earliest, latest=latest) for item in items]


async def _search(client: OnvifClient, url: str) -> list[RecordingInfo]:
    answer = await client.call(
        url,
        "tse",
        "FindRecordings",
        "<tse:Scope/><tse:MaxMatches>1000</tse:MaxMatches><tse:KeepAliveTime>PT10S</tse:KeepAliveTime>",
    )
    token = text(answer, "SearchToken")
    if not token:
        raise DeviceProtocolError(client.device_id, "FindRecordings: no SearchToken in the answer")
    found: list[RecordingInfo] = []
    completed = False
    try:
        for _ in range(MAX_SEARCH_ROUNDS):
            results = child(
                await client.call(
                    url,
                    "tse",
                    "GetRecordingSearchResults",
                    f"<tse:SearchToken>{x(token)}</tse:SearchToken><tse:MaxResults>100</tse:MaxResults>"
                    "<tse:WaitTime>PT1S</tse:WaitTime>",
                ),
                "ResultList",
            )
            found.extend(
                parse_recording_information(info) for info in children(results, "RecordingInformation")
            )
            if text(results, "SearchState") == "Completed":
                completed = True
                break
    finally:
        if not completed:  # a completed search has ended by itself
            with suppress(DeviceError):
                await client.call(url, "tse", "EndSearch", f"<tse:SearchToken>{x(token)}</tse:SearchToken>")
    return found


async def _information(client: OnvifClient, url: str, item: RecordingInfo) -> RecordingInfo:
    answer = await client.call(
        url, "tse", "GetRecordingInformation", f"<tse:RecordingToken>{x(item.token)}</tse:RecordingToken>"
    )
    info = child(answer, "RecordingInformation")
    return parse_recording_information(info) if info is not None else item


# -- channels and spans -----------------------------------------------------------------------
def assign_channels(recordings: Sequence[RecordingInfo], channels: Sequence[MediaChannel]) -> dict[str, int]:
    """Recording token → channel: by source token where it matches, else in order."""
    assigned: dict[str, int] = {}
    unmatched = []
    for info in recordings:
        number = channel_of_token(channels, info.source_id)
        if number is None or number in assigned.values():
            unmatched.append(info)
        else:
            assigned[info.token] = number
    numbers = [c.id for c in channels] or list(range(1, len(recordings) + 1))  # no media service: in order
    free = [n for n in numbers if n not in assigned.values()]
    for info, number in zip(unmatched, free, strict=False):
        assigned[info.token] = number
    return assigned


def spans_of(info: RecordingInfo, channel: int, start: datetime, end: datetime) -> list[RecordingSpan]:
    """The parts of ``info``'s video tracks (or of the whole recording) within [start, end)."""
    video = [t for t in info.tracks if t.type.lower() == "video"] or list(info.tracks)
    ranges = [(t.data_from, t.data_to) for t in video if t.data_from is not None and t.data_to is not None]
    if not ranges and info.earliest is not None and info.latest is not None:
        ranges = [(info.earliest, info.latest)]
    clipped = sorted({(max(a, start), min(b, end)) for a, b in ranges if max(a, start) < min(b, end)})
    return [RecordingSpan(channel=channel, start=a, end=b, token=info.token) for a, b in clipped]
