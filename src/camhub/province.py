"""A loaded, cross-checked province: its unit tree, devices, people and settings.

:class:`ProvinceConfig` is what :func:`camhub.load_config` returns. Its lookups follow the unit
tree (``subtree``, ``ancestors``) as the Article 5 scopes do; they work for any number of
levels, so the three-tier province of 2018 and the two-tier one of 2025 behave alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property

import attrs

from camhub.model import (
    Article5Point,
    Body,
    Credentials,
    DeviceConfig,
    Level,
    Person,
    ProvinceInfo,
    Retention,
    StorageSettings,
    Unit,
)

__all__ = ["ProvinceConfig"]


@attrs.frozen(kw_only=True)
class ProvinceConfig:
    """The whole configuration of one province, after validation.

    ``devices`` holds every device, whether it was listed under its unit or at the top level,
    with ``unit`` filled in; ``units`` keep their configured order. ``sources`` are the files
    read (the main file first, then includes).
    """

    sources: tuple[str, ...]
    province: ProvinceInfo
    levels: tuple[Level, ...]
    bodies: tuple[Body, ...]
    credentials: Mapping[str, Credentials]
    units: tuple[Unit, ...]
    devices: tuple[DeviceConfig, ...]
    people: tuple[Person, ...]
    storage: StorageSettings
    retention: Retention

    # -- lookups -----------------------------------------------------------------------------
    @cached_property
    def _units(self) -> dict[str, Unit]:
        return {unit.id: unit for unit in self.units}

    @cached_property
    def _children(self) -> dict[str, list[Unit]]:
        children: dict[str, list[Unit]] = {}
        for unit in self.units:
            if unit.parent is not None:
                children.setdefault(unit.parent, []).append(unit)
        return children

    @cached_property
    def _devices_by_unit(self) -> dict[str, list[DeviceConfig]]:
        by_unit: dict[str, list[DeviceConfig]] = {}
        for device in self.devices:
            by_unit.setdefault(str(device.unit), []).append(device)
        return by_unit

    @property
    def root(self) -> Unit:
        """The province-level unit at the top of the tree."""
        return next(unit for unit in self.units if unit.parent is None)

    def unit(self, unit_id: str) -> Unit:
        """The unit with this id (KeyError if there is none)."""
        return self._units[unit_id]

    def body(self, body_id: str) -> Body:
        """The body with this id (KeyError if there is none)."""
        return next(body for body in self.bodies if body.id == body_id)

    @cached_property
    def _devices_by_id(self) -> dict[str, DeviceConfig]:
        return {device.id: device for device in self.devices}

    def device(self, device_id: str) -> DeviceConfig:
        """The device with this id (KeyError if there is none)."""
        return self._devices_by_id[device_id]

    def children(self, unit_id: str) -> tuple[Unit, ...]:
        """The units directly below ``unit_id``, in configuration order."""
        return tuple(self._children.get(unit_id, ()))

    def subtree(self, unit_id: str) -> Iterator[Unit]:
        """``unit_id`` and every unit below it, depth first (an Article 5.1/5.2 scope)."""
        stack = [self.unit(unit_id)]
        while stack:
            unit = stack.pop()
            yield unit
            stack.extend(reversed(self._children.get(unit.id, [])))

    def walk(self) -> Iterator[tuple[int, Unit]]:
        """``(depth, unit)`` for the whole tree from the root, depth first."""
        stack = [(0, self.root)]
        while stack:
            depth, unit = stack.pop()
            yield depth, unit
            stack.extend((depth + 1, child) for child in reversed(self._children.get(unit.id, [])))

    def ancestors(self, unit_id: str) -> tuple[Unit, ...]:
        """The units above ``unit_id``, nearest first, up to the root."""
        chain = []
        unit = self.unit(unit_id)
        while unit.parent is not None:
            unit = self.unit(unit.parent)
            chain.append(unit)
        return tuple(chain)

    def level_of(self, unit_id: str) -> Level:
        """The level of a unit."""
        level_id = self.unit(unit_id).level
        return next(level for level in self.levels if level.id == level_id)

    def devices_of(self, unit_id: str) -> tuple[DeviceConfig, ...]:
        """The devices at one unit's site (not those below it)."""
        return tuple(self._devices_by_unit.get(unit_id, ()))

    def article5_points(self, person: Person) -> frozenset[Article5Point]:
        """The Article 5 points a person holds through leader positions (empty: 5.4 only)."""
        points = set()
        for position in person.positions:
            point = self.body(position.body).article5
            if position.leader and point is not None:
                points.add(point)
        return frozenset(points)
