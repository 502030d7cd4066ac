"""The top-level shape of a configuration file and of the files it includes."""

from __future__ import annotations

import attrs

from camhub.model import (
    Body,
    Credentials,
    DeviceConfig,
    FilesystemStorageConfig,
    Level,
    Person,
    ProvinceInfo,
    Retention,
    StorageSettings,
    Unit,
    setting,
)

FORMAT_VERSION = 1


def default_storage() -> StorageSettings:
    return StorageSettings(central=FilesystemStorageConfig(backend="filesystem", path="central"))


@attrs.frozen(kw_only=True)
class Fragment:
    """An included file: more credentials, units, devices and people for the same province."""

    include: tuple[str, ...] = setting(
        "Further files to read, relative to this file (e.g. one file per district).", default=()
    )
    credentials: dict[str, Credentials] = setting(
        "Named device accounts, referred to by each device's `credentials`.", factory=dict
    )
    units: tuple[Unit, ...] = setting("Units, each also a site (Article 4).", default=())
    devices: tuple[DeviceConfig, ...] = setting(
        "Devices listed outside their unit; each names its `unit`.", default=()
    )
    people: tuple[Person, ...] = setting("People and their positions (Article 5).", default=())


@attrs.frozen(kw_only=True)
class Document(Fragment):
    """A camhub configuration file: one province, its units, devices, people and storage."""

    camhub: int = setting(
        "Version of the configuration format.",
        default=FORMAT_VERSION,
        minimum=FORMAT_VERSION,
        maximum=FORMAT_VERSION,
    )
    province: ProvinceInfo = setting("The province.")
    levels: tuple[Level, ...] = setting(
        "The levels of the unit tree from the top, e.g. province, district, commune (2018) or "
        "province, commune (since July 2025)."
    )
    bodies: tuple[Body, ...] = setting(
        "The kinds of bodies whose people use the system, with their Article 5 points."
    )
    storage: StorageSettings = setting(
        "Where footage goes. Default: a `central` folder in the hub's data folder.",
        factory=default_storage,
    )
    retention: Retention = setting("How long footage is kept.", factory=Retention)
