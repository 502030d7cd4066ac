"""A toy camhub adapter: how a provider adds a vendor (``vendor: toy`` in the YAML).

Three pieces make an adapter: a configuration class (the device's own YAML keys, on top of
:class:`camhub.DeviceConfig`), an adapter class (a :class:`camhub.DeviceAdapter` declaring its
capabilities and implementing them), and a ``camhub_register_adapters`` hook implementation
that registers both. The distribution's entry point in group ``camhub.adapters`` is named
``toy``, like its vendor.

The toy device speaks JSON over HTTP with Digest authentication and an API token header:
``GET /api/info``, ``/api/time``, ``/api/channels`` and ``/api/snapshot?channel=N``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx

from camhub import AdapterSpec, DeviceAdapter, DeviceConfig, Secret, hookimpl
from camhub.adapter import Capability, ChannelInfo, DeviceHealth, DeviceIdentity, DeviceTime
from camhub.errors import DeviceError, DeviceProtocolError
from camhub.model import ChannelKind, setting
from camhub.net import DeviceHTTP

__all__ = ["ToyAdapter", "ToyConfig", "camhub_register_adapters"]


@attrs.frozen(kw_only=True)
class ToyConfig(DeviceConfig):
    """A toy device: the common device keys plus an API token."""

    api_token: Secret = setting("Token for the toy API: `{$env: NAME}` or `{$file: path}`.")


class ToyAdapter(DeviceAdapter):
    """Talks to toy devices over their JSON API."""

    capabilities = frozenset(
        {Capability.IDENTITY, Capability.TIME, Capability.CHANNELS, Capability.SNAPSHOT, Capability.HEALTH}
    )

    def __init__(
        self, config: DeviceConfig, client: httpx.AsyncClient, *, username: str, password: Secret
    ) -> None:
        super().__init__(config, client, username=username, password=password)
        assert isinstance(config, ToyConfig)
        self._token = config.api_token
        # camhub.net bounds every answer (size, deadline) and maps failures to camhub.errors.
        self._http = DeviceHTTP(
            client,
            config.id,
            config.base_url,
            auth=httpx.DigestAuth(username, password.reveal()),
            timeout=5.0,
        )

    async def _get(self, path: str, **params: Any) -> bytes:
        response = await self._http.request(
            "GET", path, params=params or None, headers={"X-Toy-Token": self._token.reveal()}
        )
        return self._http.check(response, path).body

    async def _json(self, path: str) -> Any:
        body = await self._get(path)
        try:
            return json.loads(body)
        except ValueError:
            raise DeviceProtocolError(self.config.id, f"{path}: the answer is not JSON") from None

    async def identity(self) -> DeviceIdentity:
        info = await self._json("/api/info")
        try:
            return DeviceIdentity(
                vendor="toy",
                model=str(info["model"]),
                serial=str(info["serial"]),
                firmware=str(info["firmware"]),
                mac=str(info["mac"]),
                name=str(info.get("name", "")),
            )
        except (KeyError, TypeError):
            raise DeviceProtocolError(self.config.id, "/api/info: missing fields") from None

    async def time(self) -> DeviceTime:
        asked = datetime.now(UTC)
        answer = await self._json("/api/time")
        try:
            device_time = datetime.fromisoformat(str(answer["utc"])).astimezone(UTC)
        except (KeyError, TypeError, ValueError):
            raise DeviceProtocolError(self.config.id, "/api/time: no valid 'utc' time") from None
        return DeviceTime(device_time=device_time, offset=device_time - asked)

    async def channels(self) -> list[ChannelInfo]:
        answer = await self._json("/api/channels")
        try:
            return [
                ChannelInfo(
                    id=int(c["id"]),
                    kind=ChannelKind(c.get("kind", "camera")),
                    name=str(c.get("name", "")),
                    online=bool(c.get("online", True)),
                    audio=bool(c.get("audio", False)),
                )
                for c in answer
            ]
        except (KeyError, TypeError, ValueError):
            raise DeviceProtocolError(self.config.id, "/api/channels: not a list of channels") from None

    async def snapshot(self, channel: int) -> bytes:
        picture = await self._get("/api/snapshot", channel=channel)
        if not picture.startswith(b"\xff\xd8"):
            raise DeviceProtocolError(self.config.id, "/api/snapshot: the answer is not a JPEG")
        return picture

    async def health(self) -> DeviceHealth:
        try:
            measured = await self.time()
        except DeviceError as exc:
            auth_failed = type(exc).__name__ == "DeviceAuthError"
            return DeviceHealth(reachable=auth_failed, auth_ok=False, error=exc.detail)
        return DeviceHealth(reachable=True, auth_ok=True, clock_skew=measured.offset)


@hookimpl
def camhub_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    """Register the toy vendor."""
    register(
        AdapterSpec(
            vendor="toy",
            config_type=ToyConfig,
            adapter_type=ToyAdapter,
            description="toy devices (an example)",
        )
    )
