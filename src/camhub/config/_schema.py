"""JSON Schema of the configuration format, generated from the same classes the loader reads.

Editors (VS Code with the YAML extension, JetBrains IDEs) use it for completion and checking:
``camhub config schema > camhub.schema.json`` and point the editor at it.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from camhub.config._document import Document
from camhub.config._reader import fields_of, union_args
from camhub.model import DeviceConfig, StorageConfig
from camhub.secrets import Secret

if TYPE_CHECKING:
    from camhub.plugins import PluginHost

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def json_schema(host: PluginHost | None = None) -> dict[str, Any]:
    """The JSON Schema (2020-12) of a camhub configuration file, with every installed vendor.

    ``host`` supplies the device and storage types of installed plugins; without one, every
    installed plugin is loaded.
    """
    if host is None:
        from camhub.plugins import PluginHost

        host = PluginHost.from_installed()
    builder = _SchemaBuilder(
        {
            DeviceConfig: ("vendor", host.device_config_types()),
            StorageConfig: ("backend", host.storage_config_types()),
        }
    )
    root = builder.object_schema(Document)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://camhub.invalid/schema/config-1.json",
        "title": "camhub configuration",
        **root,
        "$defs": dict(sorted(builder.defs.items())),
    }


class _SchemaBuilder:
    def __init__(self, unions: Mapping[type, tuple[str, Mapping[str, type]]]) -> None:
        self.unions = unions
        self.defs: dict[str, Any] = {}

    def ref(self, cls: type, name: str | None = None, tag: tuple[str, str] | None = None) -> dict[str, Any]:
        name = name or cls.__name__
        if name not in self.defs:
            self.defs[name] = {}  # placeholder against recursion
            self.defs[name] = self.object_schema(cls, tag)
        return {"$ref": f"#/$defs/{name}"}

    def object_schema(self, cls: type, tag: tuple[str, str] | None = None) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field, tp in fields_of(cls):
            if tag is not None and field.name == tag[0]:
                schema: dict[str, Any] = {"const": tag[1]}
            else:
                schema = self.type_schema(tp)
            meta = field.metadata
            for key, schema_key in (("minimum", "minimum"), ("maximum", "maximum"), ("pattern", "pattern")):
                if meta.get(key) is not None:
                    schema[schema_key] = meta[key]
            if meta.get("doc"):
                schema["description"] = meta["doc"]
            default = field.default
            if default is attrs.NOTHING:
                required.append(field.name)
            elif isinstance(default, (str, int, float, bool)) and not isinstance(default, enum.Enum):
                schema["default"] = default
            elif isinstance(default, enum.Enum):
                schema["default"] = default.value
            properties[field.name] = schema
        doc = (cls.__doc__ or "").strip().splitlines()
        result: dict[str, Any] = {
            "type": "object",
            "additionalProperties": False,
            "properties": properties,
        }
        if doc:
            result["description"] = doc[0]
        if required:
            result["required"] = required
        return result

    def type_schema(self, tp: Any) -> dict[str, Any]:
        members = union_args(tp)
        if members is not None:
            return {
                "anyOf": [self.type_schema(m) if m is not type(None) else {"type": "null"} for m in members]
            }
        if tp in self.unions:
            key, classes = self.unions[tp]
            return {
                "oneOf": [
                    self.ref(cls, f"{tp.__name__}.{name}", (key, name))
                    for name, cls in sorted(classes.items())
                ]
            }
        if attrs.has(tp):
            return self.ref(tp)
        origin = typing.get_origin(tp)
        if origin is tuple:
            return {"type": "array", "items": self.type_schema(typing.get_args(tp)[0])}
        if origin in (dict, Mapping, typing.get_origin(Mapping[str, int])):
            return {"type": "object", "additionalProperties": self.type_schema(typing.get_args(tp)[1])}
        if tp is Secret:
            return {"$ref": "#/$defs/SecretReference"} if self._secret_def() else {}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"enum": [member.value for member in tp]}
        if tp in _SCALARS:
            return {"type": _SCALARS[tp]}
        raise TypeError(f"no schema for {tp!r}")

    def _secret_def(self) -> bool:
        self.defs["SecretReference"] = {
            "description": "A secret is never written in the file: point at an environment "
            "variable or a file (relative to the configuration file).",
            "oneOf": [
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [kind],
                    "properties": {kind: {"type": "string", "description": text}},
                }
                for kind, text in (
                    ("$env", "Name of an environment variable holding the secret."),
                    ("$file", "Path of a file holding the secret (one trailing newline ignored)."),
                )
            ],
        }
        return True
