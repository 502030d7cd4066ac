"""ISAPI XML documents into camhub values, read by local name whatever the namespace.

Hikvision firmware writes the same document under ``hikvision.com/ver10``, ``hikvision.com/ver20``
or ``isapi.org/ver20`` (and PSIA extensions), sometimes several in one document, so nothing here
looks at a namespace. Every function takes an already safely parsed element (see
:func:`camhub.net.parse_xml`) and raises :class:`~camhub.errors.DeviceProtocolError` for a
document that is well-formed but not what ISAPI promises.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import attrs

from camhub.adapter import ChannelInfo, DeviceIdentity, RecordingSpan, StorageState
from camhub.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceUnsupported
from camhub.model import ChannelKind
from camhub.net import child, local_name, text

__all__ = [
    "DeviceClock",
    "DeviceInfo",
    "IsapiStatus",
    "SearchPage",
    "expect_root",
    "format_isapi_time",
    "format_rtsp_time",
    "merge_channels",
    "parse_device_info",
    "parse_input_proxy_channels",
    "parse_isapi_time",
    "parse_posix_offset",
    "parse_search_result",
    "parse_storage",
    "parse_streaming_channels",
    "parse_time",
    "response_status",
    "search_description",
    "status_error",
]

#: ``subStatusCode`` values meaning "this device does not offer that".
NOT_SUPPORTED = frozenset({"notsupport", "notsupported", "invalidoperation"})
#: ``subStatusCode`` values meaning "logged in, but this account may not do that".
NO_PERMISSION = frozenset({"lowprivilege", "nopermission", "permissiondenied"})


# -- ResponseStatus -------------------------------------------------------------------------
@attrs.frozen
class IsapiStatus:
    """A ``<ResponseStatus>``: how ISAPI explains a refusal or a failure."""

    status_code: str
    status_string: str
    sub_status_code: str

    @property
    def not_supported(self) -> bool:
        return self.sub_status_code.replace(" ", "").lower() in NOT_SUPPORTED

    @property
    def no_permission(self) -> bool:
        return self.sub_status_code.replace(" ", "").lower() in NO_PERMISSION

    def __str__(self) -> str:
        words = [w for w in (self.status_string, self.sub_status_code) if w]
        return " / ".join(words) or f"statusCode {self.status_code}"


def response_status(root: ET.Element) -> IsapiStatus | None:
    """The ``ResponseStatus`` a document is, or None when it is another document."""
    if local_name(root.tag) != "ResponseStatus":
        return None
    return IsapiStatus(text(root, "statusCode"), text(root, "statusString"), text(root, "subStatusCode"))


def status_error(device_id: str, http_status: int, status: IsapiStatus | None, what: str) -> DeviceError:
    """The camhub error for a refused ISAPI request (HTTP status plus its ``ResponseStatus``)."""
    detail = f" ({status})" if status is not None else ""
    if status is not None and status.not_supported:
        return DeviceUnsupported(device_id, f"{what}: not supported by the device{detail}")
    if status is not None and status.no_permission:
        return DeviceAuthError(device_id, f"{what}: the account lacks the permission{detail}")
    if http_status in (403, 404, 405, 501):
        return DeviceUnsupported(device_id, f"{what}: the device answered HTTP {http_status}{detail}")
    return DeviceProtocolError(device_id, f"{what}: the device answered HTTP {http_status}{detail}")


def expect_root(device_id: str, root: ET.Element, name: str, what: str) -> ET.Element:
    """``root`` if it is a ``<name>`` document; a refusal in a 200 answer is mapped like one in a 403."""
    actual = local_name(root.tag)
    if actual == name:
        return root
    status = response_status(root)
    if status is not None:
        raise status_error(device_id, 200, status, what)
    raise DeviceProtocolError(device_id, f"{what}: expected a <{name}> document, got <{actual}>")


# -- identity -------------------------------------------------------------------------------
@attrs.frozen
class DeviceInfo:
    """``/ISAPI/System/deviceInfo``: the identity, and what kind of device answers."""

    identity: DeviceIdentity
    device_type: str

    @property
    def is_recorder(self) -> bool:
        """An NVR or DVR (its cameras are proxied inputs), from ``deviceType``."""
        kind = self.device_type.upper()
        return "NVR" in kind or "DVR" in kind


def parse_device_info(device_id: str, root: ET.Element) -> DeviceInfo:
    """Model, serial, firmware (version and build), MAC and name from a ``DeviceInfo`` document."""
    info = expect_root(device_id, root, "DeviceInfo", "GET /ISAPI/System/deviceInfo")
    firmware = " ".join(w for w in (text(info, "firmwareVersion"), text(info, "firmwareReleasedDate")) if w)
    identity = DeviceIdentity(
        vendor="hikvision",
        model=text(info, "model"),
        serial=text(info, "serialNumber"),
        firmware=firmware,
        mac=text(info, "macAddress").lower(),
        name=text(info, "deviceName"),
    )
    return DeviceInfo(identity=identity, device_type=text(info, "deviceType"))


# -- time -----------------------------------------------------------------------------------
_POSIX_TZ = re.compile(r"^\s*[A-Za-z]{3,}\s*([+-]?)(\d{1,2})(?::(\d{1,2}))?(?::(\d{1,2}))?")


def parse_posix_offset(value: str) -> timedelta | None:
    """The UTC offset of a POSIX ``TZ`` string as Hikvision writes it: ``CST-7:00:00`` is UTC+7.

    POSIX counts hours *west* of Greenwich, so the sign is the opposite of the usual one. A
    daylight-saving rule after the standard offset (``…DST01:00:00,M3.5.0/…``) is ignored: the
    device's ``localTime`` carries the offset actually in force.
    """
    match = _POSIX_TZ.match(value)
    if match is None:
        return None
    sign, hours, minutes, seconds = match.groups()
    west = timedelta(hours=int(hours), minutes=int(minutes or 0), seconds=int(seconds or 0))
    offset = west if sign == "-" else -west
    return offset if abs(offset) <= timedelta(hours=14) else None


def format_offset(offset: timedelta) -> str:
    """``UTC+07:00`` for an offset of seven hours."""
    sign = "-" if offset < timedelta(0) else "+"
    minutes = int(abs(offset).total_seconds()) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_isapi_time(value: str, default_tz: tzinfo | None = None) -> datetime | None:
    """An ISAPI ``dateTime`` (``2021-07-02T14:25:36+08:00``, ``…Z``) as UTC; None if unreadable.

    A time written without an offset is read in ``default_tz``; without one, it is unreadable.
    """
    raw = value.strip()
    if not raw:
        return None
    if raw[-1] in "Zz":
        raw = raw[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if default_tz is None:
            return None
        parsed = parsed.replace(tzinfo=default_tz)
    return parsed.astimezone(UTC)


@attrs.frozen
class DeviceClock:
    """``/ISAPI/System/time``: the device's clock in UTC and its zone."""

    time: datetime
    zone: tzinfo
    label: str  # ``UTC+07:00``, or the device's own words when they cannot be read


def parse_time(device_id: str, root: ET.Element) -> DeviceClock:
    """The device clock from a ``Time`` document (``localTime`` and a POSIX ``timeZone``)."""
    doc = expect_root(device_id, root, "Time", "GET /ISAPI/System/time")
    local = text(doc, "localTime")
    zone_text = text(doc, "timeZone")
    posix = parse_posix_offset(zone_text)
    zone: tzinfo | None = timezone(posix) if posix is not None else None
    try:
        stated = datetime.fromisoformat(local[:-1] + "+00:00" if local.endswith("Z") else local)
    except ValueError:
        raise DeviceProtocolError(
            device_id, f"GET /ISAPI/System/time: unreadable localTime {local!r}"
        ) from None
    if stated.tzinfo is None:
        if zone is None:
            raise DeviceProtocolError(device_id, "GET /ISAPI/System/time: localTime without a time zone")
        stated = stated.replace(tzinfo=zone)
    offset = stated.utcoffset()
    if offset is not None and not local.endswith("Z"):
        # The offset in force (daylight saving included) is the one written beside the time.
        zone = timezone(offset)
    if zone is None:
        zone = UTC
    label_offset = zone.utcoffset(None)
    label = format_offset(label_offset) if label_offset is not None else zone_text
    return DeviceClock(time=stated.astimezone(UTC), zone=zone, label=label)


def format_isapi_time(moment: datetime, zone: tzinfo = UTC) -> str:
    """``2024-01-01T00:00:00Z``: how ContentMgmt search wants times (in ``zone``, always with Z)."""
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_rtsp_time(moment: datetime, zone: tzinfo = UTC) -> str:
    """``20240101T000000Z``: how playback URIs write times."""
    return moment.astimezone(zone).strftime("%Y%m%dT%H%M%SZ")


def parse_zulu_time(value: str, zone: tzinfo = UTC) -> datetime | None:
    """A ContentMgmt time (``…Z``), read in ``zone`` for firmware that writes local time with Z."""
    raw = value.strip()
    if raw[-1:] in ("Z", "z"):
        raw = raw[:-1]
    else:
        return parse_isapi_time(raw, zone)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    return parsed.replace(tzinfo=zone).astimezone(UTC)


# -- channels -------------------------------------------------------------------------------
def _flag(element: ET.Element | None, name: str, default: bool) -> bool:
    value = text(element, name).lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    return default


def _id(element: ET.Element, name: str = "id") -> int | None:
    value = text(element, name)
    return int(value) if value.isdigit() else None


def parse_streaming_channels(root: ET.Element) -> list[ChannelInfo]:
    """Channels from ``/ISAPI/Streaming/channels``: stream ``101`` is channel 1's main stream.

    A channel whose streams carry sound and no picture is a microphone; otherwise a camera,
    with ``audio`` set when its main stream carries sound.
    """
    chosen: dict[int, tuple[int, ET.Element]] = {}
    for stream in root.iter():
        if local_name(stream.tag) != "StreamingChannel":
            continue
        stream_id = _id(stream)
        if stream_id is None:
            continue
        channel, number = divmod(stream_id, 100) if stream_id >= 100 else (stream_id, 1)
        if channel < 1:
            continue
        # The main stream (x01) describes the channel; another stream only when x01 is missing.
        if channel not in chosen or (number == 1 and chosen[channel][0] != 1):
            chosen[channel] = (number, stream)
    channels = []
    for channel, (_, stream) in sorted(chosen.items()):
        video = child(stream, "Video")
        audio = child(stream, "Audio")
        has_video = video is not None and _flag(video, "enabled", True)
        has_audio = audio is not None and _flag(audio, "enabled", False)
        kind = ChannelKind.MICROPHONE if has_audio and not has_video else ChannelKind.CAMERA
        channels.append(ChannelInfo(id=channel, kind=kind, name=text(stream, "channelName"), audio=has_audio))
    return channels


def parse_input_proxy_channels(root: ET.Element, status: ET.Element | None = None) -> list[ChannelInfo]:
    """An NVR's camera inputs (``InputProxy/channels``), online from ``InputProxy/channels/status``."""
    online: dict[int, bool | None] = {}
    if status is not None:
        for entry in status.iter():
            if local_name(entry.tag) == "InputProxyChannelStatus" and (ident := _id(entry)) is not None:
                value = text(entry, "online").lower()
                online[ident] = True if value == "true" else False if value == "false" else None
    channels = {}
    for entry in root.iter():
        if local_name(entry.tag) == "InputProxyChannel" and (ident := _id(entry)) is not None and ident >= 1:
            channels[ident] = ChannelInfo(id=ident, name=text(entry, "name"), online=online.get(ident))
    return [channels[k] for k in sorted(channels)]


def merge_channels(proxied: list[ChannelInfo], streaming: list[ChannelInfo]) -> list[ChannelInfo]:
    """A recorder's channels: proxied inputs (names, online) with sound from its stream list.

    Channels only in the stream list (a DVR's analogue inputs) are kept too.
    """
    by_id = {c.id: c for c in streaming}
    merged = {}
    for channel in proxied:
        stream = by_id.get(channel.id)
        merged[channel.id] = attrs.evolve(
            channel,
            audio=stream.audio if stream else channel.audio,
            name=channel.name or (stream.name if stream else ""),
        )
    for channel in streaming:
        merged.setdefault(channel.id, channel)
    return [merged[k] for k in sorted(merged)]


# -- storage --------------------------------------------------------------------------------
_STORAGE_STATUS = {
    "ok": "ok",
    "idle": "ok",  # spun down between writes: healthy
    "sleeping": "ok",
    "error": "fault",
    "smartfailed": "fault",
    "offline": "fault",
    "abnormal": "fault",
    "unformatted": "unformatted",
    "notexist": "absent",
    "nonexistent": "absent",
}
_MIB = 1024 * 1024


def parse_storage(device_id: str, root: ET.Element) -> tuple[StorageState, ...]:
    """Disks and NAS volumes from ``/ISAPI/ContentMgmt/Storage`` (sizes are written in MiB).

    Hikvision's ``ok``/``idle`` read as ``ok``, ``error`` as ``fault``; other words are kept. A
    full disk is not a fault: recorders overwrite the oldest footage, so ``freeSpace`` 0 is normal.
    """
    doc = expect_root(device_id, root, "storage", "GET /ISAPI/ContentMgmt/Storage")
    states = []
    for element in doc.iter():
        kind = local_name(element.tag)
        if kind not in ("hdd", "nas"):
            continue
        status = text(element, "status")
        states.append(
            StorageState(
                id=f"{kind}{text(element, 'id')}",
                status=_STORAGE_STATUS.get(status.lower(), status or "unknown"),
                capacity_bytes=_mib(text(element, "capacity")),
                free_bytes=_mib(text(element, "freeSpace")),
            )
        )
    return tuple(states)


def _mib(value: str) -> int | None:
    return int(value) * _MIB if value.isdigit() else None


# -- recordings -----------------------------------------------------------------------------
def search_description(
    search_id: str, track_id: int, start: str, end: str, *, max_results: int, position: int
) -> str:
    """A ``CMSearchDescription`` for one track and time span (``searchResultPostion`` is ISAPI's spelling)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<CMSearchDescription version="1.0" xmlns="http://www.isapi.org/ver20/XMLSchema">\n'
        f"<searchID>{escape(search_id)}</searchID>\n"
        f"<trackIDList><trackID>{track_id}</trackID></trackIDList>\n"
        "<timeSpanList><timeSpan>"
        f"<startTime>{escape(start)}</startTime><endTime>{escape(end)}</endTime>"
        "</timeSpan></timeSpanList>\n"
        f"<maxResults>{max_results}</maxResults>\n"
        f"<searchResultPostion>{position}</searchResultPostion>\n"
        "<metadataList><metadataDescriptor>//recordType.meta.std-cgi.com</metadataDescriptor></metadataList>\n"
        "</CMSearchDescription>\n"
    )


@attrs.frozen
class SearchPage:
    """One page of a ContentMgmt search: its spans and whether the device holds more."""

    spans: tuple[RecordingSpan, ...]
    matches: int
    more: bool


def parse_search_result(device_id: str, root: ET.Element, channel: int, zone: tzinfo = UTC) -> SearchPage:
    """A ``CMSearchResult`` page: each ``searchMatchItem`` span with its playback URI as the token."""
    doc = expect_root(device_id, root, "CMSearchResult", "POST /ISAPI/ContentMgmt/search")
    state = text(doc, "responseStatusStrg").upper()
    spans = []
    items = [e for e in doc.iter() if local_name(e.tag) == "searchMatchItem"]
    for item in items:
        span = child(item, "timeSpan")
        start_text = text(span, "startTime") if span is not None else text(item, "startTime")
        end_text = text(span, "endTime") if span is not None else text(item, "endTime")
        start = parse_zulu_time(start_text, zone) if start_text else None
        end = parse_zulu_time(end_text, zone) if end_text else None
        if start is None or end is None:
            raise DeviceProtocolError(
                device_id, "POST /ISAPI/ContentMgmt/search: a match without a readable time span"
            )
        uri = text(item, "//playbackURI")
        spans.append(RecordingSpan(channel=channel, start=start, end=end, token=uri, size=_uri_size(uri)))
    if state not in ("OK", "MORE", "NO MATCHES", "NO MATCH", ""):
        raise DeviceProtocolError(device_id, f"POST /ISAPI/ContentMgmt/search: search state {state!r}")
    return SearchPage(spans=tuple(spans), matches=len(items), more=state == "MORE")


def _uri_size(uri: str) -> int | None:
    size = dict(parse_qsl(urlsplit(uri).query)).get("size", "")
    return int(size) if size.isdigit() else None
