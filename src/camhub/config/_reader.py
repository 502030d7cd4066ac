"""Strict reading of YAML nodes into frozen attrs classes, with every error located.

The reader walks the node tree that the YAML composer built (so every value still knows its
file and line) against the type annotations of the target classes. It never stops at the first
problem: each one becomes a :class:`~camhub.errors.ConfigIssue` and reading goes on, so the user
sees every mistake at once. Nothing but ``ConfigIssue`` ever comes out of bad input.
"""

from __future__ import annotations

import difflib
import enum
import re
import types
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Union

import attrs
import yaml

from camhub.errors import ConfigIssue, SecretError
from camhub.secrets import Secret, resolve_secret_reference

INVALID: Any = object()
"""Returned for a value that could not be read; its issues are already recorded."""

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_PLAIN_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KINDS = ("$env", "$file")


@attrs.frozen
class TaggedUnion:
    """A family of config classes told apart by one key, e.g. devices by ``vendor``."""

    key: str
    members: Mapping[str, type]
    what: str  # e.g. "vendor", for messages


@attrs.frozen
class Location:
    """Where a value was read from."""

    file: str
    line: int
    path: str


def printable(text: str) -> str:
    """``text`` as is when it prints on one line, else its repr (messages stay one line each)."""
    return text if text.isprintable() else repr(text)


def child_path(path: str, key: str | int) -> str:
    """Extend a ``$``-path with a mapping key or a sequence index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _PLAIN_WORD.match(key):
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def describe(node: yaml.Node) -> str:
    """A short, safe description of what a node holds, for 'got …' in messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = str(node.value)
    if node.tag == _NULL:
        return "nothing (null)"
    if len(value) > 40:
        value = value[:37] + "..."
    return repr(value) if node.tag == _STR else value


@cache
def fields_of(cls: type) -> tuple[tuple[attrs.Attribute[Any], Any], ...]:
    """The attrs fields of ``cls`` with their resolved types (cached per class)."""
    hints = typing.get_type_hints(cls)
    return tuple((field, hints[field.name]) for field in attrs.fields(cls))


def union_args(tp: Any) -> tuple[Any, ...] | None:
    """The members of a ``X | Y`` or ``Optional[X]`` type, or None for other types."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


@cache
def shape_of(tp: Any) -> tuple[str, Any]:
    """How to read a type: its shape and the type inside it (cached: read() runs per node)."""
    if tp is Any:
        return "any", None
    members = union_args(tp)
    if members is not None:
        rest = [m for m in members if m is not type(None)]
        if len(rest) != 1 or len(members) != 2:
            raise TypeError(f"unsupported union {tp!r}")  # a programming error, not input
        return "optional", rest[0]
    if attrs.has(tp):
        return "class", None
    origin = typing.get_origin(tp)
    if origin is tuple:
        return "tuple", typing.get_args(tp)[0]
    if origin in (dict, Mapping, typing.get_origin(Mapping[str, int])):
        return "mapping", typing.get_args(tp)[1]
    if tp is Secret:
        return "secret", None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "enum", None
    if tp in (str, int, float, bool):
        return "scalar", None
    raise TypeError(f"unsupported config type {tp!r}")


class Reader:
    """Reads nodes of one file into typed values, recording issues and locations."""

    def __init__(
        self,
        file: str,
        base_dir: Path,
        unions: Mapping[type, TaggedUnion],
        issues: list[ConfigIssue],
        locations: dict[int, tuple[str, yaml.Node, str]],
    ) -> None:
        self.file = file
        self.base_dir = base_dir
        self.unions = unions
        self.issues = issues
        self.locations = locations
        self._constructor = yaml.constructor.SafeConstructor()

    # -- recording -----------------------------------------------------------------------
    def issue(self, node: yaml.Node, path: str, message: str) -> Any:
        """Record an issue at ``node`` and return :data:`INVALID`."""
        self.issues.append(ConfigIssue(self.file, node.start_mark.line + 1, path, message))
        return INVALID

    def locate(self, obj: object, node: yaml.Node, path: str) -> None:
        """Remember where ``obj`` was read from, for cross-checks (see :func:`location_of`)."""
        self.locations[id(obj)] = (self.file, node, path)

    # -- reading ---------------------------------------------------------------------------
    def read(self, node: yaml.Node, tp: Any, path: str) -> Any:
        """Read ``node`` as a value of type ``tp``; INVALID (with issues recorded) if it is not."""
        union = self.unions.get(tp)
        if union is not None:
            return self._read_tagged(node, union, path)
        shape, arg = shape_of(tp)
        if shape == "scalar":
            return self._read_scalar(node, tp, path)
        if shape == "class":
            return self.read_class(node, tp, path)
        if shape == "optional":
            return None if self._is_null(node) else self.read(node, arg, path)
        if shape == "tuple":
            return self._read_sequence(node, arg, path)
        if shape == "mapping":
            return self._read_mapping(node, arg, path)
        if shape == "secret":
            return self._read_secret(node, path)
        if shape == "enum":
            return self._read_enum(node, tp, path)
        return self._constructor.construct_object(node, deep=True)  # shape "any"

    def _is_null(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag == _NULL

    def _read_scalar(self, node: yaml.Node, tp: type, path: str) -> Any:
        expected = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}[tp]
        if not isinstance(node, yaml.ScalarNode):
            return self.issue(node, path, f"expected {expected}, got {describe(node)}")
        tag = node.tag
        ok = (
            (tp is str and tag == _STR)
            or (tp is int and tag == _INT)
            or (tp is float and tag in (_INT, _FLOAT))
            or (tp is bool and tag == _BOOL)
        )
        if not ok:
            hint = " (put it in quotes)" if tp is str and tag != _NULL else ""
            return self.issue(node, path, f"expected {expected}, got {describe(node)}{hint}")
        try:
            value = self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError):
            return self.issue(node, path, f"expected {expected}, got {describe(node)}")
        return float(value) if tp is float else value

    def _read_enum(self, node: yaml.Node, tp: type[enum.Enum], path: str) -> Any:
        allowed = [str(member.value) for member in tp]
        # The raw text, so that an unquoted `5.1` (a YAML float) still names Article 5.1.
        if isinstance(node, yaml.ScalarNode) and node.tag != _NULL and str(node.value) in allowed:
            return tp(str(node.value))
        return self.issue(node, path, f"expected one of {', '.join(allowed)}; got {describe(node)}")

    def _read_sequence(self, node: yaml.Node, item_tp: Any, path: str) -> Any:
        if not isinstance(node, yaml.SequenceNode):
            return self.issue(node, path, f"expected a list, got {describe(node)}")
        items = []
        failed = False
        for index, item in enumerate(node.value):
            value = self.read(item, item_tp, child_path(path, index))
            if value is INVALID:
                failed = True
            else:
                items.append(value)
        return PartialTuple(items, failed)

    def _read_mapping(self, node: yaml.Node, value_tp: Any, path: str) -> Any:
        pairs = self.pairs(node, path)
        if pairs is None:
            return INVALID
        result: dict[str, Any] = {}
        failed = False
        for key, _, value_node in pairs:
            value = self.read(value_node, value_tp, child_path(path, key))
            if value is INVALID:
                failed = True
            else:
                result[key] = value
        if not failed:
            self.locate(result, node, path)
        return INVALID if failed else result

    def pairs(self, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node, yaml.Node]] | None:
        """The ``(key, key node, value node)`` pairs of a mapping, merge keys applied.

        Records an issue (and returns None) when ``node`` is not a mapping; records one per
        duplicate or non-string key and leaves those out.
        """
        if not isinstance(node, yaml.MappingNode):
            self.issue(node, path, f"expected a mapping, got {describe(node)}")
            return None
        seen: set[str] = set()
        result: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key_node, value_node in self._with_merges(node, path):
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                self.issue(key_node, path, f"keys must be strings, got {describe(key_node)}")
                continue
            key = str(key_node.value)
            if key in seen:
                self.issue(key_node, child_path(path, key), "duplicate key")
                continue
            seen.add(key)
            result.append((key, key_node, value_node))
        return result

    def _with_merges(
        self, node: yaml.MappingNode, path: str, seen: frozenset[int] = frozenset()
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """The pairs of a mapping with ``<<`` merge keys applied: its own keys win, then the
        merged mappings' keys in order (YAML merge-key semantics), without touching the node."""
        seen = seen | {id(node)}
        own = [(k, v) for k, v in node.value if k.tag != _MERGE]
        merges = [v for k, v in node.value if k.tag == _MERGE]
        if not merges:
            return own
        result = list(own)
        keys = {k.value for k, _ in own if isinstance(k, yaml.ScalarNode)}
        for merge in merges:
            for source in merge.value if isinstance(merge, yaml.SequenceNode) else [merge]:
                if not isinstance(source, yaml.MappingNode):
                    self.issue(source, path, f"<< merges mappings only, got {describe(source)}")
                    continue
                if id(source) in seen:
                    self.issue(source, path, "<< merges a mapping into itself")
                    continue
                for key_node, value_node in self._with_merges(source, path, seen):
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value not in keys:
                        keys.add(key_node.value)
                        result.append((key_node, value_node))
        return result

    def _read_secret(self, node: yaml.Node, path: str) -> Any:
        usage = "a secret must be a reference: {$env: NAME} or {$file: path}"
        if not isinstance(node, yaml.MappingNode):
            # Never echo the value: it may be a password typed in plain text.
            return self.issue(node, path, f"{usage}, not a plain value")
        pairs = self.pairs(node, path)
        if pairs is None:
            return INVALID
        if len(pairs) != 1 or pairs[0][0] not in _SECRET_KINDS:
            return self.issue(node, path, usage)
        kind, _, target_node = pairs[0]
        target = self._read_scalar(target_node, str, child_path(path, kind))
        if target is INVALID:
            return INVALID
        try:
            return resolve_secret_reference(kind, target, base_dir=self.base_dir)
        except SecretError as exc:
            return self.issue(node, path, str(exc))

    def _read_tagged(self, node: yaml.Node, union: TaggedUnion, path: str) -> Any:
        pairs = self.pairs(node, path)
        if pairs is None:
            return INVALID
        tag_node = next((value for key, _, value in pairs if key == union.key), None)
        if tag_node is None:
            return self.issue(node, path, f"missing required key {union.key!r}")
        tag_path = child_path(path, union.key)
        if not isinstance(tag_node, yaml.ScalarNode) or tag_node.tag != _STR:
            return self.issue(tag_node, tag_path, f"expected a string, got {describe(tag_node)}")
        cls = union.members.get(str(tag_node.value))
        if cls is None:
            installed = ", ".join(sorted(union.members)) or "none"
            return self.issue(
                tag_node,
                tag_path,
                f"unknown {union.what} {str(tag_node.value)!r}; installed: {installed}",
            )
        return self.read_class(node, cls, path, tag=union.key)

    def read_class(self, node: yaml.Node, cls: type, path: str, *, tag: str | None = None) -> Any:
        """Read a mapping into attrs class ``cls``: unknown keys, missing keys, bad values."""
        pairs = self.pairs(node, path)
        if pairs is None:
            return INVALID
        fields = {field.name: (field, tp) for field, tp in fields_of(cls)}
        kwargs: dict[str, Any] = {}
        present: set[str] = set()
        failed = False
        for key, key_node, value_node in pairs:
            key_path = child_path(path, key)
            present.add(key)
            if key == tag:
                kwargs[key] = str(value_node.value)
                continue
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.issue(key_node, key_path, f"unknown key {key!r}{hint}")
                failed = True
                continue
            field, tp = fields[key]
            value = self.read(value_node, tp, key_path)
            if value is not INVALID:
                value = self._check_constraints(field, value, value_node, key_path)
            if value is INVALID:
                failed = True
                continue
            kwargs[key] = tuple(value) if isinstance(value, PartialTuple) else value
            failed = failed or (isinstance(value, PartialTuple) and value.failed)
        for name, (field, _) in fields.items():
            if name not in present and field.default is attrs.NOTHING:
                self.issue(node, path, f"missing required key {name!r}")
                failed = True
        if failed:
            return INVALID
        obj = cls(**kwargs)
        self.locate(obj, node, path)
        return obj

    def _check_constraints(self, field: attrs.Attribute[Any], value: Any, node: yaml.Node, path: str) -> Any:
        meta = field.metadata
        why = f" ({meta['why']})" if meta.get("why") else ""
        if meta.get("minimum") is not None and value < meta["minimum"]:
            return self.issue(node, path, f"must be at least {meta['minimum']}{why}, got {value}")
        if meta.get("maximum") is not None and value > meta["maximum"]:
            return self.issue(node, path, f"must be at most {meta['maximum']}{why}, got {value}")
        if meta.get("pattern") and not re.match(meta["pattern"], value):
            return self.issue(
                node,
                path,
                f"{describe(node)} is not a valid identifier "
                "(lowercase letters, digits, '.', '_' and '-', starting with a letter or digit)",
            )
        return value


class PartialTuple(list[Any]):
    """The readable items of a list; ``failed`` says some items could not be read."""

    def __init__(self, items: list[Any], failed: bool) -> None:
        super().__init__(items)
        self.failed = failed


def location_of(entry: tuple[str, yaml.Node, str], field: str = "") -> Location:
    """Where an object (or one of its keys) was read: its key's value line, else the mapping's."""
    file, node, path = entry
    if field and isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == field:
                return Location(file, value_node.start_mark.line + 1, child_path(path, field))
    return Location(file, node.start_mark.line + 1, path)


def peek(node: yaml.Node, key: str) -> str | None:
    """The string value at ``key`` of a mapping node, without reading or checking it."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if (
                isinstance(key_node, yaml.ScalarNode)
                and key_node.value == key
                and isinstance(value_node, yaml.ScalarNode)
            ):
                return str(value_node.value)
    return None
