"""The ONVIF device adapter: Profile S/T (identity, time, channels, live, snapshot, events) and G (recordings).

Every call goes through :class:`~camhub_onvif.client.OnvifClient`: the device clock is measured
first (unauthenticated ``GetSystemDateAndTime``), then each request is authenticated with
WS-Security, HTTP Digest or both as configured. Media2 is used where the device offers it
(H.265 stream URIs), Media1 otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import unquote

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
from camhub.net import Remembered, children, text
from camhub_onvif.client import OnvifClient, Services, rebase_media
from camhub_onvif.config import OnvifConfig
from camhub_onvif.events import PullPoint, PullPointOptions, pull_point_events
from camhub_onvif.media import MediaChannel, channel_of_token, channels_of, parse_media_uri, parse_profiles
from camhub_onvif.recordings import ReplaySource, assign_channels, find_recordings, spans_of
from camhub_onvif.soap import x

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

    from camhub.model import DeviceConfig
    from camhub.secrets import Secret

__all__ = ["OnvifAdapter", "parse_device_information", "parse_mac", "parse_storage"]

#: Largest snapshot read into memory.
MAX_SNAPSHOT = 16 * 1024 * 1024
_STREAM_SETUP = (
    "<{p}:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
    "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></{p}:StreamSetup>"
)


class OnvifAdapter(DeviceAdapter):
    """Talks to ONVIF devices (Profile S/T/G: SOAP with WS-Security and/or HTTP Digest).

    Channels are the device's distinct video sources, numbered from 1 in the order its
    profiles list them; the main stream is the channel's largest-picture profile, the sub
    stream the next one. Stream, snapshot and replay URIs are rebased onto the configured
    host (and ``rtsp_port`` for RTSP) with any credentials removed.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)

    def __init__(
        self, config: DeviceConfig, client: httpx.AsyncClient, *, username: str, password: Secret
    ) -> None:
        super().__init__(config, client, username=username, password=password)
        onvif = config if isinstance(config, OnvifConfig) else None
        self.onvif = OnvifClient(
            client,
            config.id,
            config.base_url,
            username=username,
            password=password,
            device_path=onvif.device_service if onvif else "/onvif/device_service",
            auth=onvif.auth if onvif else "both",
            timeout=onvif.timeout if onvif else 10.0,
        )
        #: How event subscriptions are kept (tests shorten the periods).
        self.pull_point_options = PullPointOptions()
        self._channels: tuple[MediaChannel, ...] | None = None
        self._identity: Remembered[DeviceIdentity] = Remembered()
        self._media2_broken = False
        self._pull_points: set[PullPoint] = set()

    # -- identity and time ------------------------------------------------------------------
    async def identity(self) -> DeviceIdentity:
        """Device information, MAC and name (three calls), kept between calls: read again after a
        while or an outage."""
        return await self._identity.get(self._read_identity)

    async def _read_identity(self) -> DeviceIdentity:
        device = self.onvif.device_url
        info = await self.onvif.call(device, "tds", "GetDeviceInformation")
        mac = name = ""
        # An account without the right to these gets an identity without them.
        with suppress(DeviceUnsupported, DeviceAuthError):
            mac = parse_mac(await self.onvif.call(device, "tds", "GetNetworkInterfaces", optional=True))
        with suppress(DeviceUnsupported, DeviceProtocolError, DeviceAuthError):  # the name is a nicety
            name = _scope_name(await self.onvif.call(device, "tds", "GetScopes", optional=True))
        return parse_device_information(info, mac=mac, name=name)

    async def time(self) -> DeviceTime:
        try:
            return await self.onvif.measure_clock()
        except (DeviceUnreachable, DeviceTimeout):
            self._identity.forget()  # it may come back rebooted, upgraded or replaced
            raise

    # -- channels and media -----------------------------------------------------------------
    async def channels(self) -> list[ChannelInfo]:
        channels = await self._media_channels(refresh=True)
        return [ChannelInfo(id=c.id, name=c.name, audio=c.audio) for c in channels]

    async def _media_channels(self, *, refresh: bool = False) -> tuple[MediaChannel, ...]:
        if self._channels is None or refresh:
            url, prefix = await self._media()
            try:
                answer = await self.onvif.call(
                    url, prefix, "GetProfiles", "<tr2:Type>All</tr2:Type>" if prefix == "tr2" else ""
                )
            except (DeviceUnsupported, DeviceProtocolError):
                if prefix != "tr2" or not (await self.onvif.services()).media:
                    raise
                self._media2_broken = True  # listed but not working (seen on firmware): use Media1
                url, prefix = await self._media()
                answer = await self.onvif.call(url, prefix, "GetProfiles")
            self._channels = channels_of(parse_profiles(answer))
        return self._channels

    async def _media(self) -> tuple[str, str]:
        """The media service to use and its prefix: Media2 where offered, else Media1."""
        services = await self.onvif.services()
        if services.media2 and not self._media2_broken:
            return services.media2, "tr2"
        if services.media:
            return services.media, "trt"
        raise DeviceUnsupported(self.config.id, "the device offers no media service")

    async def _channel(self, number: int) -> MediaChannel:
        channels = await self._media_channels()
        for channel in channels:
            if channel.id == number:
                return channel
        raise DeviceUnsupported(self.config.id, f"no channel {number} (the device has {len(channels)})")

    async def stream(self, channel: int, profile: StreamProfile = StreamProfile.MAIN) -> MediaSource:
        found = await self._channel(channel)
        chosen = found.main if profile is StreamProfile.MAIN else found.sub
        if chosen is None:
            raise DeviceUnsupported(self.config.id, f"channel {channel} has no sub stream (one profile only)")
        url, prefix = await self._media()
        if prefix == "tr2":
            inner = f"<tr2:Protocol>RTSP</tr2:Protocol><tr2:ProfileToken>{x(chosen.token)}</tr2:ProfileToken>"
        else:
            inner = _STREAM_SETUP.format(p="trt") + f"<trt:ProfileToken>{x(chosen.token)}</trt:ProfileToken>"
        uri = parse_media_uri(await self.onvif.call(url, prefix, "GetStreamUri", inner))
        return MediaSource(
            url=self._rebase(uri, "GetStreamUri"), username=self.username, password=self.password
        )

    async def snapshot(self, channel: int) -> bytes:
        found = await self._channel(channel)
        url, prefix = await self._media()
        inner = f"<{prefix}:ProfileToken>{x(found.main.token)}</{prefix}:ProfileToken>"
        uri = self._rebase(
            parse_media_uri(await self.onvif.call(url, prefix, "GetSnapshotUri", inner)), "GetSnapshotUri"
        )
        response = await self.onvif.fetch(uri, max_body=MAX_SNAPSHOT)
        if response.status != 200:
            raise (DeviceUnsupported if response.status in (403, 404, 405, 501) else DeviceProtocolError)(
                self.config.id, f"snapshot: the device answered HTTP {response.status}"
            )
        picture = response.body
        if not (picture.startswith(b"\xff\xd8\xff") and b"\xff\xd9" in picture[-64:]):
            raise DeviceProtocolError(self.config.id, f"snapshot: not a JPEG picture ({len(picture)} bytes)")
        return picture

    def _rebase(self, uri: str, operation: str) -> str:
        if not uri:
            raise DeviceProtocolError(self.config.id, f"{operation}: no URI in the answer")
        return rebase_media(uri, self.config.base_url, self.config.host, self.config.rtsp_port)

    # -- events -----------------------------------------------------------------------------
    def events(self) -> AsyncIterator[DeviceEvent]:
        """Pull-point events until the iterator is closed (``aclose()``), which unsubscribes."""
        return self._events()

    async def _events(self) -> AsyncIterator[DeviceEvent]:
        services = await self.onvif.services()
        if not services.events:
            raise DeviceUnsupported(self.config.id, "the device offers no event service")
        try:
            channels = await self._media_channels()
        except DeviceUnsupported:
            channels = ()

        def channel_of(token: str) -> int | None:
            return channel_of_token(channels, token)

        # Closing this iterator must close the subscription's too (Unsubscribe now, not at GC).
        stream = pull_point_events(
            self.onvif, services.events, channel_of, self.pull_point_options, self._pull_points
        )
        async with aclosing(stream):
            async for event in stream:
                yield event

    # -- recordings -------------------------------------------------------------------------
    async def search_recordings(self, channel: int, start: datetime, end: datetime) -> list[RecordingSpan]:
        services = await self.onvif.services()
        recordings = await find_recordings(self.onvif, services)
        try:
            channels = await self._media_channels()
        except DeviceUnsupported:
            channels = ()
        owners = assign_channels(recordings, channels)
        spans = [
            span
            for info in recordings
            if owners.get(info.token) == channel
            for span in spans_of(info, channel, start.astimezone(UTC), end.astimezone(UTC))
        ]
        return sorted(spans, key=lambda s: (s.start, s.token))

    async def recording(self, span: RecordingSpan) -> ReplaySource:
        services: Services = await self.onvif.services()
        if not services.replay:
            raise DeviceUnsupported(self.config.id, "the device offers no replay service")
        inner = _STREAM_SETUP.format(p="trp") + f"<trp:RecordingToken>{x(span.token)}</trp:RecordingToken>"
        uri = parse_media_uri(await self.onvif.call(services.replay, "trp", "GetReplayUri", inner))
        return ReplaySource(
            url=self._rebase(uri, "GetReplayUri"),
            username=self.username,
            password=self.password,
            start=span.start,
            end=span.end,
        )

    # -- health -----------------------------------------------------------------------------
    async def health(self) -> DeviceHealth:
        try:
            clock = await self.onvif.measure_clock(allow_credentials=False)
        except DeviceAuthError:
            clock = None  # a device that hides even its clock: reachable, skew unknown
        except DeviceError as exc:
            self._identity.forget()
            return DeviceHealth(reachable=False, auth_ok=False, error=str(exc))
        skew = clock.offset if clock else None
        try:
            await self.onvif.call(self.onvif.device_url, "tds", "GetDeviceInformation")
        except DeviceAuthError as exc:
            return DeviceHealth(reachable=True, auth_ok=False, clock_skew=skew, error=str(exc))
        except (DeviceUnreachable, DeviceTimeout) as exc:
            return DeviceHealth(reachable=False, auth_ok=False, clock_skew=skew, error=str(exc))
        except DeviceError as exc:
            return DeviceHealth(reachable=True, auth_ok=False, clock_skew=skew, error=str(exc))
        storage: tuple[StorageState, ...] = ()
        # Older devices have no storage configurations, and the list (it holds NAS passwords)
        # may be an administrator's right; storage faults then come as events.
        with suppress(DeviceUnsupported, DeviceProtocolError, DeviceAuthError):
            storage = parse_storage(
                await self.onvif.call(self.onvif.device_url, "tds", "GetStorageConfigurations", optional=True)
            )
        return DeviceHealth(reachable=True, auth_ok=True, clock_skew=skew, storage=storage)

    async def aclose(self) -> None:
        """Unsubscribe every event subscription still open."""
        for pull_point in list(self._pull_points):
            await pull_point.close()
        self._pull_points.clear()


# -- parsing (pure: tests feed captures straight in) ------------------------------------------
def parse_device_information(answer: ET.Element, *, mac: str = "", name: str = "") -> DeviceIdentity:
    """A ``GetDeviceInformation`` answer as a DeviceIdentity (vendor: the manufacturer)."""
    return DeviceIdentity(
        vendor=text(answer, "Manufacturer") or "onvif",
        model=text(answer, "Model"),
        serial=text(answer, "SerialNumber"),
        firmware=text(answer, "FirmwareVersion"),
        mac=mac,
        name=name,
    )


def parse_mac(answer: ET.Element) -> str:
    """The MAC of the first enabled interface of a ``GetNetworkInterfaces`` answer, as ``aa:bb:…``."""
    interfaces = list(children(answer, "NetworkInterfaces"))
    enabled = [i for i in interfaces if text(i, "Enabled").lower() != "false"] or interfaces
    for interface in enabled:
        digits = "".join(c for c in text(interface, "Info", "HwAddress") if c.isalnum()).lower()
        if len(digits) == 12 and all(c in "0123456789abcdef" for c in digits):
            return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    return ""


def parse_storage(answer: ET.Element) -> tuple[StorageState, ...]:
    """A ``GetStorageConfigurations`` answer as storage states.

    ONVIF configurations carry no status (and may carry a NAS password, which is never read):
    a configured storage is reported ``ok``; failures arrive as ``StorageFailure`` events.
    """
    return tuple(
        StorageState(id=config.get("token", "") or text(config, "Data", "LocalPath"), status="ok")
        for config in children(answer, "StorageConfigurations")
    )


def _scope_name(answer: ET.Element) -> str:
    prefix = "onvif://www.onvif.org/name/"
    for scope in children(answer, "Scopes"):
        item = text(scope, "ScopeItem")
        if item.startswith(prefix):
            return unquote(item[len(prefix) :])
    return ""
