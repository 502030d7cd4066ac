"""The domain model: the province's unit tree, its bodies and people, devices and their channels.

Every class is a frozen attrs value. The same classes are what the YAML configuration is read
into, so each field carries its documentation and constraints in ``metadata`` (see
:func:`setting`); the JSON Schema and the reference docs are generated from them.

The model follows the regulation (``R-…`` IDs in ``shared/regulation/REQUIREMENTS.md``) without
fixing its 2018 shape in code: the levels of the unit tree, the bodies and which Article 5 point
their leaders hold all come from configuration, so the three-tier province of 2018 and the
two-tier province of July 2025 run on the same code.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from camhub.secrets import Secret

__all__ = [
    "ID_PATTERN",
    "MIN_CENTRAL_RETENTION_DAYS",
    "Article5Point",
    "Body",
    "Channel",
    "ChannelKind",
    "Credentials",
    "DeviceConfig",
    "DeviceKind",
    "FilesystemStorageConfig",
    "Level",
    "Person",
    "Position",
    "Predecessor",
    "ProvinceInfo",
    "Retention",
    "StorageConfig",
    "StorageSettings",
    "Unit",
    "setting",
]

#: Identifiers of units, devices, people, bodies: lowercase ASCII slugs, dots allowed as
#: namespace separators (``bien-hoa.tan-hanh``). They become parts of storage keys.
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"

#: Article 6.2: footage stays retrievable on the provincial servers for at least 7 days (R-6.2).
MIN_CENTRAL_RETENTION_DAYS = 7


def setting(
    doc: str,
    *,
    default: Any = attrs.NOTHING,
    factory: Any = None,
    minimum: float | None = None,
    maximum: float | None = None,
    pattern: str | None = None,
    why: str = "",
) -> Any:
    """Declare a configuration field with its documentation and constraints.

    The constraints are checked by the loader (with the file, line and path of the offending
    value) and exported into the JSON Schema.
    """
    metadata = {"doc": doc, "minimum": minimum, "maximum": maximum, "pattern": pattern, "why": why}
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata)
    return attrs.field(default=default, metadata=metadata)


def _ident(doc: str) -> Any:
    return setting(doc, pattern=ID_PATTERN)


class Article5Point(enum.Enum):
    """Which point of Article 5 a body's leaders hold (R-5.1).

    ``5.1``: the whole province; ``5.2``: their unit and every unit below it;
    ``5.3``: their own site. People without a point need a grant (Article 5.4).
    """

    PROVINCE = "5.1"
    SUBTREE = "5.2"
    SITE = "5.3"


class DeviceKind(enum.Enum):
    """What a device is: a camera, a network or digital video recorder, or a video encoder."""

    CAMERA = "camera"
    NVR = "nvr"
    DVR = "dvr"
    ENCODER = "encoder"


class ChannelKind(enum.Enum):
    """A channel carries pictures (a camera, possibly with sound) or only sound (a microphone)."""

    CAMERA = "camera"
    MICROPHONE = "microphone"


@attrs.frozen(kw_only=True)
class ProvinceInfo:
    """The province this installation serves."""

    id: str = _ident("Short identifier, the first part of every storage key, e.g. `dong-nai`.")
    name: str = setting("Official name, e.g. `Tỉnh Đồng Nai`.")
    timezone: str = setting(
        "Time zone in which times are shown to people (footage is stored in UTC).",
        default="Asia/Ho_Chi_Minh",
    )


@attrs.frozen(kw_only=True)
class Level:
    """One level of the unit tree, listed from the top: e.g. province, district, commune."""

    id: str = _ident("Identifier used by units, e.g. `district`.")
    name: str = setting("Name shown to people, e.g. `Huyện / thị xã / thành phố`.")


@attrs.frozen(kw_only=True)
class Body:
    """A kind of organisation at one level (a People's Committee Office, a one-stop department…).

    Its leaders' rights over footage follow from ``article5`` (R-5.1); ``roles`` marks bodies
    with other duties in the regulation, such as approving device changes (R-7.2).
    """

    id: str = _ident("Identifier used by positions and units, e.g. `so-noi-vu`.")
    name: str = setting("Official name, e.g. `Sở Nội vụ`.")
    level: str = setting("The level (by id) at which bodies of this kind sit.")
    article5: Article5Point | None = setting(
        "The Article 5 point this body's leaders hold: `5.1` whole province, `5.2` their unit "
        "and all below it, `5.3` their own site; omit for none (Article 5.4: by grant only).",
        default=None,
    )
    roles: tuple[str, ...] = setting(
        "Duties beyond Article 5, e.g. `home_affairs` or `ict` (the two approvers of device "
        "changes, Article 7.2).",
        default=(),
    )


@attrs.frozen(kw_only=True)
class Credentials:
    """An account on devices; the password is a secret reference, never plain text (R-7.3)."""

    username: str = setting("Account name on the device.")
    password: Secret = setting("`{$env: NAME}` or `{$file: path}`: the account's password.")


@attrs.frozen(kw_only=True)
class Channel:
    """A camera or microphone behind a device (an NVR input, an encoder input, a camera's lens)."""

    id: int = setting("Channel number, 1-based, as shown in the device's web interface.", minimum=1)
    kind: ChannelKind = setting("`camera` or `microphone`.", default=ChannelKind.CAMERA)
    name: str = setting("What the channel watches, e.g. `Quầy tiếp nhận số 1`.", default="")
    audio: bool = setting(
        "Whether a camera channel also carries sound (R-3.1); microphones always do.", default=False
    )

    @property
    def has_audio(self) -> bool:
        """True when the channel carries sound."""
        return self.audio or self.kind is ChannelKind.MICROPHONE


@attrs.frozen(kw_only=True)
class DeviceConfig:
    """A device on the site network; vendor adapters subclass it for their own settings.

    The ``vendor`` value selects the subclass (a tagged union built from the installed adapters).
    """

    vendor: str = setting(
        "Which adapter talks to the device: the name of an installed adapter, e.g. `hikvision`."
    )
    id: str = _ident("Identifier, unique in the province; part of every storage key.")
    kind: DeviceKind = setting("`camera`, `nvr`, `dvr` or `encoder`.")
    unit: str | None = setting(
        "The unit (by id) that owns the device (Article 4, R-4.1). Implied when the device is "
        "listed under its unit; required in the top-level `devices` list.",
        default=None,
    )
    name: str = setting("Where the device is and what it is, for people.", default="")
    host: str = setting("Address (IP or DNS name) on the site network.")
    port: int = setting("HTTP(S) port of the device's API.", default=80, minimum=1, maximum=65535)
    https: bool = setting("Talk to the device over HTTPS.", default=False)
    verify_tls: bool = setting("Verify the device's TLS certificate when `https` is on.", default=True)
    rtsp_port: int = setting("RTSP port for live and recorded media.", default=554, minimum=1, maximum=65535)
    credentials: str = setting("The account (by name, from `credentials`) camhub logs in with.")
    channels: tuple[Channel, ...] = setting(
        "The cameras and microphones behind the device; a camera with no list has channel 1.",
        default=(),
    )

    @property
    def base_url(self) -> str:
        """``http(s)://host:port`` of the device's API (never with credentials in it)."""
        scheme = "https" if self.https else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def effective_channels(self) -> tuple[Channel, ...]:
        """The configured channels, or channel 1 for a camera configured without a list."""
        if self.channels or self.kind is not DeviceKind.CAMERA:
            return self.channels
        return (Channel(id=1),)


@attrs.frozen(kw_only=True)
class Predecessor:
    """A former unit merged into this one: its footage and the rights over it pass on."""

    id: str = _ident("The former unit's identifier (as it was used for its devices and rights).")
    name: str = setting("The former unit's name, e.g. `Phường Tân Hạnh`.", default="")
    part: bool = setting(
        "True when only part of the former unit came to this one (it was split).", default=False
    )


@attrs.frozen(kw_only=True)
class Unit:
    """An administrative unit, which is also a site with a managing body (Article 4, R-4.1)."""

    id: str = _ident("Identifier, unique in the province.")
    name: str = setting("Official name, e.g. `Phường Trảng Dài`.")
    level: str = setting("The unit's level (by id).")
    parent: str | None = setting("The unit above (by id); omitted only for the root.", default=None)
    managing_body: str = setting("The body (by id) that manages this unit's site and devices (Article 4).")
    site: str = setting("Name of the site, e.g. `Bộ phận một cửa UBND Phường Trảng Dài`.", default="")
    merged_from: tuple[Predecessor, ...] = setting(
        "Former units merged into this one (e.g. by the 2024–2025 reorganisations).", default=()
    )
    devices: tuple[DeviceConfig, ...] = setting("Devices at this unit's site.", default=())


@attrs.frozen(kw_only=True)
class Position:
    """A post a person holds: in which body, at which unit, and whether as a leader."""

    body: str = setting("The body (by id).")
    unit: str = setting("The unit (by id) where the person holds the post.")
    leader: bool = setting(
        "Head or deputy head of the body (`lãnh đạo`): Article 5 rights apply to leaders.",
        default=False,
    )
    title: str = setting("Title as written in Vietnamese, e.g. `Phó Chánh Văn phòng`.", default="")


@attrs.frozen(kw_only=True)
class Person:
    """Someone who uses the system; their Article 5 rights follow from their positions."""

    id: str = _ident("Identifier, unique in the province.")
    name: str = setting("Full name, with diacritics.")
    email: str = setting("Address for notifications and handover sheets.", default="")
    public_key: str = setting(
        "age recipient (`age1…`) that handover sheets are encrypted to (Article 10).", default=""
    )
    positions: tuple[Position, ...] = setting("Posts the person holds.", default=())


@attrs.frozen(kw_only=True)
class StorageConfig:
    """A storage backend; plugins subclass it. ``backend`` selects the subclass."""

    backend: str = setting("Which storage backend: `filesystem`, or one a plugin adds.")


@attrs.frozen(kw_only=True)
class FilesystemStorageConfig(StorageConfig):
    """A folder used as a store (the embedded default: the central store is a folder)."""

    path: str = setting("Folder of the store; a relative path is taken from the hub's data folder.")


@attrs.frozen(kw_only=True)
class StorageSettings:
    """Where footage goes: the local spool at the hub and the central (provincial) store (R-3.3)."""

    central: StorageConfig = setting("The central store every site's footage reaches (R-6.2).")
    spool: str = setting(
        "Local folder where segments wait until the central store has them.", default="spool"
    )
    spool_max_gb: float = setting(
        "Most disk the spool may use before it alerts and degrades.", default=100.0, minimum=0.1
    )
    spool_min_free_gb: float = setting(
        "Least free space the spool's filesystem must keep; below it the hub deletes synced local "
        "copies early, then pauses recording rather than delete protected footage.",
        default=1.0,
        minimum=0.0,
    )
    upload_concurrency: int = setting(
        "Segments sent to the central store at the same time (never two of one channel at once).",
        default=4,
        minimum=1,
        maximum=64,
    )
    spool_alert_percent: float = setting(
        "Alert when footage waiting for the central store fills this share of `spool_max_gb`.",
        default=50.0,
        minimum=1.0,
        maximum=100.0,
    )
    unreachable_alert_minutes: float = setting(
        "Alert when the central store has failed every upload for this long.", default=10.0, minimum=0.0
    )


@attrs.frozen(kw_only=True)
class Retention:
    """How long footage is kept; the central floor of 7 days is the regulation's (R-6.2)."""

    central_days: int = setting(
        "Days footage stays in the central store; at least 7 (Article 6.2).",
        default=30,
        minimum=MIN_CENTRAL_RETENTION_DAYS,
        why="Article 6.2: footage stays retrievable centrally for at least 7 days",
    )
    spool_days: int = setting("Days synced footage stays in the local spool as well.", default=1, minimum=0)
