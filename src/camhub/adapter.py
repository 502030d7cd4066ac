"""The DeviceAdapter contract: how camhub talks to one vendor's cameras and recorders (R-3.2).

An adapter declares the capabilities it offers; camhub only calls what is declared, and the
conformance kit (:mod:`camhub.testing.kit`) fails an adapter whose declared capability does not
work. An adapter is made for one device, with its configuration and an ``httpx.AsyncClient``
that camhub owns and injects (so tests fake the network at the transport, and one connection
pool serves many devices). Every failure is raised as a :mod:`camhub.errors` device error
naming the device; credentials never appear in a message, a ``repr`` or a log event.

Channel numbers are camhub's: 1-based, as shown in the device's own web interface. Adapters
translate them (Hikvision stream ``101``, Dahua 0-based file listings, ONVIF profile tokens).
Times are timezone-aware UTC ``datetime`` values.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import attrs

from camhub.errors import DeviceUnsupported
from camhub.model import ChannelKind

if TYPE_CHECKING:
    import httpx

    from camhub.model import DeviceConfig
    from camhub.secrets import Secret

__all__ = [
    "Capability",
    "ChannelInfo",
    "DeviceAdapter",
    "DeviceEvent",
    "DeviceHealth",
    "DeviceIdentity",
    "DeviceTime",
    "DiscoveredDevice",
    "EventKind",
    "MediaSource",
    "RecordingSpan",
    "StorageState",
    "StreamProfile",
]


class Capability(enum.Enum):
    """What an adapter can do with a device (DESIGN §3)."""

    IDENTITY = "identity"
    TIME = "time"
    CHANNELS = "channels"
    LIVE = "live"
    SNAPSHOT = "snapshot"
    EVENTS = "events"
    RECORDINGS = "recordings"
    HEALTH = "health"


class StreamProfile(enum.Enum):
    """Which stream of a channel: the main (recording) stream or the lighter sub stream."""

    MAIN = "main"
    SUB = "sub"


class EventKind(enum.Enum):
    """Normalised device events (R-7.1); the vendor's own type is kept beside it."""

    MOTION = "motion"
    VIDEO_LOSS = "video_loss"
    TAMPER = "tamper"
    STORAGE_FAULT = "storage_fault"
    LOGIN_FAILURE = "login_failure"
    HEARTBEAT = "heartbeat"
    OTHER = "other"


@attrs.frozen(kw_only=True)
class DeviceIdentity:
    """What the device says it is (recorded in evidence manifests and handover sheets)."""

    vendor: str
    model: str
    serial: str
    firmware: str
    mac: str
    name: str = ""


@attrs.frozen(kw_only=True)
class DeviceTime:
    """The device's clock: ``offset`` is device time minus camhub's time when asked."""

    device_time: datetime
    offset: timedelta
    timezone: str = ""


@attrs.frozen(kw_only=True)
class ChannelInfo:
    """A camera or microphone input as the device reports it."""

    id: int
    kind: ChannelKind = ChannelKind.CAMERA
    name: str = ""
    online: bool | None = None
    audio: bool = False


@attrs.frozen(kw_only=True)
class MediaSource:
    """Where media can be read (an RTSP stream, an HTTP download), with credentials kept apart.

    ``url`` never carries credentials; :meth:`authenticated_url` builds the URL with them, to be
    handed straight to the media library and never logged.
    """

    url: str
    username: str = ""
    password: Secret | None = attrs.field(default=None, repr=lambda s: "***" if s else "None")

    def authenticated_url(self) -> str:
        """``url`` with the credentials in its userinfo (percent-encoded)."""
        if not self.username or self.password is None:
            return self.url
        parts = urlsplit(self.url)
        userinfo = f"{quote(self.username, safe='')}:{quote(self.password.reveal(), safe='')}"
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


@attrs.frozen(kw_only=True)
class DeviceEvent:
    """One event from a device, normalised; ``payload`` is the vendor's own text, kept whole."""

    device_id: str
    kind: EventKind
    active: bool
    time: datetime
    channel: int | None = None
    vendor_type: str = ""
    payload: str = ""


@attrs.frozen(kw_only=True)
class RecordingSpan:
    """A span of footage on the device's own storage (SD card, NVR disk)."""

    channel: int
    start: datetime
    end: datetime
    token: str  # the vendor's handle: playback URI, file path, recording token
    size: int | None = None


@attrs.frozen(kw_only=True)
class StorageState:
    """One disk or card of the device."""

    id: str
    status: str  # "ok", "fault", "full", "unformatted", "absent" or the vendor's word
    capacity_bytes: int | None = None
    free_bytes: int | None = None


@attrs.frozen(kw_only=True)
class DeviceHealth:
    """A device's state in one sweep: reachable, logged in, clock skew, storage."""

    reachable: bool
    auth_ok: bool
    clock_skew: timedelta | None = None
    storage: tuple[StorageState, ...] = ()
    error: str = ""


@attrs.frozen(kw_only=True)
class DiscoveredDevice:
    """A device found on the network by a discovery protocol (WS-Discovery, a vendor's own)."""

    address: str
    protocol: str  # e.g. "ws-discovery"
    vendor: str = ""  # the adapter to configure it with, when the protocol tells
    urls: tuple[str, ...] = ()  # service addresses (ONVIF XAddrs)
    scopes: tuple[str, ...] = ()
    name: str = ""
    model: str = ""


class DeviceAdapter:
    """Base class of device adapters; subclasses set :attr:`capabilities` and implement them.

    A method of a capability the adapter does not declare raises
    :class:`~camhub.errors.DeviceUnsupported`.

    :param config: the device's validated configuration (the adapter's own ``config_type``).
    :param client: the HTTP client to use for every request to the device.
    :param username: the account camhub logs in with.
    :param password: its password, revealed only into the authentication of a request.
    """

    #: The capabilities this adapter offers; the conformance kit tests exactly these.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(
        self, config: DeviceConfig, client: httpx.AsyncClient, *, username: str, password: Secret
    ) -> None:
        self.config = config
        self.client = client
        self.username = username
        self.password = password

    def __repr__(self) -> str:
        return f"<{type(self).__name__} device={self.config.id!r} host={self.config.host!r}>"

    def _unsupported(self, capability: Capability) -> DeviceUnsupported:
        return DeviceUnsupported(self.config.id, f"{capability.value} is not supported by this adapter")

    async def identity(self) -> DeviceIdentity:
        """Model, serial number, firmware and MAC address (capability ``identity``)."""
        raise self._unsupported(Capability.IDENTITY)

    async def time(self) -> DeviceTime:
        """The device clock and its offset from camhub's (capability ``time``)."""
        raise self._unsupported(Capability.TIME)

    async def channels(self) -> list[ChannelInfo]:
        """The cameras and microphones behind the device (capability ``channels``)."""
        raise self._unsupported(Capability.CHANNELS)

    async def stream(self, channel: int, profile: StreamProfile = StreamProfile.MAIN) -> MediaSource:
        """The live RTSP stream of a channel (capability ``live``)."""
        raise self._unsupported(Capability.LIVE)

    async def snapshot(self, channel: int) -> bytes:
        """A JPEG picture of a channel, now (capability ``snapshot``)."""
        raise self._unsupported(Capability.SNAPSHOT)

    def events(self) -> AsyncIterator[DeviceEvent]:
        """The device's event stream, normalised, until cancelled (capability ``events``)."""
        raise self._unsupported(Capability.EVENTS)

    async def search_recordings(self, channel: int, start: datetime, end: datetime) -> list[RecordingSpan]:
        """Spans of footage kept on the device for a channel and time range (``recordings``)."""
        raise self._unsupported(Capability.RECORDINGS)

    async def recording(self, span: RecordingSpan) -> MediaSource:
        """Where a span found by :meth:`search_recordings` can be read (``recordings``)."""
        raise self._unsupported(Capability.RECORDINGS)

    async def health(self) -> DeviceHealth:
        """Reachable, logged in, clock skew and storage state in one call (``health``)."""
        raise self._unsupported(Capability.HEALTH)

    async def aclose(self) -> None:
        """Release what the adapter holds (event subscriptions); the client is camhub's."""
