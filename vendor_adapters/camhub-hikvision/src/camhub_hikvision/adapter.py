"""The Hikvision device adapter: camhub's DeviceAdapter contract over ISAPI.

Channel ``n`` (camhub's, 1-based as in the device's web interface) is stream ``n01`` (main) and
``n02`` (sub), recording track ``n01``, InputProxy channel ``n`` on an NVR and ``channelID`` /
``dynChannelID`` ``n`` in alerts.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import httpx

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
from camhub.model import DeviceConfig, DeviceKind
from camhub.net import Remembered, boundary_of
from camhub.secrets import Secret
from camhub_hikvision.client import IsapiClient
from camhub_hikvision.config import HikvisionConfig, RecordingClock
from camhub_hikvision.events import EventTrigger, alert_events, parse_triggers
from camhub_hikvision.parse import (
    DeviceInfo,
    format_isapi_time,
    format_rtsp_time,
    merge_channels,
    parse_device_info,
    parse_input_proxy_channels,
    parse_search_result,
    parse_storage,
    parse_streaming_channels,
    parse_time,
    search_description,
)

__all__ = ["HikvisionAdapter"]

DEVICE_INFO = "/ISAPI/System/deviceInfo"
TIME = "/ISAPI/System/time"
STREAMING_CHANNELS = "/ISAPI/Streaming/channels"
INPUT_PROXY = "/ISAPI/ContentMgmt/InputProxy/channels"
INPUT_PROXY_STATUS = "/ISAPI/ContentMgmt/InputProxy/channels/status"
STORAGE = "/ISAPI/ContentMgmt/Storage"
SEARCH = "/ISAPI/ContentMgmt/search"
ALERT_STREAM = "/ISAPI/Event/notification/alertStream"
TRIGGERS = "/ISAPI/Event/triggers"

#: Largest snapshot read (a 4K JPEG is 1–3 MB).
MAX_PICTURE = 8 * 1024 * 1024
#: Matches asked per search page; devices answer with at most their own page size (often 40).
SEARCH_PAGE = 50
#: Pages read before a search that keeps saying MORE counts as broken.
MAX_SEARCH_PAGES = 1000


@attrs.frozen
class _Layout:
    """A device's channel lists: a recorder's proxied inputs (None for a camera), its streams."""

    proxied: ET.Element | None
    streaming: tuple[ChannelInfo, ...]


def _settings(config: DeviceConfig) -> HikvisionConfig:
    if isinstance(config, HikvisionConfig):
        return config
    return HikvisionConfig(**attrs.asdict(config, recurse=False))


class HikvisionAdapter(DeviceAdapter):
    """Talks to Hikvision cameras, NVRs and DVRs over ISAPI (HTTP Digest authentication).

    Microphones: Hikvision devices carry sound inside a channel's stream, so a camera channel
    with audio has ``audio=True``; a streaming channel with sound and no picture (an audio
    encoder input) is reported as a microphone. ``/ISAPI/System/TwoWayAudio/channels`` is the
    talk-back path to the device's speaker, not an input, and is not reported.
    """

    capabilities = frozenset(
        {
            Capability.IDENTITY,
            Capability.TIME,
            Capability.CHANNELS,
            Capability.LIVE,
            Capability.SNAPSHOT,
            Capability.EVENTS,
            Capability.RECORDINGS,
            Capability.HEALTH,
        }
    )

    def __init__(
        self, config: DeviceConfig, client: httpx.AsyncClient, *, username: str, password: Secret
    ) -> None:
        super().__init__(config, client, username=username, password=password)
        self.settings = _settings(config)
        self.isapi = IsapiClient(
            client,
            config.id,
            config.base_url,
            username=username,
            password=password,
            timeout=self.settings.timeout,
        )
        self._info: DeviceInfo | None = None
        self._identity: Remembered[DeviceInfo] = Remembered()
        self._layout: Remembered[_Layout] = Remembered()
        self._zone: tzinfo | None = None  # the device's zone, once its clock has been read

    # -- identity and time --------------------------------------------------------------------
    async def _device_info(self) -> DeviceInfo:
        self._info = parse_device_info(self.config.id, await self.isapi.get_xml(DEVICE_INFO, "DeviceInfo"))
        return self._info

    async def identity(self) -> DeviceIdentity:
        """``deviceInfo``, kept between calls (read again after a while or an outage)."""
        return (await self._identity.get(self._device_info)).identity

    async def time(self) -> DeviceTime:
        before = datetime.now(UTC)
        try:
            root = await self.isapi.get_xml(TIME, "Time")
        except (DeviceUnreachable, DeviceTimeout):
            self._forget()
            raise
        after = datetime.now(UTC)
        clock = parse_time(self.config.id, root)
        self._zone = clock.zone
        # The device read its clock somewhere in the round trip: compare with its middle.
        offset = clock.time - (before + (after - before) / 2)
        return DeviceTime(device_time=clock.time, offset=offset, timezone=clock.label)

    def _forget(self) -> None:
        """The device is away: it may come back rebooted, upgraded or replaced, so read what it is again."""
        self._identity.forget()
        self._layout.forget()

    async def _device_zone(self) -> tzinfo:
        if self._zone is None:
            await self.time()
        assert self._zone is not None
        return self._zone

    # -- channels -----------------------------------------------------------------------------
    async def _is_recorder(self) -> bool:
        if self.config.kind in (DeviceKind.NVR, DeviceKind.DVR):
            return True
        info = self._info or await self._device_info()
        return info.is_recorder

    async def channels(self) -> list[ChannelInfo]:
        """A camera's streaming channels; a recorder's inputs, online or not, with their sound.

        The channel lists are kept between calls and read again after a while or an outage; a
        recorder's input states (``InputProxy/channels/status``) are asked every time.
        """
        layout = await self._layout.get(self._read_layout)
        if layout.proxied is None:
            return list(layout.streaming)
        try:
            status = await self.isapi.get_xml(INPUT_PROXY_STATUS, "InputProxyChannelStatusList")
        except DeviceUnsupported:
            status = None  # older firmware: online unknown
        return merge_channels(parse_input_proxy_channels(layout.proxied, status), list(layout.streaming))

    async def _read_layout(self) -> _Layout:
        if not await self._is_recorder():
            streaming = await self.isapi.get_xml(STREAMING_CHANNELS, "StreamingChannelList")
            return _Layout(None, tuple(parse_streaming_channels(streaming)))
        proxied = await self.isapi.get_xml(INPUT_PROXY, "InputProxyChannelList")
        try:
            streaming = await self.isapi.get_xml(STREAMING_CHANNELS, "StreamingChannelList")
        except DeviceUnsupported:
            return _Layout(proxied, ())
        return _Layout(proxied, tuple(parse_streaming_channels(streaming)))

    # -- media --------------------------------------------------------------------------------
    def _rtsp_netloc(self) -> str:
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.config.rtsp_port}"

    def _media(self, url: str) -> MediaSource:
        return MediaSource(url=url, username=self.username, password=self.password)

    async def stream(self, channel: int, profile: StreamProfile = StreamProfile.MAIN) -> MediaSource:
        track = _track(channel, 2 if profile is StreamProfile.SUB else 1)
        return self._media(f"rtsp://{self._rtsp_netloc()}/Streaming/Channels/{track}")

    async def snapshot(self, channel: int) -> bytes:
        """A JPEG of the channel; an NVR without pictures of its own gives its camera's (StreamingProxy)."""
        track = _track(channel)
        own = f"/ISAPI/Streaming/channels/{track}/picture"
        proxied = f"/ISAPI/ContentMgmt/StreamingProxy/channels/{track}/picture"
        try:
            response = await self.isapi.get_bytes(own, max_body=MAX_PICTURE)
        except DeviceUnsupported as first:
            try:
                response = await self.isapi.get_bytes(proxied, max_body=MAX_PICTURE)
            except DeviceUnsupported as second:
                raise DeviceUnsupported(
                    self.config.id, f"no snapshot of channel {channel}: {first.detail}; {second.detail}"
                ) from None
        if not response.body.startswith(b"\xff\xd8"):
            kind = response.headers.get("content-type", "unknown type")
            raise DeviceProtocolError(self.config.id, f"snapshot of channel {channel} is not a JPEG ({kind})")
        return response.body

    # -- events -------------------------------------------------------------------------------
    def events(self) -> AsyncIterator[DeviceEvent]:
        """Alerts from ``/ISAPI/Event/notification/alertStream``, keep-alives included.

        Raises :class:`~camhub.errors.DeviceTimeout` after ``event_idle_timeout`` seconds
        without an alert or keep-alive, :class:`~camhub.errors.DeviceProtocolError` when the
        stream breaks inside a part, :class:`~camhub.errors.DeviceUnreachable` when the device
        closes it; the caller reconnects.
        """
        return self._alerts()

    async def _alerts(self) -> AsyncIterator[DeviceEvent]:
        idle = self.settings.event_idle_timeout
        log = get_logger("camhub_hikvision.adapter", device=self.config.id)
        async with self.isapi.stream(ALERT_STREAM, read_timeout=idle + self.settings.timeout) as response:
            boundary = boundary_of(response.headers.get("content-type", "")) or "boundary"
            log.debug("hikvision.alert_stream_opened")
            async for event in alert_events(
                self.config.id,
                response.aiter_raw(),
                boundary,
                idle_timeout=idle,
                device_tz=lambda: self._zone,
            ):
                yield event
        raise DeviceUnreachable(self.config.id, "the device closed its alert stream")

    async def event_triggers(self) -> list[EventTrigger]:
        """What each event type does on each channel; an event reaches camhub only with ``center``."""
        return parse_triggers(self.config.id, await self.isapi.get_xml(TRIGGERS, "EventTriggerList"))

    # -- recordings ---------------------------------------------------------------------------
    async def _recording_zone(self) -> tzinfo:
        if self.settings.recording_clock is RecordingClock.LOCAL:
            return await self._device_zone()
        return UTC

    async def search_recordings(self, channel: int, start: datetime, end: datetime) -> list[RecordingSpan]:
        """Spans on the device's disk or card overlapping ``[start, end)``, every page read."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("search_recordings needs timezone-aware datetimes")
        if end <= start:
            return []
        zone = await self._recording_zone()
        track = _track(channel)
        search_id = str(uuid.uuid4()).upper()
        spans: list[RecordingSpan] = []
        position = 0
        for _ in range(MAX_SEARCH_PAGES):
            body = search_description(
                search_id,
                track,
                format_isapi_time(start, zone),
                format_isapi_time(end, zone),
                max_results=SEARCH_PAGE,
                position=position,
            )
            page = parse_search_result(
                self.config.id, await self.isapi.post_xml(SEARCH, body, "CMSearchResult"), channel, zone
            )
            spans.extend(page.spans)
            if not page.more:
                return spans
            if page.matches == 0:
                raise DeviceProtocolError(self.config.id, f"POST {SEARCH}: MORE announced with no matches")
            position += page.matches
        raise DeviceProtocolError(self.config.id, f"POST {SEARCH}: more than {MAX_SEARCH_PAGES} pages")

    async def recording(self, span: RecordingSpan) -> MediaSource:
        """The device's RTSP playback of ``span``, from its playback URI.

        The device writes its own (LAN) address without a port into playback URIs, so the URI is
        rebuilt on the configured host and RTSP port; ``starttime``/``endtime`` are set to the
        span's (a caller may narrow a found span), ``name`` and ``size`` are kept. Playback URIs
        name whole seconds: the start is rounded down (playback starts at a keyframe at or before
        it anyway) and the end up, so that the span is covered to its end (truncated, it lost up
        to a second of every backfilled gap); the caller cuts at its own end.
        """
        zone = await self._recording_zone()
        path = f"/Streaming/tracks/{_track(span.channel)}/"
        query: list[tuple[str, str]] = []
        if span.token:
            parts = urlsplit(span.token)
            if parts.path.startswith("/Streaming/tracks/"):
                path = parts.path
                query = parse_qsl(parts.query, keep_blank_values=True)
        end = span.end.replace(microsecond=0)
        end += timedelta(seconds=1) if end < span.end else timedelta(0)
        times = {"starttime": format_rtsp_time(span.start, zone), "endtime": format_rtsp_time(end, zone)}
        query = [(k, times.pop(k.lower(), v)) for k, v in query]
        query = list(times.items()) + query if times else query
        return self._media(urlunsplit(("rtsp", self._rtsp_netloc(), path, urlencode(query), "")))

    # -- health -------------------------------------------------------------------------------
    async def health(self) -> DeviceHealth:
        """Reachable and logged in (deviceInfo), clock skew (time), disks (ContentMgmt/Storage).

        Device failures are reported in the result, not raised.
        """
        try:
            await self._device_info()
        except DeviceAuthError as exc:
            return DeviceHealth(reachable=True, auth_ok=False, error=str(exc))
        except (DeviceUnreachable, DeviceTimeout) as exc:
            self._forget()
            return DeviceHealth(reachable=False, auth_ok=False, error=str(exc))
        except DeviceError as exc:
            return DeviceHealth(reachable=True, auth_ok=True, error=str(exc))
        problems: list[str] = []
        skew: timedelta | None = None
        storage: tuple[StorageState, ...] = ()
        try:
            skew = (await self.time()).offset
        except DeviceError as exc:
            problems.append(str(exc))
        try:
            storage = parse_storage(self.config.id, await self.isapi.get_xml(STORAGE, "storage"))
        except DeviceUnsupported:
            storage = ()  # a camera without a card slot
        except DeviceError as exc:
            problems.append(str(exc))
        return DeviceHealth(
            reachable=True, auth_ok=True, clock_skew=skew, storage=storage, error="; ".join(problems)
        )


def _track(channel: int, stream: int = 1) -> int:
    """Hikvision's stream or track number: channel 1's main stream is ``101``, its sub stream ``102``."""
    if channel < 1:
        raise ValueError(f"channel numbers start at 1, not {channel}")
    return channel * 100 + stream
