"""ISAPI documents and alert streams parse into the right camhub values, real captures first.

The captures in ``camhub/testing/captures/hikvision`` are real devices' answers (HikSink, MIT);
each is parsed here directly, and ``test_adapter.py`` proves the same bytes served by the
simulator come out of the adapter identically.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hik_harness import run

from camhub.adapter import ChannelInfo, DeviceEvent, EventKind, StorageState
from camhub.errors import DeviceAuthError, DeviceProtocolError, DeviceTimeout, DeviceUnsupported
from camhub.model import ChannelKind
from camhub.net import parse_xml
from camhub.testing.hikvision import capture, capture_alert_sequence, capture_names, posix_zone
from camhub_hikvision.events import alert_events, classify, parse_alert, parse_triggers
from camhub_hikvision.parse import (
    expect_root,
    merge_channels,
    parse_device_info,
    parse_input_proxy_channels,
    parse_posix_offset,
    parse_search_result,
    parse_storage,
    parse_streaming_channels,
    parse_time,
    response_status,
    status_error,
)

DEV = "hik-1"


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def alert(name: str) -> DeviceEvent:
    event = parse_alert(DEV, capture(name))
    assert event is not None
    return event


# -- the real captures, parsed directly --------------------------------------------------------
#: What each recorded alert means, by hand: (kind, active, channel, vendor type, UTC time).
ALERTS = {
    "alert_videoloss_inactive_heartbeat_ipc.xml": (
        EventKind.HEARTBEAT,
        False,
        None,
        "videoloss",
        utc(2021, 7, 2, 6, 25, 36),
    ),
    "alert_vmd_active_ipc.xml": (EventKind.MOTION, True, 1, "VMD", utc(2021, 7, 2, 6, 27, 55)),
    "alert_linedetection_active_ipc.xml": (
        EventKind.OTHER,
        True,
        1,
        "linedetection",
        utc(2021, 7, 2, 6, 27, 59),
    ),
    "alert_vmd_active_nvr_dynChannelID.xml": (EventKind.MOTION, True, 15, "VMD", utc(2021, 7, 2, 5, 30, 56)),
    "alert_videoloss_active_nvr.xml": (
        EventKind.VIDEO_LOSS,
        True,
        16,
        "videoloss",
        utc(2021, 7, 2, 5, 30, 56),
    ),
    "alert_fielddetection_active_ptz.xml": (
        EventKind.OTHER,
        True,
        1,
        "fielddetection",
        utc(2021, 7, 2, 7, 40, 45),
    ),
}


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_recorded_alert_is_normalised(name: str) -> None:
    kind, active, channel, vendor_type, when = ALERTS[name]
    event = alert(name)
    assert (event.kind, event.active, event.channel, event.vendor_type, event.time) == (
        kind,
        active,
        channel,
        vendor_type,
        when,
    )
    assert event.device_id == DEV
    # The vendor payload is the device's document, whole.
    assert event.payload == capture(name).decode().strip()


def test_recorded_alert_sequence_is_twelve_keepalives_ten_seconds_apart() -> None:
    events = [parse_alert(DEV, body) for body in capture_alert_sequence()]
    assert len(events) == 12
    assert all(e is not None and e.kind is EventKind.HEARTBEAT and not e.active for e in events)
    times = [e.time for e in events if e is not None]
    assert times[0] == utc(2021, 7, 2, 6, 25, 36)
    assert {int((b - a).total_seconds()) for a, b in itertools.pairwise(times)} <= {9, 10}


def test_recorded_nvr_triggers() -> None:
    triggers = parse_triggers(DEV, parse_xml(DEV, capture("isapi_event_triggers_nvr_hiksink.xml")))
    assert len(triggers) == 121
    by_id = {t.id: t for t in triggers}
    vmd1 = by_id["VMD-1"]
    assert (vmd1.kind, vmd1.channel, vmd1.notifications, vmd1.notifies_center) == (
        EventKind.MOTION,
        1,
        ("record", "center"),
        True,
    )
    assert by_id["tamper-2"].kind is EventKind.TAMPER and by_id["tamper-2"].notifications == ("email",)
    assert not by_id["tamper-2"].notifies_center
    assert (by_id["IO-101"].input_port, by_id["IO-101"].channel) == (101, None)
    assert by_id["IO-1"].input_port == 1
    assert by_id["facedetection-8"].channel == 8  # videoInputChannelID, not the dyn form
    assert by_id["diskfull"].kind is EventKind.STORAGE_FAULT
    assert by_id["illaccess"].kind is EventKind.LOGIN_FAILURE
    assert {t.kind for t in triggers if t.event_type == "videoloss"} == {EventKind.VIDEO_LOSS}


def test_every_capture_is_exercised() -> None:
    # A capture added to the folder must be given a test here and in test_adapter.py.
    exercised = set(ALERTS) | {
        "alertstream_ipc_sequence_first12.jsonl",
        "isapi_event_triggers_nvr_hiksink.xml",
    }
    assert set(capture_names()) == exercised


# -- classification ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("event_type", "active", "channel", "count", "kind"),
    [
        ("VMD", True, 1, "1", EventKind.MOTION),
        ("videoloss", True, 2, "1", EventKind.VIDEO_LOSS),
        ("videoloss", False, 2, "3", EventKind.VIDEO_LOSS),  # a real loss ending
        ("videoloss", False, None, "", EventKind.HEARTBEAT),  # no channel: the keep-alive
        ("videoloss", False, 1, "0", EventKind.HEARTBEAT),  # what cameras really send
        ("shelteralarm", True, 1, "1", EventKind.TAMPER),
        ("tamperdetection", True, 1, "1", EventKind.TAMPER),
        ("diskfull", True, None, "1", EventKind.STORAGE_FAULT),
        ("diskerror", True, None, "1", EventKind.STORAGE_FAULT),
        ("hdError", True, None, "1", EventKind.STORAGE_FAULT),
        ("illaccess", True, None, "1", EventKind.LOGIN_FAILURE),
        ("badlogin", True, None, "1", EventKind.LOGIN_FAILURE),
        ("linedetection", True, 1, "1", EventKind.OTHER),
        ("IO", True, None, "1", EventKind.OTHER),
    ],
)
def test_classify(event_type: str, active: bool, channel: int | None, count: str, kind: EventKind) -> None:
    assert classify(event_type, active, channel, count) is kind


def test_alert_without_offset_uses_the_device_zone_then_the_arrival_time() -> None:
    body = (
        "<EventNotificationAlert><channelID>2</channelID><dateTime>2024-03-01T08:00:00</dateTime>"
        "<activePostCount>1</activePostCount><eventType>VMD</eventType><eventState>active</eventState>"
        "</EventNotificationAlert>"
    )
    zoned = parse_alert(DEV, body, device_tz=timezone(timedelta(hours=7)))
    assert zoned is not None and zoned.time == utc(2024, 3, 1, 1, 0, 0)
    arrival = utc(2024, 3, 1, 1, 0, 3)
    unzoned = parse_alert(DEV, body, received=arrival)
    assert unzoned is not None and unzoned.time == arrival


def test_alert_namespaces_do_not_matter() -> None:
    body = (
        '<EventNotificationAlert xmlns="http://www.isapi.org/ver20/XMLSchema">'
        '<h:dynChannelID xmlns:h="http://www.hikvision.com/ver10/XMLSchema">3</h:dynChannelID>'
        "<dateTime>2024-03-01T08:00:00Z</dateTime><eventType>shelteralarm</eventType>"
        "<eventState>active</eventState></EventNotificationAlert>"
    )
    event = parse_alert(DEV, body)
    assert event is not None and (event.kind, event.channel) == (EventKind.TAMPER, 3)


def test_other_documents_are_not_alerts_and_bad_xml_is_refused() -> None:
    assert parse_alert(DEV, b"<ResponseStatus><statusCode>1</statusCode></ResponseStatus>") is None
    with pytest.raises(DeviceProtocolError, match="malformed XML"):
        parse_alert(DEV, b"<EventNotificationAlert><eventType>VMD</eventType>")


LAUGHS = """<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<DeviceInfo><model>&d;</model></DeviceInfo>"""


@pytest.mark.parametrize(
    "document",
    [
        LAUGHS.encode("utf-16"),  # a DTD the byte search for "<!" cannot see ...
        LAUGHS.encode("utf-16-le"),  # ... without a byte-order mark either
        ('<?xml version="1.0" encoding="UTF-16"?>' + LAUGHS).encode("utf-16-be"),
        b"\xef\xbb\xbf" + LAUGHS.encode(),
    ],
    ids=["utf-16", "utf-16-le", "utf-16-be-declared", "utf-8-bom"],
)
def test_a_dtd_in_any_encoding_is_refused(document: bytes) -> None:
    with pytest.raises(DeviceProtocolError, match="refused XML"):
        parse_xml(DEV, document)


@pytest.mark.parametrize(
    "document",
    [
        b"<DeviceInfo><model>DS-2CD &amp; co</model></DeviceInfo>",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<DeviceInfo><model>DS-2CD &amp; co</model></DeviceInfo>',
        b"<DeviceInfo><!-- a comment --><model><![CDATA[DS-2CD & co]]></model></DeviceInfo>",
        '<?xml version="1.0" encoding="UTF-16"?><DeviceInfo><model>DS-2CD &amp; co</model></DeviceInfo>'.encode(
            "utf-16"
        ),
        '<?xml version="1.0" encoding="ISO-8859-1"?><DeviceInfo><model>DS-2CD &amp; co</model></DeviceInfo>'.encode(
            "latin-1"
        ),
    ],
    ids=["plain", "declared-utf-8", "comment-and-cdata", "utf-16", "latin-1"],
)
def test_documents_without_a_dtd_parse_in_every_encoding(document: bytes) -> None:
    assert parse_xml(DEV, document).findtext("model") == "DS-2CD & co"


# -- alert streams -----------------------------------------------------------------------------
async def chunks_of(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


def part(body: bytes, *, length: bool = True, content_type: str = "application/xml") -> bytes:
    head = f"--boundary\r\nContent-Type: {content_type}\r\n"
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body + b"\r\n"


async def stream_events(data: bytes, idle: float = 2.0) -> list[DeviceEvent]:
    return [e async for e in alert_events(DEV, chunks_of(data), "boundary", idle_timeout=idle)]


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "boundary-only"])
def test_alert_stream_framings(length: bool) -> None:
    bodies = [capture("alert_vmd_active_ipc.xml"), capture("alert_videoloss_active_nvr.xml")]
    picture = part(b"\xff\xd8\xff\xe0 not xml \xff\xd9", length=length, content_type="image/jpeg")
    # Boundary-only parts end where the next boundary starts: close the stream with one.
    data = part(bodies[0], length=length) + picture + part(bodies[1], length=length) + b"--boundary--\r\n"
    events = run(lambda: stream_events(data))
    assert [(e.kind, e.channel) for e in events] == [(EventKind.MOTION, 1), (EventKind.VIDEO_LOSS, 16)]
    assert [e.payload for e in events] == [b.decode().strip() for b in bodies]


def test_alert_stream_cut_inside_a_part_is_a_protocol_error() -> None:
    whole = part(capture("alert_vmd_active_ipc.xml"))
    with pytest.raises(DeviceProtocolError, match="inside a part"):
        run(lambda: stream_events(whole + whole[: len(whole) // 2]))


def test_silent_alert_stream_times_out() -> None:
    async def silent() -> AsyncIterator[bytes]:
        yield part(capture("alert_vmd_active_ipc.xml"))
        await asyncio.sleep(30)
        yield b""

    async def scenario() -> list[DeviceEvent]:
        return [e async for e in alert_events(DEV, silent(), "boundary", idle_timeout=0.2)]

    with pytest.raises(DeviceTimeout, match=r"no alert or keep-alive for 0\.2 s"):
        run(scenario)


def test_a_trickling_stream_counts_as_silent() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for byte in part(capture("alert_vmd_active_ipc.xml")):
            yield bytes([byte])
            await asyncio.sleep(0.05)

    async def scenario() -> list[DeviceEvent]:
        return [e async for e in alert_events(DEV, trickle(), "boundary", idle_timeout=0.3)]

    with pytest.raises(DeviceTimeout):
        run(scenario)


# -- System documents --------------------------------------------------------------------------
def test_device_info_with_mixed_namespaces() -> None:
    doc = (
        '<DeviceInfo version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">'
        "<deviceName>nvr</deviceName><model>DS-7608NXI-I2/8P/S</model>"
        '<serialNumber xmlns="http://www.hikvision.com/ver10/XMLSchema">DS-7608NXI-I0/0P/S0000</serialNumber>'
        "<macAddress>CC:ED:D6:41:A8:39</macAddress><firmwareVersion>V4.62.210</firmwareVersion>"
        "<firmwareReleasedDate>build 230612</firmwareReleasedDate><deviceType>NVR</deviceType></DeviceInfo>"
    )
    info = parse_device_info(DEV, parse_xml(DEV, doc))
    assert info.identity.serial == "DS-7608NXI-I0/0P/S0000"
    assert info.identity.firmware == "V4.62.210 build 230612"
    assert info.identity.mac == "cc:ed:d6:41:a8:39"
    assert info.is_recorder


@pytest.mark.parametrize(
    ("zone", "hours"),
    [
        ("CST-7:00:00", 7),
        ("CST+5:00:00", -5),
        ("CST5", -5),
        ("CST-5:30:00", 5.5),
        ("CST-1:00:00DST01:00:00,M3.5.0", 1),
    ],
)
def test_posix_time_zones_have_their_sign_inverted(zone: str, hours: float) -> None:
    assert parse_posix_offset(zone) == timedelta(hours=hours)
    assert parse_posix_offset(posix_zone(timedelta(hours=hours))) == timedelta(hours=hours)


def test_unreadable_posix_zones() -> None:
    assert parse_posix_offset("Asia/Ho_Chi_Minh") is None
    assert parse_posix_offset("CST-19:00:00") is None


def test_time_document() -> None:
    doc = (
        '<Time xmlns="http://www.hikvision.com/ver10/XMLSchema"><timeMode>NTP</timeMode>'
        "<localTime>2024-01-01T07:00:05+07:00</localTime><timeZone>CST-7:00:00</timeZone></Time>"
    )
    clock = parse_time(DEV, parse_xml(DEV, doc))
    assert (clock.time, clock.label) == (utc(2024, 1, 1, 0, 0, 5), "UTC+07:00")
    naive = doc.replace("+07:00</localTime>", "</localTime>")
    assert parse_time(DEV, parse_xml(DEV, naive)).time == utc(2024, 1, 1, 0, 0, 5)
    with pytest.raises(DeviceProtocolError, match="without a time zone"):
        parse_time(DEV, parse_xml(DEV, naive.replace("CST-7:00:00", "")))


def test_a_refusal_inside_a_200_answer_is_mapped() -> None:
    refusal = parse_xml(
        DEV,
        '<ResponseStatus xmlns="http://www.isapi.org/ver20/XMLSchema"><statusCode>4</statusCode>'
        "<statusString>Invalid Operation</statusString><subStatusCode>notSupport</subStatusCode></ResponseStatus>",
    )
    with pytest.raises(DeviceUnsupported, match="notSupport"):
        expect_root(DEV, refusal, "DeviceInfo", "GET /ISAPI/System/deviceInfo")
    with pytest.raises(DeviceProtocolError, match="expected a <DeviceInfo> document, got <Time>"):
        expect_root(DEV, parse_xml(DEV, "<Time/>"), "DeviceInfo", "GET /ISAPI/System/deviceInfo")


@pytest.mark.parametrize(
    ("http", "sub", "error"),
    [
        (403, "notSupport", DeviceUnsupported),
        (403, "lowPrivilege", DeviceAuthError),
        (403, "", DeviceUnsupported),
        (404, "", DeviceUnsupported),
        (400, "badXmlContent", DeviceProtocolError),
        (500, "deviceError", DeviceProtocolError),
    ],
)
def test_status_errors(http: int, sub: str, error: type[Exception]) -> None:
    status = response_status(
        parse_xml(DEV, f"<ResponseStatus><subStatusCode>{sub}</subStatusCode></ResponseStatus>")
    )
    assert isinstance(status_error(DEV, http, status, "GET /x"), error)


# -- channels, storage, search ----------------------------------------------------------------
def test_streaming_channels_cameras_and_a_microphone() -> None:
    doc = (
        '<StreamingChannelList xmlns="http://www.hikvision.com/ver20/XMLSchema">'
        "<StreamingChannel><id>102</id><channelName>sub</channelName><Video><enabled>true</enabled></Video></StreamingChannel>"
        "<StreamingChannel><id>101</id><channelName>Cổng</channelName><Video><enabled>true</enabled></Video>"
        "<Audio><enabled>true</enabled></Audio></StreamingChannel>"
        "<StreamingChannel><id>201</id><channelName>Sảnh</channelName><Video><enabled>true</enabled></Video>"
        "<Audio><enabled>false</enabled></Audio></StreamingChannel>"
        "<StreamingChannel><id>301</id><channelName>Mic</channelName><Video><enabled>false</enabled></Video>"
        "<Audio><enabled>true</enabled></Audio></StreamingChannel>"
        "</StreamingChannelList>"
    )
    assert parse_streaming_channels(parse_xml(DEV, doc)) == [
        ChannelInfo(id=1, name="Cổng", audio=True),
        ChannelInfo(id=2, name="Sảnh", audio=False),
        ChannelInfo(id=3, kind=ChannelKind.MICROPHONE, name="Mic", audio=True),
    ]


def test_input_proxy_channels_with_status() -> None:
    channels = parse_xml(
        DEV,
        "<InputProxyChannelList><InputProxyChannel><id>2</id><name>B</name></InputProxyChannel>"
        "<InputProxyChannel><id>1</id><name>A</name></InputProxyChannel></InputProxyChannelList>",
    )
    status = parse_xml(
        DEV,
        '<InputProxyChannelStatusList xmlns="http://www.isapi.org/ver20/XMLSchema">'
        "<InputProxyChannelStatus><id>1</id><online>true</online></InputProxyChannelStatus>"
        "<InputProxyChannelStatus><id>2</id><online>false</online></InputProxyChannelStatus>"
        "</InputProxyChannelStatusList>",
    )
    proxied = parse_input_proxy_channels(channels, status)
    assert proxied == [ChannelInfo(id=1, name="A", online=True), ChannelInfo(id=2, name="B", online=False)]
    assert [c.online for c in parse_input_proxy_channels(channels)] == [None, None]
    merged = merge_channels(
        proxied, [ChannelInfo(id=1, name="x", audio=True), ChannelInfo(id=5, name="analog")]
    )
    assert [(c.id, c.name, c.audio, c.online) for c in merged] == [
        (1, "A", True, True),
        (2, "B", False, False),
        (5, "analog", False, None),
    ]


def test_storage_document_from_a_real_nvr_shape() -> None:
    doc = (
        '<storage version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">'
        '<hddList version="1.0" xmlns="http://www.hikvision.com/ver10/XMLSchema" size="8">'
        "<hdd><id>1</id><status>ok</status><capacity>30436</capacity><freeSpace>27392</freeSpace></hdd>"
        "<hdd><id>2</id><status>error</status><capacity>1907729</capacity><freeSpace>0</freeSpace></hdd>"
        "<hdd><id>3</id><status>unformatted</status><capacity>1907729</capacity><freeSpace>0</freeSpace></hdd>"
        "<hdd><id>4</id><status>idle</status><capacity>1907729</capacity><freeSpace>0</freeSpace></hdd>"
        "<hdd><id>5</id><status>reparing</status></hdd>"
        "</hddList><nasList><nas><id>9</id><status>ok</status><capacity>122346</capacity>"
        "<freeSpace>119552</freeSpace></nas></nasList></storage>"
    )
    mib = 1024 * 1024
    assert parse_storage(DEV, parse_xml(DEV, doc)) == (
        StorageState(id="hdd1", status="ok", capacity_bytes=30436 * mib, free_bytes=27392 * mib),
        StorageState(id="hdd2", status="fault", capacity_bytes=1907729 * mib, free_bytes=0),
        StorageState(id="hdd3", status="unformatted", capacity_bytes=1907729 * mib, free_bytes=0),
        StorageState(id="hdd4", status="ok", capacity_bytes=1907729 * mib, free_bytes=0),
        StorageState(id="hdd5", status="reparing"),
        StorageState(id="nas9", status="ok", capacity_bytes=122346 * mib, free_bytes=119552 * mib),
    )


def test_search_result_page() -> None:
    doc = (
        '<CMSearchResult version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">'
        "<responseStatus>true</responseStatus><responseStatusStrg>MORE</responseStatusStrg>"
        "<numOfMatches>1</numOfMatches><matchList><searchMatchItem><trackID>101</trackID>"
        "<timeSpan><startTime>2020-06-01T02:01:06Z</startTime><endTime>2020-06-01T02:01:22Z</endTime></timeSpan>"
        "<mediaSegmentDescriptor><playbackURI>rtsp://192.168.1.64/Streaming/tracks/101/?starttime=20200601T020106Z"
        "&amp;endtime=20200601T020122Z&amp;name=ch01_00000000008001213&amp;size=6836476</playbackURI>"
        "</mediaSegmentDescriptor></searchMatchItem></matchList></CMSearchResult>"
    )
    page = parse_search_result(DEV, parse_xml(DEV, doc), 1)
    assert page.more and page.matches == 1
    (span,) = page.spans
    assert (span.start, span.end, span.size) == (utc(2020, 6, 1, 2, 1, 6), utc(2020, 6, 1, 2, 1, 22), 6836476)
    assert span.token.startswith(
        "rtsp://192.168.1.64/Streaming/tracks/101/?starttime=20200601T020106Z&endtime="
    )
    local = parse_search_result(DEV, parse_xml(DEV, doc), 1, timezone(timedelta(hours=7))).spans[0]
    assert local.start == utc(2020, 6, 1, 2, 1, 6) - timedelta(hours=7)
    empty = doc.replace("MORE", "NO MATCHES")
    assert not parse_search_result(DEV, parse_xml(DEV, empty), 1).more
