"""The Dahua device adapter: cameras (IPC), NVRs and DVRs through the HTTP CGI API.

Channel numbers: camhub's are 1-based, as Dahua's snapshot, live and playback URLs and search
queries are; event ``index`` and the ``Channel`` of file listings are 0-based and are translated.
Times: the device speaks its local time (``global.cgi`` clock, search conditions, file times);
its UTC offset comes from the ``NTP`` configuration's ``TimeZone`` index. Daylight saving time is
not applied (Vietnam has none); a device whose zone cannot be read is taken to be on UTC+07:00.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

import attrs

from camhub.adapter import (
    Capability,
    ChannelInfo,
    DeviceAdapter,
    DeviceEvent,
    DeviceHealth,
    DeviceIdentity,
    DeviceTime,
    MediaSource,
    RecordingSpan,
    StorageState,
    StreamProfile,
)
from camhub.errors import (
    DeviceAuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
    DeviceUnreachable,
    DeviceUnsupported,
)
from camhub.log import get_logger
from camhub.net import Remembered, boundary_of
from camhub_dahua.client import (
    DahuaCGI,
    cgi_path,
    device_time_text,
    error_reason,
    missing,
    parse_device_time,
    timezone_from_ntp,
)
from camhub_dahua.config import DahuaConfig
from camhub_dahua.events import DEFAULT_BOUNDARY, iter_parts, to_device_event

if TYPE_CHECKING:
    import httpx

    from camhub.model import DeviceConfig
    from camhub.secrets import Secret

__all__ = ["DahuaAdapter"]

#: Largest snapshot accepted (a 4K camera's JPEG is 1–3 MB).
MAX_SNAPSHOT = 16 * 1024 * 1024
#: Files asked for per ``findNextFile``; a page with fewer ends the listing.
SEARCH_PAGE = 100
#: Pages read at most in one search (a device that always answers a full page must not loop).
MAX_SEARCH_PAGES = 200
#: How long the device's time zone is trusted before it is read again.
ZONE_TTL = 600.0

_ASSUMED_ZONE = timezone(timedelta(hours=7))
_ITEM = re.compile(r"^items\[(\d+)\]\.(.+)$")
_HEX = frozenset("0123456789abcdef")
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"


@attrs.frozen
class _Zone:
    tz: timezone
    name: str
    read_at: float


@attrs.frozen
class _Layout:
    """What the device's inputs are: how many, which are remote (NVR), their titles and sound."""

    remote: int
    names: tuple[str, ...]
    audio: tuple[bool, ...]


class DahuaAdapter(DeviceAdapter):
    """Talks to Dahua cameras, NVRs and DVRs over their HTTP CGI API with Digest authentication.

    A refused login (or a locked account) stops the adapter: every later call raises
    :class:`~camhub.errors.DeviceAuthError` without contacting the device, because Dahua locks
    accounts after a few failed logins. Make a new adapter once the credentials are fixed.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)

    def __init__(
        self, config: DeviceConfig, client: httpx.AsyncClient, *, username: str, password: Secret
    ) -> None:
        super().__init__(config, client, username=username, password=password)
        settings = config if isinstance(config, DahuaConfig) else None
        self.timeout = settings.timeout if settings else 10.0
        self.heartbeat = settings.event_heartbeat if settings else 5
        #: Seconds without a byte after which the event stream is stalled (three heartbeats).
        self.idle_timeout = 3.0 * self.heartbeat
        self._cgi = DahuaCGI(
            client,
            config.id,
            config.base_url,
            username=username,
            password=password.reveal(),
            timeout=self.timeout,
            stream_idle=self.idle_timeout,
        )
        self._zone: _Zone | None = None
        self._identity: Remembered[DeviceIdentity] = Remembered()
        self._layout: Remembered[_Layout] = Remembered()

    # -- identity and time --------------------------------------------------------------------
    async def identity(self) -> DeviceIdentity:
        """``magicBox.cgi`` system info (type and serial), firmware and name; the MAC from the
        ``Network`` config. Firmware without ``getSystemInfo`` is asked ``getDeviceType`` and
        ``getSerialNo``.

        Kept between calls (four requests), read again after a while or an outage.
        """
        return await self._identity.get(self._read_identity)

    async def _read_identity(self) -> DeviceIdentity:
        system = await self._optional_table(
            cgi_path("magicBox.cgi", ("action", "getSystemInfo")), "system info"
        )
        model = system.get("deviceType") or await self._value(
            "magicBox.cgi", "getDeviceType", "type", "device type"
        )
        serial = system.get("serialNumber") or await self._value(
            "magicBox.cgi", "getSerialNo", "sn", "serial number"
        )
        firmware = await self._value("magicBox.cgi", "getSoftwareVersion", "version", "software version")
        try:
            name = await self._value("magicBox.cgi", "getMachineName", "name", "machine name")
        except DeviceUnsupported:
            name = ""
        network = await self._cgi.table(self._config_path("Network"), "network configuration")
        return DeviceIdentity(
            vendor="dahua", model=model, serial=serial, firmware=firmware, mac=self._mac(network), name=name
        )

    async def time(self) -> DeviceTime:
        """The device clock (``global.cgi?action=getCurrentTime``, local time) in UTC, and its offset."""
        zone = await self._zone_info()
        before = datetime.now(UTC)
        try:
            table = await self._cgi.table(
                cgi_path("global.cgi", ("action", "getCurrentTime")), "device clock"
            )
        except (DeviceUnreachable, DeviceTimeout):
            # It may come back rebooted, upgraded or replaced: read what it is again.
            self._identity.forget()
            self._layout.forget()
            raise
        after = datetime.now(UTC)
        device_time = parse_device_time(table.get("result"), zone.tz)
        if device_time is None:
            raise DeviceProtocolError(
                self.config.id, f"device clock: unreadable time {table.get('result')!r}"
            )
        # The device truncates to whole seconds: its clock was, on average, half a second later.
        device_time += timedelta(milliseconds=500)
        offset = device_time - (before + (after - before) / 2)
        return DeviceTime(device_time=device_time, offset=offset, timezone=zone.name)

    # -- channels and media -------------------------------------------------------------------
    async def channels(self) -> list[ChannelInfo]:
        """Inputs: an NVR's remote channels (and a DVR's analogue ones first), or a camera's own.

        Titles come from ``ChannelTitle``, sound from ``Encode[…].MainFormat[0].AudioEnable``, an
        NVR channel's state from ``LogicDeviceManager.cgi?action=getCameraState``. The layout
        (counts, titles, sound: four requests) is kept between calls and read again after a
        while or an outage; an NVR's channel states are asked every time.
        """
        layout = await self._layout.get(self._read_layout)
        online: dict[int, bool] = {}
        if layout.remote:
            states = await self._optional_table(
                cgi_path("LogicDeviceManager.cgi", ("action", "getCameraState"), ("uniqueChannels[0]", -1)),
                "camera states",
            )
            online = _camera_states(states)
        return [
            ChannelInfo(id=index + 1, name=name, online=online.get(index), audio=audio)
            for index, (name, audio) in enumerate(zip(layout.names, layout.audio, strict=True))
        ]

    async def _read_layout(self) -> _Layout:
        remote = await self._count(
            cgi_path("magicBox.cgi", ("action", "getProductDefinition"), ("name", "MaxRemoteInputChannels")),
            "table.MaxRemoteInputChannels",
        )
        local = 0
        if remote:
            local = await self._count(
                cgi_path("magicBox.cgi", ("action", "getProductDefinition"), ("name", "VideoInputChannels")),
                "table.VideoInputChannels",
            )
        else:
            local = await self._count(cgi_path("devVideoInput.cgi", ("action", "getCollect")), "result")
        titles = await self._optional_table(self._config_path("ChannelTitle"), "channel titles")
        total = local + remote
        if not total:
            total = len([k for k in titles if k.startswith("table.ChannelTitle[") and k.endswith("].Name")])
        if not total:
            raise DeviceProtocolError(self.config.id, "channels: the device reports no video input")
        encode = await self._optional_table(self._config_path("Encode"), "encoder configuration")
        return _Layout(
            remote=remote,
            names=tuple(titles.get(f"table.ChannelTitle[{index}].Name", "") for index in range(total)),
            audio=tuple(
                encode.get(f"table.Encode[{index}].MainFormat[0].AudioEnable", "").lower() == "true"
                for index in range(total)
            ),
        )

    async def stream(self, channel: int, profile: StreamProfile = StreamProfile.MAIN) -> MediaSource:
        """``rtsp://host:port/cam/realmonitor?channel=N&subtype=0`` (main) or ``subtype=1`` (sub)."""
        self._check_channel(channel)
        subtype = 0 if profile is StreamProfile.MAIN else 1
        return self._rtsp(f"/cam/realmonitor?channel={channel}&subtype={subtype}")

    async def playback(self, channel: int, start: datetime, end: datetime) -> MediaSource:
        """The device's RTSP playback of a channel's footage between two UTC times (real time).

        :meth:`recording` is the faster way to fetch a found file; this one addresses footage by
        time, across file boundaries.
        """
        self._check_channel(channel)
        zone = await self._zone_info()
        start_text, end_text = (f"{t.astimezone(zone.tz):%Y_%m_%d_%H_%M_%S}" for t in (start, end))
        return self._rtsp(
            f"/cam/playback?channel={channel}&subtype=0&starttime={start_text}&endtime={end_text}"
        )

    async def snapshot(self, channel: int) -> bytes:
        """A JPEG from ``snapshot.cgi?channel=N`` (1-based); a trailing ``dhav`` block is removed."""
        self._check_channel(channel)
        what = f"snapshot of channel {channel}"
        response = await self._cgi.fetch(
            cgi_path("snapshot.cgi", ("channel", channel)), what, max_body=MAX_SNAPSHOT
        )
        return jpeg_picture(self.config.id, response.body, what)

    # -- events -------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[DeviceEvent]:
        """``eventManager.cgi?action=attach&codes=[All]``, normalised, heartbeats included.

        Raises :class:`~camhub.errors.DeviceTimeout` when the stream is silent for three
        heartbeats, :class:`~camhub.errors.DeviceProtocolError` when it breaks inside a part and
        :class:`~camhub.errors.DeviceUnreachable` when the device closes it.
        """
        path = cgi_path(
            "eventManager.cgi", ("action", "attach"), ("codes", "[All]"), ("heartbeat", self.heartbeat)
        )
        async with self._cgi.stream(path, "event stream") as response:
            content_type = response.headers.get("content-type", "")
            if "multipart" not in content_type.lower():
                body = b""
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > 4096:
                        break
                reason = error_reason(body)
                if reason is not None:
                    raise DeviceUnsupported(
                        self.config.id, f"event stream: the device answered Error ({reason})"
                    )
                raise DeviceProtocolError(
                    self.config.id, f"event stream: not a multipart answer ({content_type!r})"
                )
            boundary = boundary_of(content_type) or DEFAULT_BOUNDARY
            get_logger("camhub_dahua").debug("dahua.events_attached", device=self.config.id)
            parts = iter_parts(self.config.id, response.aiter_raw(), boundary, idle_timeout=self.idle_timeout)
            async with aclosing(parts):
                async for part in parts:
                    yield to_device_event(self.config.id, part, received=datetime.now(UTC))
        raise DeviceUnreachable(self.config.id, "the device closed the event stream")

    # -- recordings ---------------------------------------------------------------------------
    async def search_recordings(self, channel: int, start: datetime, end: datetime) -> list[RecordingSpan]:
        """Video files on the device's disk or card for a channel, overlapping ``[start, end)``.

        ``mediaFileFind.cgi``: ``factory.create``, ``findFile`` (``condition.Channel`` 1-based,
        times in device local time), ``findNextFile`` until a page comes back short — the
        ``found=`` count is not trusted, the items are — then always ``close`` and ``destroy``.
        """
        self._check_channel(channel)
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("search_recordings needs timezone-aware datetimes")
        if end <= start:
            return []
        zone = await self._zone_info()
        created = await self._cgi.table(
            cgi_path("mediaFileFind.cgi", ("action", "factory.create")), "recording search"
        )
        handle = created.get("result", "")
        if not handle.isdigit():
            raise missing(self.config.id, "recording search", "result=<object>")
        try:
            try:
                await self._cgi.text(
                    cgi_path(
                        "mediaFileFind.cgi",
                        ("action", "findFile"),
                        ("object", handle),
                        ("condition.Channel", channel),
                        ("condition.StartTime", device_time_text(start, zone.tz)),
                        ("condition.EndTime", device_time_text(end, zone.tz)),
                        ("condition.Types[0]", "dav"),
                    ),
                    "recording search",
                )
            except DeviceUnsupported:
                return []  # firmware answers Error to a search that matches nothing
            return await self._read_found(handle, channel, start, end, zone)
        finally:
            await self._release_finder(handle)

    async def recording(self, span: RecordingSpan) -> MediaSource:
        """The file itself, over HTTP: ``/cgi-bin/RPC_Loadfile<FilePath>`` (Digest auth).

        The download runs as fast as the link allows (RTSP playback runs in real time) and is
        the device's own recording (``.dav``: FFmpeg's ``dhav`` demuxer reads it), so PyAV remuxes
        it without re-encoding: ``av.open(source.authenticated_url())``.
        """
        if not span.token.startswith("/"):
            raise DeviceProtocolError(self.config.id, f"not a Dahua file path: {span.token!r}")
        url = self._cgi.http.url("/cgi-bin/RPC_Loadfile" + quote(span.token, safe="/:[]@"))
        return MediaSource(url=url, username=self.username, password=self.password)

    # -- health -------------------------------------------------------------------------------
    async def health(self) -> DeviceHealth:
        """Identity and clock (reachable, logged in, skew), then ``storageDevice.cgi`` disks."""
        try:
            await self.identity()
            measured = await self.time()
        except DeviceAuthError as exc:
            return DeviceHealth(reachable=True, auth_ok=False, error=exc.detail)
        except (DeviceUnreachable, DeviceTimeout) as exc:
            return DeviceHealth(reachable=False, auth_ok=False, error=exc.detail)
        except DeviceError as exc:
            return DeviceHealth(reachable=True, auth_ok=True, error=exc.detail)
        try:
            storage = await self._storage()
        except DeviceUnsupported:
            storage = ()  # a camera without a card
        except DeviceError as exc:
            return DeviceHealth(reachable=True, auth_ok=True, clock_skew=measured.offset, error=exc.detail)
        return DeviceHealth(reachable=True, auth_ok=True, clock_skew=measured.offset, storage=storage)

    # -- helpers ------------------------------------------------------------------------------
    def _config_path(self, name: str) -> str:
        return cgi_path("configManager.cgi", ("action", "getConfig"), ("name", name))

    async def _value(self, script: str, action: str, key: str, what: str) -> str:
        table = await self._cgi.table(cgi_path(script, ("action", action)), what)
        value = table.get(key, "")
        if not value:
            raise missing(self.config.id, what, f"{key}=")
        return value

    async def _optional_table(self, path: str, what: str) -> dict[str, str]:
        try:
            return await self._cgi.table(path, what)
        except DeviceUnsupported:
            return {}

    async def _count(self, path: str, key: str) -> int:
        table = await self._optional_table(path, key)
        value = table.get(key, "")
        return int(value) if value.isdigit() and int(value) <= 1024 else 0

    def _mac(self, network: dict[str, str]) -> str:
        interface = network.get("table.Network.DefaultInterface", "eth0")
        raw = network.get(f"table.Network.{interface}.PhysicalAddress") or next(
            (v for k, v in network.items() if k.endswith(".PhysicalAddress") and v), ""
        )
        digits = "".join(c for c in raw.lower() if c not in ":-.")
        if len(digits) != 12 or not set(digits) <= _HEX:
            raise DeviceProtocolError(self.config.id, f"network configuration: no MAC address (got {raw!r})")
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))

    async def _zone_info(self) -> _Zone:
        now = time.monotonic()
        if self._zone is not None and now - self._zone.read_at < ZONE_TTL:
            return self._zone
        ntp = await self._optional_table(self._config_path("NTP"), "time zone")
        found = timezone_from_ntp(ntp)
        if found is None:
            get_logger("camhub_dahua").warning(
                "dahua.timezone_assumed", device=self.config.id, zone="UTC+07:00"
            )
            self._zone = _Zone(_ASSUMED_ZONE, "UTC+07:00 (assumed)", now)
        else:
            self._zone = _Zone(found[0], found[1], now)
        return self._zone

    def _check_channel(self, channel: int) -> None:
        if channel < 1:
            raise DeviceUnsupported(self.config.id, f"channel {channel} does not exist: channels are 1-based")

    def _rtsp(self, path_and_query: str) -> MediaSource:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return MediaSource(
            url=f"rtsp://{host}:{self.config.rtsp_port}{path_and_query}",
            username=self.username,
            password=self.password,
        )

    async def _read_found(
        self, handle: str, channel: int, start: datetime, end: datetime, zone: _Zone
    ) -> list[RecordingSpan]:
        spans: list[RecordingSpan] = []
        seen: set[tuple[str, datetime]] = set()
        next_path = cgi_path(
            "mediaFileFind.cgi", ("action", "findNextFile"), ("object", handle), ("count", SEARCH_PAGE)
        )
        for _ in range(MAX_SEARCH_PAGES):
            try:
                table = await self._cgi.table(next_path, "recording search")
            except DeviceUnsupported:
                break  # firmware answers Error once the listing is exhausted
            items = _items(table)
            fresh = 0
            for item in items:
                span = self._span(channel, item, zone)
                if span is None or (span.token, span.start) in seen:
                    continue
                seen.add((span.token, span.start))
                fresh += 1
                if span.start < end and span.end > start:
                    spans.append(span)
            if len(items) < SEARCH_PAGE or not fresh:
                break
        else:
            get_logger("camhub_dahua").warning(
                "dahua.search_truncated", device=self.config.id, channel=channel, files=len(spans)
            )
        return sorted(spans, key=lambda s: (s.start, s.token))

    def _span(self, channel: int, item: dict[str, str], zone: _Zone) -> RecordingSpan | None:
        listed = item.get("Channel", "").strip()
        path = item.get("FilePath", "")
        start = parse_device_time(item.get("StartTime"), zone.tz)
        end = parse_device_time(item.get("EndTime"), zone.tz)
        reason = ""
        if listed.isdigit() and int(listed) != channel - 1:
            reason = f"listed for channel index {listed}"
        elif item.get("Type", "dav").lower() not in ("dav", "mp4"):
            reason = f"not video ({item.get('Type')})"
        elif not path or start is None or end is None or end <= start:
            reason = "no file path or times"
        if reason:
            get_logger("camhub_dahua").debug(
                "dahua.search_item_skipped", device=self.config.id, channel=channel, reason=reason
            )
            return None
        assert start is not None
        assert end is not None
        length = item.get("Length", "").strip()
        try:
            size: int | None = int(float(length)) if length else None
        except ValueError:
            size = None
        return RecordingSpan(channel=channel, start=start, end=end, token=path, size=size)

    async def _release_finder(self, handle: str) -> None:
        for action in ("close", "destroy"):
            try:
                await self._cgi.text(
                    cgi_path("mediaFileFind.cgi", ("action", action), ("object", handle)), f"search {action}"
                )
            except DeviceError as exc:
                get_logger("camhub_dahua").warning(
                    "dahua.search_release_failed", device=self.config.id, action=action, error=exc.detail
                )

    async def _storage(self) -> tuple[StorageState, ...]:
        table = await self._cgi.table(
            cgi_path("storageDevice.cgi", ("action", "getDeviceAllInfo")), "storage devices"
        )
        return _storage_states(table)


def jpeg_picture(device_id: str, data: bytes, what: str) -> bytes:
    """``data`` if it is a whole JPEG picture, without the ``dhav`` block or padding some devices append.

    :raises DeviceProtocolError: when it is not a JPEG, or is cut short.
    """
    end = data.rfind(_JPEG_END)
    if not data.startswith(_JPEG_START) or end < 0:
        raise DeviceProtocolError(device_id, f"{what}: the answer is not a JPEG picture")
    tail = data[end + 2 :]
    if tail and not (tail.startswith(b"dhav") or not tail.strip(b"\x00\r\n")):
        raise DeviceProtocolError(device_id, f"{what}: the JPEG picture is incomplete")
    return data[: end + 2]


def _items(table: dict[str, str]) -> list[dict[str, str]]:
    """``items[N].Field=value`` lines grouped by N, in N's order (``found=`` is ignored)."""
    items: dict[int, dict[str, str]] = {}
    for key, value in table.items():
        match = _ITEM.match(key)
        if match:
            items.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [items[n] for n in sorted(items)]


def _camera_states(table: dict[str, str]) -> dict[int, bool]:
    """``states[i].channel`` (0-based) → whether ``states[i].connectionState`` is ``Connected``."""
    states: dict[int, bool] = {}
    for key, value in table.items():
        if key.startswith("states[") and key.endswith("].channel") and value.strip().isdigit():
            connection = table.get(key.removesuffix("channel") + "connectionState", "")
            states[int(value)] = connection.lower() == "connected"
    return states


def _storage_states(table: dict[str, str]) -> tuple[StorageState, ...]:
    """``list.info[i]`` disks: ``Name``, ``State`` and their partitions' ``Detail[j]`` bytes and errors."""
    disks: dict[int, dict[str, str]] = {}
    for key, value in table.items():
        match = re.match(r"^list\.info\[(\d+)\]\.(.+)$", key)
        if match:
            disks.setdefault(int(match.group(1)), {})[match.group(2)] = value
    states = []
    for number in sorted(disks):
        disk = disks[number]
        total = used = 0
        part_error = False
        for key, value in disk.items():
            if key.endswith(".TotalBytes"):
                total += _bytes(value)
            elif key.endswith(".UsedBytes"):
                used += _bytes(value)
            elif key.endswith(".IsError") and value.lower() == "true":
                part_error = True
        status = _disk_status(disk.get("State", ""), part_error, total, used)
        states.append(
            StorageState(
                id=disk.get("Name", f"disk{number}"),
                status=status,
                capacity_bytes=total or None,
                free_bytes=max(total - used, 0) if total else None,
            )
        )
    return tuple(states)


def _bytes(value: str) -> int:
    try:
        return max(int(float(value)), 0)  # firmware writes "31914983424.000000"
    except ValueError:
        return 0


def _disk_status(state: str, part_error: bool, total: int, used: int) -> str:
    word = state.strip().lower()
    if part_error or "error" in word or "fail" in word:
        return "fault"
    if "notexist" in word or "noexist" in word or "absent" in word:
        return "absent"
    if "format" in word:
        return "unformatted"
    if word not in ("success", "normal", "ok", ""):
        return word
    if total and used >= total:
        return "full"
    return "ok"
