"""camhub's own plugin: the filesystem store and the plain-RTSP adapter, through the public hooks.

The ``rtsp`` adapter serves devices that have no management API camhub knows, only RTSP
streams at known paths (simple encoders, many cheap cameras): camhub records them, but cannot
ask them for identity, time or events.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from camhub.adapter import Capability, DeviceAdapter, MediaSource, StreamProfile
from camhub.errors import DeviceUnsupported
from camhub.hookspecs import hookimpl
from camhub.model import DeviceConfig, FilesystemStorageConfig, StorageConfig, setting
from camhub.plugins import AdapterSpec, StorageBackendSpec
from camhub.storage import FilesystemStorage

__all__ = ["RtspCameraAdapter", "RtspCameraConfig", "RtspStream"]


@attrs.frozen(kw_only=True)
class RtspStream:
    """The RTSP paths of one channel."""

    channel: int = setting("The channel (1-based).", minimum=1)
    main: str = setting("Path of the main stream, e.g. `/stream1`.")
    sub: str = setting("Path of the sub stream (default: the main one).", default="")


@attrs.frozen(kw_only=True)
class RtspCameraConfig(DeviceConfig):
    """A device known only by its RTSP streams (no management API)."""

    streams: tuple[RtspStream, ...] = setting(
        "The stream paths per channel; default: channel 1 at `/`.", default=(RtspStream(channel=1, main="/"),)
    )
    rtsps: bool = setting("Use RTSP over TLS (`rtsps://`).", default=False)


class RtspCameraAdapter(DeviceAdapter):
    """Gives the configured stream addresses; offers nothing else (capability ``live`` only)."""

    capabilities = frozenset({Capability.LIVE})

    async def stream(self, channel: int, profile: StreamProfile = StreamProfile.MAIN) -> MediaSource:
        assert isinstance(self.config, RtspCameraConfig)
        for entry in self.config.streams:
            if entry.channel == channel:
                path = entry.sub if profile is StreamProfile.SUB and entry.sub else entry.main
                scheme = "rtsps" if self.config.rtsps else "rtsp"
                host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
                url = f"{scheme}://{host}:{self.config.rtsp_port}/{path.lstrip('/')}"
                return MediaSource(url=url, username=self.username, password=self.password)
        raise DeviceUnsupported(self.config.id, f"no stream is configured for channel {channel}")


def _open_folder(config: StorageConfig, data_dir: Path) -> FilesystemStorage:
    assert isinstance(config, FilesystemStorageConfig)
    return FilesystemStorage(data_dir / config.path)  # an absolute path stays absolute


@hookimpl
def camhub_register_storage_backends(register: Callable[[StorageBackendSpec], None]) -> None:
    register(
        StorageBackendSpec(
            name="filesystem",
            config_type=FilesystemStorageConfig,
            factory=_open_folder,
            description="a folder on a local or mounted disk",
        )
    )


@hookimpl
def camhub_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    register(
        AdapterSpec(
            vendor="rtsp",
            config_type=RtspCameraConfig,
            adapter_type=RtspCameraAdapter,
            description="any device by its RTSP stream paths (no management API)",
        )
    )
