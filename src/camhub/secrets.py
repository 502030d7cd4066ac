"""Secret values (device passwords, store keys) that never show in repr, logs or errors.

A configuration never holds a secret in plain text: it points at one with ``{$env: NAME}`` or
``{$file: path}``, and the loader resolves the reference into a :class:`Secret`. Only
:meth:`Secret.reveal` gives the value back; every other way of printing a ``Secret`` shows
the reference it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from camhub.errors import SecretError

__all__ = ["Secret", "resolve_secret_reference"]


class Secret:
    """A secret value; ``str``, ``repr`` and ``format`` show only where it came from."""

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str = "inline") -> None:
        self._value = value
        self._source = source

    @property
    def source(self) -> str:
        """Where the value came from, e.g. ``$env:CAMHUB_PASSWORD`` (safe to show)."""
        return self._source

    def reveal(self) -> str:
        """Return the secret value. Call it only where the value is handed to a device or store."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self._source!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        # Pickling (worker processes) must keep the value; refuse nothing, but stay explicit.
        return (Secret, (self._value, self._source))


def resolve_secret_reference(kind: str, target: str, *, base_dir: Path) -> Secret:
    """Resolve ``$env`` or ``$file`` reference ``target`` into a :class:`Secret`.

    ``$file`` paths are relative to ``base_dir`` (the folder of the configuration file); one
    trailing newline is removed, as editors add one.

    :raises SecretError: when the variable is unset or empty, or the file cannot be read.
    """
    if kind == "$env":
        try:
            value = os.environ.get(target)
        except ValueError:  # a NUL in the name
            value = None
        if not value:
            raise SecretError(f"environment variable {_shown(target)} is not set")
        return Secret(value, f"$env:{target}")
    if kind == "$file":
        path = base_dir / target
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise SecretError(f"secret file {_shown(target)} cannot be read: {reason}") from None
        value = text[:-1] if text.endswith("\n") else text
        if not value:
            raise SecretError(f"secret file {_shown(target)} is empty")
        return Secret(value, f"$file:{target}")
    raise SecretError(f"unknown secret reference {_shown(kind)}; use $env or $file")


def _shown(name: str) -> str:
    # A reference (never a value) in a message, on one line.
    return name if name.isprintable() else repr(name)
