"""Reading the main file and its includes, then the cross-checks between sections."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import yaml

from camhub.config._document import Document, Fragment, default_storage
from camhub.config._reader import (
    INVALID,
    Location,
    PartialTuple,
    Reader,
    TaggedUnion,
    child_path,
    fields_of,
    location_of,
    peek,
    printable,
)
from camhub.errors import ConfigError, ConfigIssue
from camhub.model import Article5Point, DeviceConfig, Retention, StorageConfig
from camhub.province import ProvinceConfig

if TYPE_CHECKING:
    from camhub.plugins import PluginHost

_LIST_SECTIONS = ("units", "devices", "people")


def load_config(path: str | Path, *, host: PluginHost | None = None) -> ProvinceConfig:
    """Read, validate and cross-check the configuration at ``path`` and the files it includes.

    ``host`` supplies the device and storage types the installed plugins register; without
    one, a :class:`~camhub.plugins.PluginHost` with every installed plugin is made.

    :raises ConfigError: listing every problem found, each with file, line and ``$.path``.
    """
    if host is None:
        from camhub.plugins import PluginHost

        host = PluginHost.from_installed()
    loader = _Loader(host)
    config = loader.load(Path(path))
    host.notify_config_loaded(config)
    return config


def load_config_text(
    text: str, *, name: str = "<config>", base_dir: Path | None = None, host: PluginHost | None = None
) -> ProvinceConfig:
    """Like :func:`load_config`, for YAML text already in memory (``name`` labels errors)."""
    if host is None:
        from camhub.plugins import PluginHost

        host = PluginHost.from_installed()
    loader = _Loader(host)
    config = loader.load_text(text, name, base_dir or Path.cwd())
    host.notify_config_loaded(config)
    return config


class _ComposeLoader(yaml.CSafeLoader):
    """libyaml's parser with the implicit-tag resolution of scalars memoised.

    The C composer still asks the Python resolver for every scalar (a regex walk); a province
    repeats the same few values (vendors, kinds, ports, ``true``) thousands of times.
    """

    _tags: ClassVar[dict[tuple[str, tuple[bool, ...]], Any]] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not yaml.ScalarNode or not isinstance(value, str):
            return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        key = (value, tuple(implicit))
        tag = self._tags.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
            if len(self._tags) < 100_000:
                self._tags[key] = tag
        return tag


@attrs.define
class _Sections:
    """What the files hold, merged across includes, plus the ids seen even in broken entries."""

    credentials: dict[str, Any] = attrs.Factory(dict)
    units: list[Any] = attrs.Factory(list)
    devices: list[Any] = attrs.Factory(list)
    people: list[Any] = attrs.Factory(list)
    declared: dict[str, set[str]] = attrs.Factory(
        lambda: {key: set() for key in ("levels", "bodies", "units", "devices", "people", "credentials")}
    )


class _Loader:
    def __init__(self, host: PluginHost) -> None:
        self.unions = {
            DeviceConfig: TaggedUnion("vendor", host.device_config_types(), "vendor"),
            StorageConfig: TaggedUnion("backend", host.storage_config_types(), "storage backend"),
        }
        self.issues: list[ConfigIssue] = []
        self.locations: dict[int, tuple[str, yaml.Node, str]] = {}
        self.sources: list[str] = []
        # A device listed under its unit is re-made with ``unit`` filled in; it keeps the
        # location of the object that was read.
        self.aliases: dict[int, int] = {}

    # -- files -----------------------------------------------------------------------------
    def load(self, path: Path) -> ProvinceConfig:
        text = self._read_file(path, str(path))
        if text is None:
            raise ConfigError(self.issues)
        return self.load_text(text, str(path), path.parent)

    def load_text(self, text: str, name: str, base_dir: Path) -> ProvinceConfig:
        sections = _Sections()
        node = self._compose(text, name)
        top: dict[str, Any] = {}
        if node is not None:
            reader = self._reader(name, base_dir)
            top = self._read_fields(reader, node, Document, sections, stack=(name,))
        elif not self.issues:
            self.issues.append(ConfigIssue(name, 1, "$", "the file is empty"))
        config = self._assemble(top, sections) if not self.issues or top else None
        if self.issues or config is None:
            raise ConfigError(self.issues)
        return config

    def _read_file(
        self, path: Path, label: str, where: tuple[Reader, yaml.Node, str] | None = None
    ) -> str | None:
        """The text of a file; on failure an issue at ``where`` (the include entry) or the file."""
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a readable UTF-8 file"
            if where is None:
                self.issues.append(ConfigIssue(label, 0, "$", f"cannot read the file: {reason}"))
            else:
                reader, node, node_path = where
                reader.issue(node, node_path, f"cannot read {printable(label)}: {reason}")
            return None

    def _compose(self, text: str, name: str) -> yaml.Node | None:
        self.sources.append(name)
        try:
            return yaml.compose(text, Loader=_ComposeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            problem = exc.problem or exc.context or "invalid YAML"
            self.issues.append(ConfigIssue(name, line, "$", f"invalid YAML: {problem}"))
        except yaml.YAMLError as exc:
            # Reader errors (control characters, bad encoding) carry a position, not a mark.
            self.issues.append(ConfigIssue(name, 1, "$", f"invalid YAML: {exc}".splitlines()[0]))
        return None

    def _reader(self, name: str, base_dir: Path) -> Reader:
        return Reader(name, base_dir, self.unions, self.issues, self.locations)

    def _read_fields(
        self,
        reader: Reader,
        node: yaml.Node,
        cls: type,
        sections: _Sections,
        stack: tuple[str, ...],
    ) -> dict[str, Any]:
        """Read one file's top level; list sections go into ``sections``, the rest is returned."""
        pairs = reader.pairs(node, "$")
        if pairs is None:
            return {}
        fields = {field.name: (field, tp) for field, tp in fields_of(cls)}
        found: dict[str, Any] = {}
        for key, key_node, value_node in pairs:
            path = child_path("$", key)
            if key not in fields:
                allowed = ", ".join(fields)
                reader.issue(key_node, path, f"unknown key {key!r}; allowed here: {allowed}")
                continue
            self._declare(key, value_node, sections)
            value = reader.read(value_node, fields[key][1], path)
            if key in _LIST_SECTIONS and isinstance(value, PartialTuple):
                getattr(sections, key).extend(value)
            elif key == "credentials" and value is not INVALID:
                for name, credentials in value.items():
                    if name in sections.credentials:
                        reader.issue(value_node, child_path(path, name), "duplicate credentials name")
                    sections.credentials[name] = credentials
            elif key == "include" and isinstance(value, PartialTuple):
                self._include(reader, value_node, list(value), sections, stack)
            elif value is not INVALID:
                found[key] = value
        present = {key for key, _, _ in pairs}
        for name, (field, _) in fields.items():
            if field.default is attrs.NOTHING and name not in present:
                reader.issue(node, "$", f"missing required key {name!r}")
        return found

    def _declare(self, key: str, node: yaml.Node, sections: _Sections) -> None:
        """Note the ids of entries even when they cannot be read, to avoid follow-on errors."""
        if key in (*_LIST_SECTIONS, "levels", "bodies") and isinstance(node, yaml.SequenceNode):
            for item in node.value:
                sections.declared[key].add(peek(item, "id") or "")
                if key == "units" and isinstance(item, yaml.MappingNode):
                    nested = next((v for k, v in item.value if k.value == "devices"), None)
                    if isinstance(nested, yaml.SequenceNode):
                        for device in nested.value:
                            sections.declared["devices"].add(peek(device, "id") or "")
        elif key == "credentials" and isinstance(node, yaml.MappingNode):
            sections.declared["credentials"].update(str(k.value) for k, _ in node.value)

    def _include(
        self,
        reader: Reader,
        list_node: yaml.Node,
        targets: list[str],
        sections: _Sections,
        stack: tuple[str, ...],
    ) -> None:
        for index, target in enumerate(targets):
            item_node = list_node.value[index]
            item_path = f"$.include[{index}]"
            path = reader.base_dir / target
            label = str(Path(reader.file).parent / target) if reader.file != "<config>" else target
            if label in stack:
                reader.issue(item_node, item_path, f"{printable(target)} includes itself (cycle)")
                continue
            text = self._read_file(path, label, (reader, item_node, item_path))
            if text is None:
                continue
            node = self._compose(text, label)
            if node is not None:
                self._read_fields(self._reader(label, path.parent), node, Fragment, sections, (*stack, label))

    # -- assembling and cross-checking -------------------------------------------------------
    def _assemble(self, top: dict[str, Any], sections: _Sections) -> ProvinceConfig | None:
        checker = _CrossChecks(self, top, sections)
        checker.run()
        if self.issues:
            return None
        units = tuple(attrs.evolve(unit, devices=()) for unit in sections.units)
        return ProvinceConfig(
            sources=tuple(self.sources),
            province=top["province"],
            levels=tuple(top["levels"]),
            bodies=tuple(top["bodies"]),
            credentials=dict(sections.credentials),
            units=units,
            devices=tuple(checker.devices),
            people=tuple(sections.people),
            storage=top.get("storage") or default_storage(),
            retention=top.get("retention") or Retention(),
        )

    def where(self, obj: object, field: str = "") -> Location:
        return location_of(self.locations[self.aliases.get(id(obj), id(obj))], field)

    def issue_at(self, obj: object, field: str, message: str) -> None:
        loc = self.where(obj, field)
        self.issues.append(ConfigIssue(loc.file, loc.line, loc.path, message))


class _CrossChecks:
    """The rules that span sections: references, uniqueness, the shape of the unit tree."""

    def __init__(self, loader: _Loader, top: dict[str, Any], sections: _Sections) -> None:
        self.loader = loader
        self.top = top
        self.s = sections
        self.levels = list(top.get("levels", ()))
        self.level_index = {level.id: i for i, level in enumerate(self.levels)}
        self.bodies = {body.id: body for body in top.get("bodies", ())}
        self.units: dict[str, Any] = {}
        self.devices: list[DeviceConfig] = []

    def run(self) -> None:
        self._unique("level", self.levels)
        self._unique("body", list(self.top.get("bodies", ())))
        self._check_bodies()
        self.units = self._unique("unit", self.s.units)
        self._check_units()
        self._check_tree()
        self._collect_devices()
        self._unique("device", self.devices)
        self._check_devices()
        self._unique("person", self.s.people)
        self._check_people()

    def _issue(self, obj: object, field: str, message: str) -> None:
        self.loader.issue_at(obj, field, message)

    def _unique(self, what: str, items: Iterable[Any]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for item in items:
            if item.id in seen:
                first = self.loader.where(seen[item.id])
                self._issue(
                    item, "id", f"duplicate {what} id {item.id!r} (first at {first.file}:{first.line})"
                )
            else:
                seen[item.id] = item
        return seen

    def _missing(self, kind: str, ident: str) -> bool:
        """True when ``ident`` is not defined at all (not merely defined in a broken entry)."""
        return ident not in self.s.declared.get(kind, set())

    def _check_bodies(self) -> None:
        for body in self.bodies.values():
            if body.level not in self.level_index and self._missing("levels", body.level):
                self._issue(body, "level", f"unknown level {body.level!r}; levels: {self._level_names()}")
            elif body.article5 is Article5Point.PROVINCE and self.level_index.get(body.level, 0) != 0:
                self._issue(
                    body,
                    "article5",
                    f"Article 5.1 covers the whole province; body {body.id!r} must sit at the top "
                    f"level {self.levels[0].id!r}, not {body.level!r}",
                )

    def _level_names(self) -> str:
        return ", ".join(level.id for level in self.levels) or "none"

    def _check_units(self) -> None:
        for unit in self.units.values():
            if unit.level not in self.level_index and self._missing("levels", unit.level):
                self._issue(unit, "level", f"unknown level {unit.level!r}; levels: {self._level_names()}")
            body = self.bodies.get(unit.managing_body)
            if body is None and self._missing("bodies", unit.managing_body):
                self._issue(unit, "managing_body", f"unknown body {unit.managing_body!r}")
            elif body is not None and body.level != unit.level and unit.level in self.level_index:
                self._issue(
                    unit,
                    "managing_body",
                    f"body {body.id!r} sits at level {body.level!r}, but unit {unit.id!r} is a {unit.level!r}",
                )
            if (
                unit.parent is not None
                and unit.parent not in self.units
                and self._missing("units", unit.parent)
            ):
                self._issue(unit, "parent", f"unknown unit {unit.parent!r}")
            names: Counter[str] = Counter(p.id for p in unit.merged_from)
            for former in unit.merged_from:
                if former.id in self.units:
                    self._issue(
                        former,
                        "id",
                        f"former unit {former.id!r} is still a unit of this configuration; "
                        "a unit that was merged away is listed only under its successor",
                    )
                elif names[former.id] > 1:
                    self._issue(former, "id", f"former unit {former.id!r} is listed twice")
                    names[former.id] = 1

    def _check_tree(self) -> None:
        if not self.units:
            return
        roots = [unit for unit in self.units.values() if unit.parent is None]
        if not roots and not self.loader.issues:
            first = next(iter(self.units.values()))
            self._issue(first, "", "no root unit: exactly one unit (the province) has no parent")
        for extra in roots[1:]:
            first = self.loader.where(roots[0])
            self._issue(
                extra,
                "",
                f"two roots: unit {extra.id!r} has no parent, but {roots[0].id!r} "
                f"({first.file}:{first.line}) is already the root; give it a parent",
            )
        for root in roots[:1]:
            if root.level in self.level_index and self.level_index[root.level] != 0:
                self._issue(root, "level", f"the root unit must be at the top level {self.levels[0].id!r}")
        in_cycles = self._check_cycles()
        for unit in self.units.values():
            parent = self.units.get(unit.parent) if unit.parent and unit.id not in in_cycles else None
            if parent is None or unit.level not in self.level_index or parent.level not in self.level_index:
                continue
            own, above = self.level_index[unit.level], self.level_index[parent.level]
            if own == 0:
                self._issue(unit, "parent", f"a {unit.level!r} is the top level and cannot have a parent")
            elif above != own - 1:
                self._issue(
                    unit,
                    "parent",
                    f"a {unit.level!r} cannot be under a {parent.level!r} ({parent.id!r}); "
                    f"its parent must be a {self.levels[own - 1].id!r}",
                )

    def _check_cycles(self) -> set[str]:
        """Report each cycle of ``parent`` links once; return the units on cycles."""
        reported: set[str] = set()
        on_cycles: set[str] = set()
        for start in self.units:
            chain: list[str] = []
            current: str | None = start
            while current is not None and current in self.units and current not in chain:
                if current in reported:
                    break
                chain.append(current)
                current = self.units[current].parent
            if current is not None and current in chain:
                cycle = chain[chain.index(current) :]
                on_cycles.update(cycle)
                shown = " → ".join([*cycle, current])
                self._issue(self.units[cycle[0]], "parent", f"the unit tree has a cycle: {shown}")
            reported.update(chain)
        return on_cycles

    def _collect_devices(self) -> None:
        for unit in self.s.units:
            for device in unit.devices:
                if device.unit is not None and device.unit != unit.id:
                    self._issue(
                        device,
                        "unit",
                        f"device is listed under unit {unit.id!r} but names unit {device.unit!r}",
                    )
                    continue
                located = attrs.evolve(device, unit=unit.id)
                self.loader.aliases[id(located)] = id(device)
                self.devices.append(located)
        for device in self.s.devices:
            if device.unit is None:
                self._issue(
                    device,
                    "",
                    "missing required key 'unit' (devices listed at the top level name their unit)",
                )
                continue
            self.devices.append(device)

    def _check_devices(self) -> None:
        for device in self.devices:
            if device.unit not in self.units and self._missing("units", str(device.unit)):
                self._issue(device, "unit", f"unknown unit {device.unit!r}")
            if device.credentials not in self.s.credentials and self._missing(
                "credentials", device.credentials
            ):
                known = ", ".join(sorted(self.s.credentials)) or "none defined"
                self._issue(
                    device, "credentials", f"unknown credentials {device.credentials!r}; known: {known}"
                )
            seen: set[int] = set()
            for channel in device.channels:
                if channel.id in seen:
                    self._issue(channel, "id", f"duplicate channel {channel.id} on device {device.id!r}")
                seen.add(channel.id)

    def _check_people(self) -> None:
        for person in self.s.people:
            for position in person.positions:
                body = self.bodies.get(position.body)
                unit = self.units.get(position.unit)
                if body is None and self._missing("bodies", position.body):
                    self._issue(position, "body", f"unknown body {position.body!r}")
                if unit is None and self._missing("units", position.unit):
                    self._issue(position, "unit", f"unknown unit {position.unit!r}")
                if body is not None and unit is not None and body.level != unit.level:
                    self._issue(
                        position,
                        "unit",
                        f"body {body.id!r} sits at level {body.level!r}, but unit {unit.id!r} is a {unit.level!r}",
                    )
