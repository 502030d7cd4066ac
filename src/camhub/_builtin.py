"""camhub's own plugin: the built-in storage backend, registered through the public hooks."""

from __future__ import annotations

from collections.abc import Callable

from camhub.hookspecs import hookimpl
from camhub.model import FilesystemStorageConfig
from camhub.plugins import StorageBackendSpec


@hookimpl
def camhub_register_storage_backends(register: Callable[[StorageBackendSpec], None]) -> None:
    register(
        StorageBackendSpec(
            name="filesystem",
            config_type=FilesystemStorageConfig,
            description="a folder on a local or mounted disk",
        )
    )
