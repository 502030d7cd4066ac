"""A simulated Hikvision camera or NVR: ISAPI on loopback in the real devices' wire formats.

:class:`HikvisionSimulator` answers the ISAPI endpoints camhub uses with documents shaped like
real devices' (namespaces mixed as firmware mixes them, ``CST-7:00:00`` for UTC+7, ``403`` with a
``ResponseStatus`` of ``notSupport`` for anything it does not offer), behind real HTTP Digest
authentication (see :class:`~camhub.testing.simulator.SimulatedDevice`):

- ``/ISAPI/System/deviceInfo`` and ``/ISAPI/System/time`` (the profile's clock skew);
- ``/ISAPI/Streaming/channels`` and their ``…/picture`` (a real JPEG); an NVR answers the
  proxied cameras' ``ContentMgmt/InputProxy/channels`` (+ ``/status``) and
  ``ContentMgmt/StreamingProxy/channels/…/picture``;
- ``/ISAPI/Event/notification/alertStream``: ``multipart/mixed; boundary=boundary`` parts with
  ``Content-Length``, a keep-alive every :attr:`~HikvisionSimulator.heartbeat_interval` seconds,
  the events of :meth:`~SimulatedDevice.emit` (``channelID`` on a camera, ``dynChannelID`` on an
  NVR) and raw alert documents from :meth:`~HikvisionSimulator.emit_alert_xml`;
- ``/ISAPI/Event/triggers``; ``/ISAPI/ContentMgmt/Storage`` (:attr:`~HikvisionSimulator.storage_status`
  is the fault switch); ``POST /ISAPI/ContentMgmt/search`` over :attr:`recordings`, paged.

The peer captures shipped in ``camhub/testing/captures/hikvision`` (real devices' answers, see
its MANIFEST) can be served verbatim: :attr:`~HikvisionSimulator.serve_capture_events` replays the
recorded alert sequence when a stream opens, :attr:`~HikvisionSimulator.serve_capture_triggers`
answers ``/ISAPI/Event/triggers`` with the recorded NVR document, and
:meth:`~HikvisionSimulator.emit_alert_xml` sends any single recorded alert.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Any
from xml.sax.saxutils import escape

import attrs
from aiohttp import web

from camhub.adapter import EventKind
from camhub.errors import DeviceError
from camhub.net import child, local_name, parse_xml, text
from camhub.testing.simulator import DeviceProfile, SimulatedDevice, SimulatedEvent, SimulatedRecording

__all__ = [
    "SNAPSHOT_JPEG",
    "HikvisionSimulator",
    "capture",
    "capture_alert_sequence",
    "capture_names",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

NS_HIK10 = "http://www.hikvision.com/ver10/XMLSchema"
NS_HIK20 = "http://www.hikvision.com/ver20/XMLSchema"
NS_ISAPI20 = "http://www.isapi.org/ver20/XMLSchema"
XML = "application/xml"
BOUNDARY = "boundary"

#: A real 64×36 JPEG (encoded once with PyAV's MJPEG encoder): snapshots are pictures.
SNAPSHOT_JPEG = base64.b64decode(
    "/9j//gAQTGF2YzYyLjI4LjEwMgD/2wBDAAgEBAQEBAUFBQUFBQYGBgYGBgYGBgYGBgYHBwcICAgHBwcGBgcHCAgICAkJCQgICAgJ"
    "CQoKCgwMCwsODg4RERT/3QAEAAT/xAGiAAABBQEBAQEBAQAAAAAAAAAAAQIDBAUGBwgJCgsBAAMBAQEBAQEBAQEAAAAAAAABAgME"
    "BQYHCAkKCxAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0"
    "NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLD"
    "xMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6EQACAQIEBAMEBwUEBAABAncAAQIDEQQFITEGEkFRB2FxEyIygQgU"
    "QpGhscEJIzNS8BVictEKFiQ04SXxFxgZGiYnKCkqNTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqCg4SFhoeI"
    "iYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2dri4+Tl5ufo6ery8/T19vf4+fr/wAARCAAkAEAD"
    "ASIAAhEAAxEA/9oADAMBAAIRAxEAPwDw3Te1dBpvauf03tXQab2oA6DTe1dBpvauf03tXQab2oA6DTe1dBpvauf03tXQab2oA6DT"
    "e1dBpvauf03tXQab2oA//9Dw3Te1dBpvauf03tXQab2oA6DTe1dBpvauf03tXQab2oA6DTe1dBpvauf03tXQab2oA6DTe1dBpvau"
    "f03tXQab2oA//9Hw3Te1dBpvauf03tXQab2oA6DTe1dBpvauf03tXQab2oA6DTe1dBpvauf03tXQab2oA6DTe1dBpvauf03tXQab"
    "2oA//9k="
)

#: How the simulator names each kind on the wire (the types real firmware uses).
_WIRE_TYPES = {
    EventKind.MOTION: ("VMD", "Motion alarm"),
    EventKind.VIDEO_LOSS: ("videoloss", "videoloss alarm"),
    EventKind.TAMPER: ("shelteralarm", "shelteralarm alarm"),
    EventKind.STORAGE_FAULT: ("diskerror", "diskerror alarm"),
    EventKind.LOGIN_FAILURE: ("illaccess", "illaccess alarm"),
    EventKind.OTHER: ("linedetection", "linedetection alarm"),
}


# -- the recorded captures --------------------------------------------------------------------
def _captures() -> resources.abc.Traversable:
    return resources.files("camhub.testing").joinpath("captures", "hikvision")


def capture_names() -> list[str]:
    """File names of the recorded Hikvision captures (see the captures' MANIFEST)."""
    return sorted(entry.name for entry in _captures().iterdir() if entry.is_file())


def capture(name: str) -> bytes:
    """One recorded capture, byte for byte."""
    return _captures().joinpath(name).read_bytes()


def capture_alert_sequence() -> list[bytes]:
    """The 12 consecutive alert bodies a real camera sent (``alertstream_ipc_sequence_first12.jsonl``)."""
    lines = capture("alertstream_ipc_sequence_first12.jsonl").decode("utf-8").splitlines()
    return [str(json.loads(line)["content"]).encode("utf-8") for line in lines if line.strip()]


def posix_zone(offset: timedelta) -> str:
    """Hikvision's ``timeZone`` for a UTC offset: UTC+7 is ``CST-7:00:00`` (POSIX inverts the sign)."""
    sign = "-" if offset >= timedelta(0) else "+"
    seconds = int(abs(offset).total_seconds())
    return f"CST{sign}{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _response_status(path: str, code: int, string: str, sub: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        f'<ResponseStatus version="2.0" xmlns="{NS_ISAPI20}">\r\n'
        f"<requestURL>{escape(path)}</requestURL>\r\n"
        f"<statusCode>{code}</statusCode>\r\n"
        f"<statusString>{escape(string)}</statusString>\r\n"
        f"<subStatusCode>{escape(sub)}</subStatusCode>\r\n"
        "</ResponseStatus>\r\n"
    ).encode()


def _doc(*lines: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\r\n' + "\r\n".join(lines) + "\r\n").encode()


class HikvisionSimulator(SimulatedDevice):
    """A Hikvision IP camera (``profile.nvr`` false) or NVR with ``profile.channels`` inputs.

    :param heartbeat_interval: seconds between the alert stream's keep-alives (devices: ~10).
    :param search_page_size: matches per ContentMgmt search page, whatever ``maxResults`` asks.
    :param utc_offset: the device's time zone (default UTC+7, ``CST-7:00:00``).
    """

    vendor = "hikvision"

    def __init__(
        self,
        profile: DeviceProfile | None = None,
        *,
        rtsp_url: str = "rtsp://127.0.0.1:554",
        port: int = 0,
        heartbeat_interval: float = 10.0,
        search_page_size: int = 40,
        utc_offset: timedelta = timedelta(hours=7),
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.search_page_size = search_page_size
        self.utc_offset = utc_offset
        #: Replay the recorded alert sequence at the start of each alert stream.
        self.serve_capture_events = False
        #: Answer ``/ISAPI/Event/triggers`` with the recorded NVR document.
        self.serve_capture_triggers = False
        #: Frame alert parts with ``Content-Length`` (True) or by the boundary alone.
        self.multipart_content_length = True
        #: Firmware quirk: ContentMgmt search and playback URIs in local time, still written with Z.
        self.search_times_local = False
        #: Status of every disk or card: ``ok``, ``error``, ``unformatted``, ``idle``…
        self.storage_status = "ok"
        self.storage_disks = 1
        self.storage_capacity_mb = 1907729
        self.storage_free_mb = 523264
        #: Audio-only streaming channels after the cameras (an encoder's microphone inputs).
        self.microphones = 0
        #: NVR inputs whose camera is unreachable.
        self.offline_channels: set[int] = set()
        #: NVR firmware that also answers ``/ISAPI/Streaming/channels/…/picture`` itself.
        self.nvr_own_pictures = False
        #: Channel names (default ``Camera 01`` / ``IPCamera 01``).
        self.channel_names: dict[int, str] = {}
        #: Paths answered ``403 notSupport``, and paths answered by a test's own handler.
        self.unsupported: set[str] = set()
        self.overrides: dict[str, Handler] = {}
        self.jpeg = SNAPSHOT_JPEG
        self._alert_queues: set[asyncio.Queue[bytes | None]] = set()
        self._post_counts: dict[tuple[str, int | None], int] = {}
        super().__init__(profile or self.ipc_profile(), rtsp_url=rtsp_url, port=port)

    # -- profiles -----------------------------------------------------------------------------
    @staticmethod
    def ipc_profile(**changes: Any) -> DeviceProfile:
        """A bullet camera as Hikvision ships it (a model, serial and MAC of the real shapes)."""
        profile = DeviceProfile(
            model="DS-2CD2143G2-IS",
            serial="DS-2CD2143G2-IS20240101AAWRJ12345678",
            firmware="V5.7.14 build 231028",
            mac="bc:ad:28:1a:2b:3c",
            name="IP CAMERA",
            realm="IP Camera(J1234)",
        )
        return attrs.evolve(profile, **changes)

    @staticmethod
    def nvr_profile(channels: int = 4, **changes: Any) -> DeviceProfile:
        """An NVR with ``channels`` proxied cameras."""
        profile = DeviceProfile(
            model="DS-7608NI-K2",
            serial="DS-7608NI-K20820240101CCRRJ12345678WCVU",
            firmware="V4.62.210 build 230612",
            mac="c0:56:e3:4d:5e:6f",
            name="Embedded Net DVR",
            realm="DS-7608NI-K2",
            channels=channels,
            nvr=True,
        )
        return attrs.evolve(profile, **changes)

    async def __aenter__(self) -> HikvisionSimulator:
        await self.start()
        return self

    # -- what the device is -------------------------------------------------------------------
    @property
    def zone(self) -> timezone:
        return timezone(self.utc_offset)

    def local(self, moment: datetime) -> str:
        """A time as the device writes it in documents and alerts: local, with its offset."""
        return moment.astimezone(self.zone).replace(microsecond=0).isoformat()

    def channel_name(self, channel: int) -> str:
        default = f"IPCamera {channel:02d}" if self.profile.nvr else f"Camera {channel:02d}"
        return self.channel_names.get(channel, default)

    def rtsp_path(self, channel: int, main: bool = True) -> str:
        """Hikvision's live path: ``/Streaming/Channels/101`` is channel 1's main stream."""
        return f"/Streaming/Channels/{channel}0{1 if main else 2}"

    @property
    def alert_streams(self) -> int:
        """How many alert streams are open (each receives every event emitted from now on)."""
        return len(self._alert_queues)

    @property
    def subscribers(self) -> int:
        return self.alert_streams + super().subscribers

    def emit(self, event: SimulatedEvent) -> None:
        """Send an event, as the device's ``EventNotificationAlert``, on every open alert stream."""
        if event.time is None:
            event = attrs.evolve(event, time=self.now())
        self.emit_alert_xml(self.render_alert(event))
        super().emit(event)

    def emit_alert_xml(self, body: bytes) -> None:
        """Send one alert document, verbatim, on every open alert stream."""
        for queue in list(self._alert_queues):
            queue.put_nowait(body)

    async def stop(self) -> None:
        for queue in list(self._alert_queues):
            queue.put_nowait(None)
        await super().stop()

    def not_supported(self, request: web.Request) -> web.Response:
        """ISAPI's refusal of an endpoint the device does not have."""
        body = _response_status(request.path, 4, "Invalid Operation", "notSupport")
        return web.Response(status=403, body=body, content_type=XML)

    def override_body(self, path: str, body: bytes, *, status: int = 200, content_type: str = XML) -> None:
        """Answer ``path`` with a fixed body (malformed documents, hostile XML…)."""

        async def answer(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, body=body, content_type=content_type)

        self.overrides[path] = answer

    # -- routes -------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._override_middleware)
        app.router.add_get("/ISAPI/System/deviceInfo", self._device_info)
        app.router.add_get("/ISAPI/System/time", self._time)
        app.router.add_get("/ISAPI/Streaming/channels", self._streaming_channels)
        app.router.add_get("/ISAPI/Streaming/channels/{stream}/picture", self._picture)
        app.router.add_get("/ISAPI/ContentMgmt/StreamingProxy/channels/{stream}/picture", self._proxy_picture)
        app.router.add_get("/ISAPI/ContentMgmt/InputProxy/channels", self._input_proxy)
        app.router.add_get("/ISAPI/ContentMgmt/InputProxy/channels/status", self._input_proxy_status)
        app.router.add_get("/ISAPI/ContentMgmt/Storage", self._storage)
        app.router.add_post("/ISAPI/ContentMgmt/search", self._search)
        app.router.add_get("/ISAPI/Event/notification/alertStream", self._alert_stream)
        app.router.add_get("/ISAPI/Event/triggers", self._triggers)
        app.router.add_route("*", "/ISAPI/{tail:.*}", self._not_supported_route)

    @web.middleware
    async def _override_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in self.unsupported:
            return self.not_supported(request)
        override = self.overrides.get(request.path)
        return await (override or handler)(request)

    async def _not_supported_route(self, request: web.Request) -> web.StreamResponse:
        return self.not_supported(request)

    def unauthorized(self, request: web.Request) -> web.StreamResponse:
        response = super().unauthorized(request)
        assert isinstance(response, web.Response)
        response.body = _doc(
            "<userCheck>",
            "<statusValue>401</statusValue>",
            "<statusString>Unauthorized</statusString>",
            "</userCheck>",
        )
        response.content_type = XML
        return response

    # -- System ---------------------------------------------------------------------------------
    async def _device_info(self, request: web.Request) -> web.StreamResponse:
        p = self.profile
        version, _, build = p.firmware.partition(" build ")
        namespace = NS_ISAPI20 if p.nvr else NS_HIK20
        body = _doc(
            f'<DeviceInfo version="2.0" xmlns="{namespace}">',
            f"<deviceName>{escape(p.name)}</deviceName>",
            f"<deviceID>{uuid.uuid5(uuid.NAMESPACE_OID, p.serial)}</deviceID>",
            f"<model>{escape(p.model)}</model>",
            f"<serialNumber>{escape(p.serial)}</serialNumber>",
            f"<macAddress>{escape(p.mac)}</macAddress>",
            f"<firmwareVersion>{escape(version)}</firmwareVersion>",
            f"<firmwareReleasedDate>{'build ' + escape(build) if build else ''}</firmwareReleasedDate>",
            "<encoderVersion>V7.3</encoderVersion>",
            "<encoderReleasedDate>build 231027</encoderReleasedDate>",
            f"<deviceType>{'NVR' if p.nvr else 'IPCamera'}</deviceType>",
            "<telecontrolID>88</telecontrolID>",
            "<manufacturer>hikvision</manufacturer>",
            "</DeviceInfo>",
        )
        return web.Response(body=body, content_type=XML)

    async def _time(self, request: web.Request) -> web.StreamResponse:
        body = _doc(
            f'<Time version="1.0" xmlns="{NS_HIK10}">',
            "<timeMode>NTP</timeMode>",
            f"<localTime>{self.local(self.now())}</localTime>",
            f"<timeZone>{posix_zone(self.utc_offset)}</timeZone>",
            "</Time>",
        )
        return web.Response(body=body, content_type=XML)

    # -- Streaming ------------------------------------------------------------------------------
    def _streaming_channel(self, channel: int, number: int, *, video: bool) -> str:
        width, height = (1920, 1080) if number == 1 else (640, 360)
        return "\r\n".join(
            [
                f'<StreamingChannel version="2.0" xmlns="{NS_HIK20}">',
                f"<id>{channel}0{number}</id>",
                f"<channelName>{escape(self.channel_name(channel))}</channelName>",
                "<enabled>true</enabled>",
                "<Transport><maxPacketSize>1000</maxPacketSize><ControlProtocolList><ControlProtocol>"
                "<streamingTransport>RTSP</streamingTransport></ControlProtocol></ControlProtocolList></Transport>",
                f"<Video><enabled>{'true' if video else 'false'}</enabled>"
                f"<videoInputChannelID>{channel}</videoInputChannelID><videoCodecType>H.264</videoCodecType>"
                f"<videoResolutionWidth>{width}</videoResolutionWidth>"
                f"<videoResolutionHeight>{height}</videoResolutionHeight>"
                "<maxFrameRate>2500</maxFrameRate></Video>",
                f"<Audio><enabled>{'true' if self.profile.audio or not video else 'false'}</enabled>"
                f"<audioInputChannelID>{channel}</audioInputChannelID>"
                "<audioCompressionType>G.711ulaw</audioCompressionType></Audio>",
                "</StreamingChannel>",
            ]
        )

    async def _streaming_channels(self, request: web.Request) -> web.StreamResponse:
        cameras = range(1, self.profile.channels + 1)
        microphones = range(self.profile.channels + 1, self.profile.channels + 1 + self.microphones)
        parts = [self._streaming_channel(c, n, video=True) for c in cameras for n in (1, 2)]
        parts += [self._streaming_channel(c, 1, video=False) for c in microphones]
        body = _doc(
            f'<StreamingChannelList version="2.0" xmlns="{NS_HIK20}">', *parts, "</StreamingChannelList>"
        )
        return web.Response(body=body, content_type=XML)

    def _picture_of(self, request: web.Request) -> web.StreamResponse:
        stream = request.match_info["stream"]
        channel, number = divmod(int(stream), 100) if stream.isdigit() else (0, 0)
        if not 1 <= channel <= self.profile.channels or number not in (1, 2):
            body = _response_status(request.path, 4, "Invalid Operation", "invalidID")
            return web.Response(status=404, body=body, content_type=XML)
        return web.Response(body=self.jpeg, content_type="image/jpeg")

    async def _picture(self, request: web.Request) -> web.StreamResponse:
        if self.profile.nvr and not self.nvr_own_pictures:
            return self.not_supported(request)
        return self._picture_of(request)

    async def _proxy_picture(self, request: web.Request) -> web.StreamResponse:
        if not self.profile.nvr:
            return self.not_supported(request)
        return self._picture_of(request)

    # -- ContentMgmt: proxied cameras ----------------------------------------------------------
    def _source(self, channel: int) -> str:
        return (
            "<sourceInputPortDescriptor><adminProtocol>HIKVISION</adminProtocol>"
            "<addressingFormatType>ipaddress</addressingFormatType>"
            f"<ipAddress>192.168.254.{channel + 1}</ipAddress><managePortNo>8000</managePortNo>"
            "<srcInputPort>1</srcInputPort><userName>admin</userName><streamType>auto</streamType>"
            "</sourceInputPortDescriptor>"
        )

    async def _input_proxy(self, request: web.Request) -> web.StreamResponse:
        if not self.profile.nvr:
            return self.not_supported(request)
        entries = [
            f'<InputProxyChannel version="2.0" xmlns="{NS_HIK20}">\r\n<id>{c}</id>\r\n'
            f"<name>{escape(self.channel_name(c))}</name>\r\n{self._source(c)}\r\n"
            "<enableAnr>false</enableAnr>\r\n</InputProxyChannel>"
            for c in range(1, self.profile.channels + 1)
        ]
        body = _doc(
            f'<InputProxyChannelList version="2.0" xmlns="{NS_HIK20}">', *entries, "</InputProxyChannelList>"
        )
        return web.Response(body=body, content_type=XML)

    async def _input_proxy_status(self, request: web.Request) -> web.StreamResponse:
        if not self.profile.nvr:
            return self.not_supported(request)
        entries = []
        for c in range(1, self.profile.channels + 1):
            online = c not in self.offline_channels
            entries.append(
                f'<InputProxyChannelStatus version="2.0">\r\n<id>{c}</id>\r\n{self._source(c)}\r\n'
                f"<online>{'true' if online else 'false'}</online>\r\n"
                f"<chanDetectResult>{'connect' if online else 'ipcStreamFail'}</chanDetectResult>\r\n"
                "</InputProxyChannelStatus>"
            )
        body = _doc(
            f'<InputProxyChannelStatusList version="2.0" xmlns="{NS_ISAPI20}">',
            *entries,
            "</InputProxyChannelStatusList>",
        )
        return web.Response(body=body, content_type=XML)

    # -- ContentMgmt: storage and search -------------------------------------------------------
    async def _storage(self, request: web.Request) -> web.StreamResponse:
        kind = "SATA" if self.profile.nvr else "SD"
        free = 0 if self.storage_status in ("unformatted", "error") else self.storage_free_mb
        disks = [
            f"<hdd><id>{n}</id><hddName>hdd{n}</hddName><hddPath></hddPath><hddType>{kind}</hddType>"
            f"<status>{escape(self.storage_status)}</status><capacity>{self.storage_capacity_mb}</capacity>"
            f"<freeSpace>{free}</freeSpace><property>RW</property></hdd>"
            for n in range(1, self.storage_disks + 1)
        ]
        body = _doc(
            f'<storage version="2.0" xmlns="{NS_HIK20}">',
            f'<hddList version="1.0" xmlns="{NS_HIK10}" size="8">',
            *disks,
            "</hddList>",
            f'<nasList version="2.0" xmlns="{NS_HIK20}">',
            "</nasList>",
            "<workMode>quota</workMode>",
            "</storage>",
        )
        return web.Response(body=body, content_type=XML)

    def _search_zone(self) -> timezone:
        return self.zone if self.search_times_local else UTC

    def _parse_search_time(self, value: str) -> datetime:
        return datetime.fromisoformat(value.strip().removesuffix("Z")).replace(tzinfo=self._search_zone())

    def _zulu(self, moment: datetime, compact: bool = False) -> str:
        pattern = "%Y%m%dT%H%M%SZ" if compact else "%Y-%m-%dT%H:%M:%SZ"
        return moment.astimezone(self._search_zone()).strftime(pattern)

    def playback_uri(self, recording: SimulatedRecording, index: int) -> str:
        """The playback URI the device writes: its own address without a port, as real firmware does."""
        host = self.rtsp_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        size = int((recording.end - recording.start).total_seconds()) * 250_000
        return (
            f"rtsp://{host}/Streaming/tracks/{recording.channel}01/"
            f"?starttime={self._zulu(recording.start, True)}&endtime={self._zulu(recording.end, True)}"
            f"&name=ch{recording.channel:02d}_{index:017d}&size={size}"
        )

    async def _search(self, request: web.Request) -> web.StreamResponse:
        try:
            query = parse_xml(self.profile.serial, await request.read())
            track = text(query, "//trackID")
            span = child(query, "//timeSpan")
            start = self._parse_search_time(text(span, "startTime"))
            end = self._parse_search_time(text(span, "endTime"))
            limit = int(text(query, "maxResults", default="40"))
            position = int(text(query, "searchResultPostion", default="0"))
            search_id = text(query, "searchID")
            if local_name(query.tag) != "CMSearchDescription" or not track.isdigit():
                raise ValueError(track)
        except (DeviceError, ValueError):
            body = _response_status(request.path, 6, "Invalid XML Content", "badXmlContent")
            return web.Response(status=400, body=body, content_type=XML)
        channel = int(track) // 100
        indexed = sorted(enumerate(self.recordings), key=lambda item: item[1].start)
        matches = [(i, r) for i, r in indexed if r.channel == channel and r.start < end and r.end > start]
        page = matches[position : position + max(1, min(limit, self.search_page_size))]
        more = position + len(page) < len(matches)
        state = "MORE" if more else "OK" if matches else "NO MATCHES"
        items = [
            "<searchMatchItem>"
            f"<sourceID>{{{uuid.uuid5(uuid.NAMESPACE_URL, str(i)).hex.upper()}}}</sourceID>"
            f"<trackID>{track}</trackID>"
            f"<timeSpan><startTime>{self._zulu(r.start)}</startTime><endTime>{self._zulu(r.end)}</endTime></timeSpan>"
            "<mediaSegmentDescriptor><contentType>video</contentType><codecType>H.264-BP</codecType>"
            f"<playbackURI>{escape(self.playback_uri(r, i))}</playbackURI></mediaSegmentDescriptor>"
            "<metadataMatches><metadataDescriptor>recordType.meta.hikvision.com/timing</metadataDescriptor>"
            "</metadataMatches></searchMatchItem>"
            for i, r in page
        ]
        body = _doc(
            f'<CMSearchResult version="2.0" xmlns="{NS_ISAPI20}">',
            f"<searchID>{escape(search_id)}</searchID>",
            "<responseStatus>true</responseStatus>",
            f"<responseStatusStrg>{state}</responseStatusStrg>",
            f"<numOfMatches>{len(page)}</numOfMatches>",
            "<matchList>",
            *items,
            "</matchList>",
            "</CMSearchResult>",
        )
        return web.Response(body=body, content_type=XML)

    # -- Event ----------------------------------------------------------------------------------
    async def _triggers(self, request: web.Request) -> web.StreamResponse:
        if self.serve_capture_triggers:
            return web.Response(body=capture("isapi_event_triggers_nvr_hiksink.xml"), content_type=XML)
        channel_tag = "dynVideoInputChannelID" if self.profile.nvr else "videoInputChannelID"
        triggers = []
        for c in range(1, self.profile.channels + 1):
            for event_type in ("VMD", "videoloss", "shelteralarm"):
                triggers.append(
                    f'<EventTrigger version="2.0" xmlns="{NS_HIK20}">'
                    f"<id>{event_type}-{c}</id><eventType>{event_type}</eventType>"
                    f"<{channel_tag}>{c}</{channel_tag}>"
                    "<EventTriggerNotificationList><EventTriggerNotification><id>center</id>"
                    "<notificationMethod>center</notificationMethod></EventTriggerNotification>"
                    "</EventTriggerNotificationList></EventTrigger>"
                )
        for event_type in ("diskfull", "diskerror", "illaccess"):
            triggers.append(
                f'<EventTrigger version="2.0" xmlns="{NS_HIK20}"><id>{event_type}</id>'
                f"<eventType>{event_type}</eventType><EventTriggerNotificationList><EventTriggerNotification>"
                "<id>center</id><notificationMethod>center</notificationMethod></EventTriggerNotification>"
                "</EventTriggerNotificationList></EventTrigger>"
            )
        body = _doc(f'<EventTriggerList version="2.0" xmlns="{NS_HIK20}">', *triggers, "</EventTriggerList>")
        return web.Response(body=body, content_type=XML)

    def _alert(
        self,
        event_type: str,
        description: str,
        active: bool,
        channel: int | None,
        moment: datetime,
        count: int,
    ) -> bytes:
        if channel is None:
            where = ""
        elif self.profile.nvr:
            where = f"<dynChannelID>{channel}</dynChannelID>"
        else:
            where = f"<channelID>{channel}</channelID>"
        lines = [
            f'<EventNotificationAlert version="{"1.0" if self.profile.nvr else "2.0"}" xmlns="{NS_HIK20}">',
            "<ipAddress>127.0.0.1</ipAddress>",
            f"<portNo>{self.port}</portNo>",
            "<protocol>HTTP</protocol>",
            f"<macAddress>{escape(self.profile.mac)}</macAddress>",
            *([where] if where else []),
            f"<dateTime>{self.local(moment)}</dateTime>",
            f"<activePostCount>{count}</activePostCount>",
            f"<eventType>{event_type}</eventType>",
            f"<eventState>{'active' if active else 'inactive'}</eventState>",
            f"<eventDescription>{description}</eventDescription>",
        ]
        if not self.profile.nvr and channel is not None:
            lines.append(f"<channelName>{escape(self.channel_name(channel))}</channelName>")
        lines.append("</EventNotificationAlert>")
        return ("\r\n".join(lines) + "\r\n").encode()

    def heartbeat_xml(self) -> bytes:
        """The keep-alive: ``videoloss`` inactive, ``activePostCount`` 0 (a camera writes channel 1)."""
        channel = None if self.profile.nvr else 1
        return self._alert("videoloss", "videoloss alarm", False, channel, self.now(), 0)

    def render_alert(self, event: SimulatedEvent) -> bytes:
        """An emitted event as the device's ``EventNotificationAlert``."""
        if event.kind is EventKind.HEARTBEAT:
            return self.heartbeat_xml()
        event_type, description = _WIRE_TYPES[event.kind]
        key = (event_type, event.channel)
        count = self._post_counts.get(key, 0) + 1 if event.active else max(1, self._post_counts.get(key, 1))
        self._post_counts[key] = count if event.active else 0
        return self._alert(
            event_type, description, event.active, event.channel, event.time or self.now(), count
        )

    async def _send_part(self, response: web.StreamResponse, body: bytes) -> bool:
        head = f'--{BOUNDARY}\r\nContent-Type: application/xml; charset="UTF-8"\r\n'
        if self.multipart_content_length:
            head += f"Content-Length: {len(body)}\r\n"
        return await self.write_stream(response, head.encode() + b"\r\n" + body + b"\r\n")

    async def _alert_stream(self, request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._alert_queues.add(queue)  # from here on, every emitted event reaches this stream
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}", "Connection": "close"},
        )
        loop = asyncio.get_running_loop()
        try:
            await response.prepare(request)
            if self.serve_capture_events:
                for body in capture_alert_sequence():
                    if not await self._send_part(response, body):
                        return response
            next_beat = loop.time() + self.heartbeat_interval
            while True:
                try:
                    async with asyncio.timeout(max(0.0, next_beat - loop.time())):
                        item = await queue.get()
                except TimeoutError:
                    item = self.heartbeat_xml()
                    next_beat = loop.time() + self.heartbeat_interval
                if item is None:
                    break
                if not await self._send_part(response, item):
                    return response
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away, as clients do
        finally:
            self._alert_queues.discard(queue)
        return response
