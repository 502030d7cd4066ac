"""A simulated Dahua camera (IPC) or NVR: the HTTP CGI API on loopback, in the firmware's wire formats.

Answers are what Dahua firmware sends: ``key=value`` lines with CRLF (``type=…``,
``table.ChannelTitle[0].Name=…``), ``OK``, or ``Error`` and a reason — with HTTP 200 by default,
as much firmware does (:attr:`DahuaSimulator.error_status`). After
:attr:`~camhub.testing.simulator.Faults.lockout_after` failed logins every request is answered
401 with ``Error`` / ``User Locked!`` (the wording is modelled, not captured). Event index and file
listings are 0-based, snapshot and search channels 1-based, times are device local time in the
zone of ``NTP.TimeZone``. The event stream is ``multipart/x-mixed-replace; boundary=myboundary``
with ``Content-Length`` parts and ``Heartbeat`` parts; :meth:`DahuaSimulator.replay_capture`
first writes a real device's recorded stream verbatim.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import attrs
from aiohttp import web
from multidict import MultiMapping

from camhub.adapter import EventKind
from camhub.testing.simulator import DeviceProfile, SimulatedDevice, SimulatedEvent, SimulatedRecording

__all__ = ["BOUNDARY", "CAPTURE", "SNAPSHOT_JPEG", "DahuaSimulator", "capture_bytes"]

BOUNDARY = "myboundary"
#: The real ``eventManager.cgi`` stream shipped in ``camhub.testing`` (see its MANIFEST).
CAPTURE = "cgi_eventManager_attach_videomotion.txt"

#: A real 32×24 baseline JPEG (encoded by FFmpeg's mjpeg encoder); snapshots add a comment to it.
SNAPSHOT_JPEG = base64.b64decode(
    "/9j//gAQTGF2YzYyLjI4LjEwMgD/2wBDAAgEBAQEBAUFBQUFBQYGBgYGBgYGBgYGBgYHBwcICAgHBwcGBgcHCAgICAkJCQgICAgJ"
    "CQoKCgwMCwsODg4RERT/3QAEAAL/xAGiAAABBQEBAQEBAQAAAAAAAAAAAQIDBAUGBwgJCgsBAAMBAQEBAQEBAQEAAAAAAAABAgME"
    "BQYHCAkKCxAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0"
    "NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLD"
    "xMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6EQACAQIEBAMEBwUEBAABAncAAQIDEQQFITEGEkFRB2FxEyIygQgU"
    "QpGhscEJIzNS8BVictEKFiQ04SXxFxgZGiYnKCkqNTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqCg4SFhoeI"
    "iYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2dri4+Tl5ufo6ery8/T19vf4+fr/wAARCAAYACAD"
    "ASIAAhEAAxEA/9oADAMBAAIRAxEAPwDynw3pv3OPSvQPDem/c49K5/w3pv3OPSvQPDem/c49KAOg8N6b9zj0rQ+KHjT/AIVh8ONR"
    "1mBtmpXG3TNG+XONRukfy5vmtrmH/RIUmvNlwgim8jySwLitDw3pv3OPSvD/ANorxp/wmnxHOjWjbtN8LefpkXy48zUWdf7Tm/eW"
    "0My7Zoo7PYXliP2TzoWxKaAP/9DJ8N6b9zj0r0Dw3pv3OPSuN8N/wfhXoHhv+D8KAHfFDxp/wrD4cajrMDbNSuNumaN8ucajdI/l"
    "zfNbXMP+iQpNebLhBFN5HklgXFfN/hvTfucele3ftZf8kr0P/sa7D/016rXj/hv+D8KAP//Z"
)

#: ``NTP.TimeZone`` index → (minutes from UTC, the description the web interface shows).
_ZONES: tuple[tuple[int, str], ...] = (
    (0, "London"), (60, "Berlin"), (120, "Cairo"), (180, "Moscow"), (210, "Tehran"), (240, "Dubai"),
    (270, "Kabul"), (300, "Karachi"), (330, "New Delhi"), (345, "Kathmandu"), (360, "Dhaka"),
    (390, "Yangon"), (420, "Bangkok"), (480, "Beijing"), (540, "Tokyo"), (570, "Adelaide"), (600, "Sydney"),
    (660, "Magadan"), (720, "Auckland"), (780, "Nuku'alofa"), (-60, "Azores"), (-120, "Mid-Atlantic"),
    (-180, "Brasilia"), (-210, "Newfoundland"), (-240, "Atlantic Time"), (-300, "Easterntime"),
    (-360, "Central Time"), (-420, "Mountain Time"), (-480, "Pacific Time"), (-540, "Alaska"),
    (-600, "Hawaii"), (-660, "Samoa"), (-720, "Eniwetok"),
)  # fmt: skip

_CODES: dict[EventKind, str] = {
    EventKind.MOTION: "VideoMotion",
    EventKind.VIDEO_LOSS: "VideoLoss",
    EventKind.TAMPER: "VideoBlind",
    EventKind.STORAGE_FAULT: "StorageFailure",
    EventKind.LOGIN_FAILURE: "LoginFailure",
    EventKind.OTHER: "AlarmLocal",
    EventKind.HEARTBEAT: "Heartbeat",
}
#: Codes whose index is a disk or the device, not a channel (index 0 on the wire).
_SYSTEM_CODES = frozenset({"StorageFailure", "LoginFailure"})


def capture_bytes(name: str = CAPTURE) -> bytes:
    """A Dahua peer capture shipped in ``camhub.testing`` (``captures/dahua/<name>``), byte for byte."""
    return resources.files("camhub.testing").joinpath("captures", "dahua", name).read_bytes()


def _part(body: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body + b"\r\n\r\n"


@attrs.define
class _Finder:
    """One ``mediaFileFind`` object: the files its ``findFile`` matched and how far they were read."""

    found: list[SimulatedRecording] = attrs.Factory(list)
    position: int = 0
    searched: bool = False


class DahuaSimulator(SimulatedDevice):
    """A Dahua IPC (``profile.nvr`` false) or NVR on 127.0.0.1 speaking the HTTP CGI API.

    Switches (change them while it runs): :attr:`error_status`, :attr:`refuse`,
    :attr:`heartbeats`, :attr:`found_lie`, :attr:`storage_fault`, :attr:`offline_channels`,
    :attr:`replay`, and the base :attr:`faults`.
    """

    vendor = "dahua"

    def __init__(
        self,
        profile: DeviceProfile | None = None,
        *,
        rtsp_url: str = "rtsp://127.0.0.1:554",
        port: int = 0,
        timezone_index: int = 12,
    ) -> None:
        #: ``NTP.TimeZone``: the device's zone as an index of Dahua's table (12: UTC+07:00).
        self.timezone_index = timezone_index
        #: HTTP status of ``Error`` answers (200 as most firmware; the API document says 400).
        self.error_status = 200
        #: ``"script:action"`` pairs answered ``Error`` (e.g. ``"global.cgi:getCurrentTime"``;
        #: ``"snapshot.cgi:"`` for a script without an action).
        self.refuse: set[str] = set()
        #: Send the ``Heartbeat`` parts the client asks for (False: a stream that goes silent).
        self.heartbeats = True
        #: Report this ``found=`` in every ``findNextFile`` answer instead of the true count.
        self.found_lie: int | None = None
        #: Report the disk or card as failed.
        self.storage_fault = False
        #: NVR channels (1-based) whose camera is disconnected.
        self.offline_channels: set[int] = set()
        #: Bytes written verbatim at the start of every event stream (see :meth:`replay_capture`).
        self.replay: bytes | None = None
        #: What a locked account is told (after the ``Error`` line).
        self.lock_message = "User Locked!"
        #: Raise a ``LoginFailure`` event on every failed login, as the firmware does.
        self.login_failure_events = True
        #: Channel titles (index 0 is channel 1).
        self.titles: list[str] = []
        #: Open ``mediaFileFind`` objects by id; a client that always destroys them leaves none.
        self.finders: dict[str, _Finder] = {}
        self._next_finder = 8137
        super().__init__(profile or self.ipc_profile(), rtsp_url=rtsp_url, port=port)
        if not self.titles:
            self.titles = (
                [f"Quầy tiếp nhận {n}" for n in range(1, self.profile.channels + 1)]
                if self.profile.nvr
                else [self.profile.name]
            )

    async def __aenter__(self) -> DahuaSimulator:
        await self.start()
        return self

    # -- profiles ------------------------------------------------------------------------------
    @staticmethod
    def ipc_profile(**changes: Any) -> DeviceProfile:
        """A single-lens Dahua camera with audio and an SD card."""
        profile = DeviceProfile(
            model="IPC-HDW2431T-AS-S2",
            serial="7G0456PAZ67890",
            firmware="2.800.0000000.16.R,build:2021-11-18",
            mac="3c:ef:8c:12:34:56",
            name="Cổng chính",
            channels=1,
            nvr=False,
            audio=True,
            realm="Login to 7G0456PAZ67890",
        )
        return attrs.evolve(profile, **changes)

    @staticmethod
    def nvr_profile(**changes: Any) -> DeviceProfile:
        """A 4-channel Dahua NVR with one disk."""
        profile = DeviceProfile(
            model="DHI-NVR4104-P-4KS2",
            serial="6J0123PAZ12345",
            firmware="4.001.0000000.1,build:2021-06-04",
            mac="3c:ef:8c:65:43:21",
            name="Đầu ghi UBND",
            channels=4,
            nvr=True,
            audio=False,
            realm="Login to 6J0123PAZ12345",
        )
        return attrs.evolve(profile, **changes)

    # -- device state --------------------------------------------------------------------------
    @property
    def tz(self) -> timezone:
        """The device's time zone (from :attr:`timezone_index`)."""
        return timezone(timedelta(minutes=_ZONES[self.timezone_index][0]))

    def local_text(self, moment: datetime) -> str:
        """A moment as the device writes local time: ``2024-01-01 12:00:00``."""
        return f"{moment.astimezone(self.tz):%Y-%m-%d %H:%M:%S}"

    def replay_capture(self, name: str = CAPTURE) -> None:
        """Start every event stream with a real device's recorded stream, written verbatim."""
        self.replay = capture_bytes(name)

    def stream_url(self, channel: int, main: bool = True) -> str:
        """The live URL the device serves for a channel (on :attr:`rtsp_url`'s server)."""
        return f"{self.rtsp_url}/cam/realmonitor?channel={channel}&subtype={0 if main else 1}"

    def file_path(self, recording: SimulatedRecording) -> str:
        """Where the device keeps a recording (its ``FilePath``, fetched through ``RPC_Loadfile``)."""
        start, end = (t.astimezone(self.tz) for t in (recording.start, recording.end))
        if self.profile.nvr:
            folder = f"/mnt/dvr/sda0/{start:%Y-%m-%d}/{recording.channel - 1}"
        else:
            folder = f"/mnt/sd/{start:%Y-%m-%d}/001"
        return f"{folder}/dav/{start:%H}/{start:%H.%M.%S}-{end:%H.%M.%S}[R][0@0][0].dav"

    def event_body(self, event: SimulatedEvent) -> bytes:
        """The part body the device writes for an event: ``Code=…;action=…;index=…;data={…}``."""
        code = _CODES[event.kind]
        moment = event.time or self.now()
        index = 0 if code in _SYSTEM_CODES or event.channel is None else event.channel - 1
        data: dict[str, object] = {"LocaleTime": self.local_text(moment), "UTC": int(moment.timestamp())}
        if code == "VideoMotion":
            data.update({"Name": "MotionDetect", "SmartMotionEnable": False})
        elif code == "LoginFailure":
            data.update({"Name": self.profile.username, "Address": "127.0.0.1", "Type": "HTTP"})
        action = "Start" if event.active else "Stop"
        text = json.dumps(data, indent="\t", separators=(",", ":\t"), ensure_ascii=False)
        return f"Code={code};action={action};index={index};data={text}".encode()

    @property
    def open_finders(self) -> int:
        """``mediaFileFind`` objects created and not destroyed."""
        return len(self.finders)

    # -- authentication ------------------------------------------------------------------------
    def check_digest(self, method: str, header: str) -> bool:
        accepted = super().check_digest(method, header)
        if not accepted and self.login_failure_events:
            self.emit(SimulatedEvent(EventKind.LOGIN_FAILURE, True))
        return accepted

    def locked_answer(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=401,
            headers={"WWW-Authenticate": self._challenge()},
            text=f"Error\r\n{self.lock_message}\r\n",
            content_type="text/plain",
        )

    # -- routes --------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_get("/cgi-bin/magicBox.cgi", self._magic_box)
        router.add_get("/cgi-bin/configManager.cgi", self._config_manager)
        router.add_get("/cgi-bin/global.cgi", self._global)
        router.add_get("/cgi-bin/devVideoInput.cgi", self._video_input)
        router.add_get("/cgi-bin/LogicDeviceManager.cgi", self._logic_device)
        router.add_get("/cgi-bin/snapshot.cgi", self._snapshot)
        router.add_get("/cgi-bin/eventManager.cgi", self._event_manager)
        router.add_get("/cgi-bin/mediaFileFind.cgi", self._media_file_find)
        router.add_get("/cgi-bin/RPC_Loadfile/{path:.*}", self._load_file)
        router.add_get("/cgi-bin/storageDevice.cgi", self._storage_device)

    def _lines(self, pairs: Iterable[tuple[str, object]]) -> web.Response:
        text = "".join(f"{key}={value}\r\n" for key, value in pairs)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    def _error(self, reason: str = "Bad Request!", status: int | None = None) -> web.Response:
        return web.Response(
            status=self.error_status if status is None else status,
            text=f"Error\r\n{reason}\r\n",
            content_type="text/plain",
        )

    def _action(self, request: web.Request, script: str) -> str | None:
        """The request's ``action``, or None when the simulator is told to refuse it."""
        action = request.query.get("action", "")
        return None if f"{script}:{action}" in self.refuse else action

    async def _magic_box(self, request: web.Request) -> web.StreamResponse:
        p = self.profile
        action = self._action(request, "magicBox.cgi")
        answers: dict[str, list[tuple[str, object]]] = {
            "getDeviceType": [("type", p.model)],
            "getSerialNo": [("sn", p.serial)],
            "getSoftwareVersion": [("version", p.firmware)],
            "getMachineName": [("name", p.name)],
            "getSystemInfo": [
                ("appAutoStart", "true"),
                ("deviceType", p.model),
                ("processor", "SSC8629Q"),
                ("serialNumber", p.serial),
                ("updateSerial", p.model.removeprefix("DHI-")),
            ],
        }
        if action in answers:
            return self._lines(answers[action])
        if action == "getProductDefinition":
            name = request.query.get("name", "")
            if name == "MaxRemoteInputChannels" and p.nvr:
                return self._lines([("table.MaxRemoteInputChannels", p.channels)])
            if name == "VideoInputChannels":
                return self._lines([("table.VideoInputChannels", 0 if p.nvr else p.channels)])
        return self._error()

    async def _config_manager(self, request: web.Request) -> web.StreamResponse:
        if self._action(request, "configManager.cgi") != "getConfig":
            return self._error()
        name = request.query.get("name", "")
        p = self.profile
        channels = range(p.channels)
        if name == "Network":
            return self._lines(
                [
                    ("table.Network.DefaultInterface", "eth0"),
                    ("table.Network.Domain", "dahua"),
                    ("table.Network.Hostname", p.serial),
                    ("table.Network.eth0.DefaultGateway", "192.0.2.1"),
                    ("table.Network.eth0.DhcpEnable", "false"),
                    ("table.Network.eth0.IPAddress", "192.0.2.10"),
                    ("table.Network.eth0.MTU", 1500),
                    ("table.Network.eth0.PhysicalAddress", p.mac),
                    ("table.Network.eth0.SubnetMask", "255.255.255.0"),
                ]
            )
        if name == "NTP":
            return self._lines(
                [
                    ("table.NTP.Address", "pool.ntp.org"),
                    ("table.NTP.Enable", "false"),
                    ("table.NTP.Port", 123),
                    ("table.NTP.TimeZone", self.timezone_index),
                    ("table.NTP.TimeZoneDesc", _ZONES[self.timezone_index][1]),
                    ("table.NTP.UpdatePeriod", 10),
                ]
            )
        if name == "ChannelTitle":
            return self._lines([(f"table.ChannelTitle[{i}].Name", self.titles[i]) for i in channels])
        if name == "Encode":
            pairs: list[tuple[str, object]] = []
            for i in channels:
                for stream, (width, height, kbps) in (
                    ("MainFormat", (2560, 1440, 4096)),
                    ("ExtraFormat", (704, 576, 512)),
                ):
                    base = f"table.Encode[{i}].{stream}[0]"
                    pairs += [
                        (f"{base}.AudioEnable", "true" if p.audio else "false"),
                        (f"{base}.Audio.Compression", "AAC"),
                        (f"{base}.VideoEnable", "true"),
                        (f"{base}.Video.BitRate", kbps),
                        (f"{base}.Video.Compression", "H.264"),
                        (f"{base}.Video.FPS", 25),
                        (f"{base}.Video.GOP", 50),
                        (f"{base}.Video.Height", height),
                        (f"{base}.Video.Width", width),
                    ]
            return self._lines(pairs)
        return self._error()

    async def _global(self, request: web.Request) -> web.StreamResponse:
        if self._action(request, "global.cgi") != "getCurrentTime":
            return self._error()
        return self._lines([("result", self.local_text(self.now()))])

    async def _video_input(self, request: web.Request) -> web.StreamResponse:
        if self._action(request, "devVideoInput.cgi") != "getCollect":
            return self._error()
        return self._lines([("result", self.profile.channels)])

    async def _logic_device(self, request: web.Request) -> web.StreamResponse:
        if self._action(request, "LogicDeviceManager.cgi") != "getCameraState" or not self.profile.nvr:
            return self._error()
        pairs: list[tuple[str, object]] = []
        for i in range(self.profile.channels):
            connected = i + 1 not in self.offline_channels
            pairs += [
                (f"states[{i}].channel", i),
                (f"states[{i}].connectionState", "Connected" if connected else "Unconnect"),
            ]
        return self._lines(pairs)

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        if self._action(request, "snapshot.cgi") is None:
            return self._error()
        text = request.query.get("channel", "1")
        channel = int(text) if text.isdigit() else 0
        if not 1 <= channel <= self.profile.channels:  # 1-based, as on the device
            return self._error()
        comment = f"camhub simulator dahua channel {channel}".encode()
        marker = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        picture = SNAPSHOT_JPEG[:2] + marker + SNAPSHOT_JPEG[2:]
        return web.Response(body=picture, content_type="image/jpeg")

    async def _event_manager(self, request: web.Request) -> web.StreamResponse:
        if self._action(request, "eventManager.cgi") != "attach":
            return self._error()
        wanted = request.query.get("codes", "[All]").strip("[]").split(",")
        codes = None if "All" in wanted else {code.strip() for code in wanted}
        interval = request.query.get("heartbeat", "")
        heartbeat = int(interval) if interval.isdigit() else 0
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[SimulatedEvent | None] = asyncio.Queue()

        async def pump() -> None:
            async for event in self.subscribe():
                queue.put_nowait(event)
            queue.put_nowait(None)

        pumping = asyncio.create_task(pump())
        try:
            if self.replay is not None and not await self.write_stream(response, self.replay):
                return response
            while True:
                wait = heartbeat if heartbeat and self.heartbeats else None
                try:
                    event = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    event = SimulatedEvent(EventKind.HEARTBEAT, True)
                if event is None:
                    break
                if event.kind is EventKind.HEARTBEAT:
                    part = _part(b"Heartbeat")
                elif codes is not None and _CODES[event.kind] not in codes:
                    continue
                else:
                    part = _part(self.event_body(event))
                if not await self.write_stream(response, part):
                    return response
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
        return response

    async def _media_file_find(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        action = self._action(request, "mediaFileFind.cgi")
        if action == "factory.create":
            handle = f"{self._next_finder:05d}"
            self._next_finder += 1
            self.finders[handle] = _Finder()
            return self._lines([("result", handle)])
        finder = self.finders.get(query.get("object", ""))
        if finder is None:
            return self._error()
        if action == "findFile":
            return self._find_file(finder, query)
        if action == "findNextFile" and finder.searched:
            count_text = query.get("count", "100")
            count = min(int(count_text), 100) if count_text.isdigit() else 100
            batch = finder.found[finder.position : finder.position + count]
            finder.position += len(batch)
            pairs: list[tuple[str, object]] = [
                ("found", len(batch) if self.found_lie is None else self.found_lie)
            ]
            for i, recording in enumerate(batch):
                pairs += self._item(i, recording)
            return self._lines(pairs)
        if action in ("close", "factory.close"):
            return web.Response(text="OK\r\n")
        if action in ("destroy", "factory.destroy"):
            del self.finders[query.get("object", "")]
            return web.Response(text="OK\r\n")
        return self._error()

    def _find_file(self, finder: _Finder, query: MultiMapping[str]) -> web.StreamResponse:
        channel_text = query.get("condition.Channel", "")
        channel = int(channel_text) if channel_text.isdigit() else 0
        start, end = (self._parse_local(query.get(f"condition.{k}", "")) for k in ("StartTime", "EndTime"))
        if not 1 <= channel <= self.profile.channels or start is None or end is None:
            return self._error()
        types = {query.get(f"condition.Types[{i}]", "") for i in range(4)} - {""}
        finder.found = sorted(
            (
                r
                for r in self.recordings
                if r.channel == channel and r.start < end and r.end > start and (not types or "dav" in types)
            ),
            key=lambda r: r.start,
        )
        finder.position = 0
        finder.searched = True
        return web.Response(text="OK\r\n")

    def _parse_local(self, text: str) -> datetime | None:
        try:
            return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.tz).astimezone(UTC)
        except ValueError:
            return None

    def _item(self, i: int, recording: SimulatedRecording) -> list[tuple[str, object]]:
        seconds = int((recording.end - recording.start).total_seconds())
        if recording.path and os.path.exists(recording.path):
            length = os.path.getsize(recording.path)
        else:
            length = seconds * 250_000  # 2 Mbit/s
        base = f"items[{i}]"
        return [
            (f"{base}.Channel", recording.channel - 1),  # 0-based in listings
            (f"{base}.Cluster", 0),
            (f"{base}.Disk", 0),
            (f"{base}.Duration", seconds),
            (f"{base}.EndTime", self.local_text(recording.end)),
            (f"{base}.FilePath", self.file_path(recording)),
            (f"{base}.Flags[0]", "Timing"),
            (f"{base}.Length", length),
            (f"{base}.Partition", 0),
            (f"{base}.StartTime", self.local_text(recording.start)),
            (f"{base}.Type", "dav"),
            (f"{base}.VideoStream", "Main"),
        ]

    async def _load_file(self, request: web.Request) -> web.StreamResponse:
        wanted = "/" + request.match_info["path"]
        for recording in self.recordings:
            if self.file_path(recording) == wanted and recording.path and os.path.exists(recording.path):
                return web.FileResponse(recording.path, headers={"Content-Type": "application/octet-stream"})
        return self._error("File Not Found!", status=404)

    async def _storage_device(self, request: web.Request) -> web.StreamResponse:
        if self._action(request, "storageDevice.cgi") != "getDeviceAllInfo":
            return self._error()
        name, total = ("/dev/sda", 2_000_396_321_792) if self.profile.nvr else ("/dev/mmc0", 31_914_983_424)
        used = total // 3
        return self._lines(
            [
                ("list.info[0].Detail[0].IsError", "true" if self.storage_fault else "false"),
                ("list.info[0].Detail[0].Path", f"{name}1"),
                ("list.info[0].Detail[0].TotalBytes", f"{total}.000000"),
                ("list.info[0].Detail[0].Type", "ReadWrite"),
                ("list.info[0].Detail[0].UsedBytes", f"{used}.000000"),
                ("list.info[0].Name", name),
                ("list.info[0].State", "Error" if self.storage_fault else "Success"),
            ]
        )
