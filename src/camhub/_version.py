"""The installed version of camhub."""

from importlib import metadata

try:
    __version__ = metadata.version("camhub")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0"
