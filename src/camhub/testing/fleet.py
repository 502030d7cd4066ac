"""A simulated province: a device simulator for every configured device, with live media.

:class:`Fleet` starts, for each device of a configuration, the simulator of its vendor on the
device's own port (so the configuration is used as it is), and an RTSP server on the device's
RTSP port serving every channel's main and sub stream from generated media (H.264 with AAC, or
with G.711 for Dahua devices, as many of theirs send). Microphone channels get audio-only media.
The devices keep recording while their media is cut: :meth:`Fleet.keep_recordings` puts what a
device's channels played on its "storage", served back by the vendor's own playback (Hikvision
``/Streaming/tracks``, ONVIF replay) or download (Dahua ``RPC_Loadfile``).
:func:`fleet_yaml` writes a configuration for a generated fleet (``camhub simulate``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from camhub.model import ChannelKind, DeviceConfig, DeviceKind
from camhub.province import ProvinceConfig
from camhub.testing.media import Clip, cached_clip
from camhub.testing.rtsp import RtspServer
from camhub.testing.simulator import DeviceProfile, SimulatedDevice, SimulatedRecording

__all__ = ["SIMULATED_VENDORS", "Fleet", "fleet_yaml"]

#: Vendors a fleet can simulate; other devices of a configuration are left out.
SIMULATED_VENDORS = ("hikvision", "dahua", "onvif")

_MODELS = {
    ("hikvision", False): ("DS-2CD2143G2-IU", "V5.7.3 build 220112"),
    ("hikvision", True): ("DS-7608NI-K2/8P", "V4.61.025 build 230210"),
    ("dahua", False): ("IPC-HDW2431T-AS-S2", "2.800.0000000.16.R"),
    ("dahua", True): ("DHI-NVR4108HS-8P-4KS2", "4.001.0000000.3.R"),
    ("onvif", False): ("ONVIF-IPC-2000", "1.4.2"),
    ("onvif", True): ("ONVIF-NVR-8", "1.4.2"),
}


def _simulator_type(vendor: str) -> type[SimulatedDevice]:
    if vendor == "hikvision":
        from camhub.testing.hikvision import HikvisionSimulator

        return HikvisionSimulator
    if vendor == "dahua":
        from camhub.testing.dahua import DahuaSimulator

        return DahuaSimulator
    from camhub.testing.onvif import OnvifSimulator

    return OnvifSimulator


def _profile(device: DeviceConfig, username: str, password: str) -> DeviceProfile:
    nvr = device.kind in (DeviceKind.NVR, DeviceKind.DVR)
    model, firmware = _MODELS[(device.vendor, nvr)]
    digest = hashlib.sha256(device.id.encode()).hexdigest()
    mac = ":".join(["02", *(digest[i : i + 2] for i in range(0, 10, 2))])
    return DeviceProfile(
        model=model,
        serial=f"{device.vendor[:2].upper()}{digest[:12].upper()}",
        firmware=firmware,
        mac=mac,
        name=device.name or device.id,
        channels=max(1, len(device.effective_channels())),
        nvr=nvr,
        username=username,
        password=password,
    )


class Fleet:
    """Simulators and media servers for the devices of ``province`` (those of simulated vendors).

    :param province: the configuration; devices keep their hosts (127.0.0.1) and ports.
    :param only: device ids to simulate (default: every device of a simulated vendor).
    """

    def __init__(self, province: ProvinceConfig, *, only: set[str] | None = None) -> None:
        self.province = province
        self.devices = [
            d for d in province.devices if d.vendor in SIMULATED_VENDORS and (only is None or d.id in only)
        ]
        self.simulators: dict[str, SimulatedDevice] = {}
        self.media: dict[str, RtspServer] = {}
        self._paths: dict[str, list[str]] = {}
        self._main: dict[str, dict[int, str]] = {}  # device → camera channel → live main path

    async def start(self, progress: Callable[[str], None] | None = None) -> None:
        """Start every simulator and media server (media is generated once, then cached)."""
        clips = await asyncio.to_thread(self._clips)
        try:
            for device in self.devices:
                await self._start_device(device, clips)
                if progress is not None:
                    progress(device.id)
        except BaseException:
            await self.stop()
            raise

    def _clips(self) -> dict[str, Clip]:
        return {
            "aac": cached_clip(seconds=10, audio="aac", burn_index=True),
            "pcmu": cached_clip(seconds=10, audio="pcmu", burn_index=True),
            "video": cached_clip(seconds=10, audio=None, burn_index=True),
        }

    async def _start_device(self, device: DeviceConfig, clips: dict[str, Clip]) -> None:
        account = self.province.credentials[device.credentials]
        password = account.password.reveal()
        profile = _profile(device, account.username, password)
        media = RtspServer(port=device.rtsp_port, username=account.username, password=password)
        await media.start()
        self.media[device.id] = media
        # An ONVIF device authenticates as configured (WS-Security, HTTP Digest or both).
        extra = {"auth": getattr(device, "auth", "both")} if device.vendor == "onvif" else {}
        simulator = _simulator_type(device.vendor)(
            profile, rtsp_url=f"rtsp://127.0.0.1:{media.port}", port=device.port, **extra
        )
        await simulator.start()
        self.simulators[device.id] = simulator
        paths = []
        for channel in device.effective_channels():
            microphone = channel.kind is ChannelKind.MICROPHONE
            clip = clips[("pcmu" if device.vendor == "dahua" else "aac") if channel.has_audio else "video"]
            for main in (True, False):
                parts = urlsplit(simulator.stream_url(channel.id, main))
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                media.add_path(path, clip, video=not microphone)
                paths.append(path)
                if main and not microphone:
                    self._main.setdefault(device.id, {})[channel.id] = path
                    self._add_playback(simulator, media, channel.id, path)
        self._paths[device.id] = paths

    @staticmethod
    def _add_playback(simulator: SimulatedDevice, media: RtspServer, channel: int, live: str) -> None:
        """Serve a camera's recording as the vendor plays it back (Dahua's is downloaded instead)."""
        if simulator.vendor == "hikvision":
            media.add_replay_path(f"/Streaming/tracks/{channel}01", live)
        elif simulator.vendor == "onvif":
            from camhub.testing.onvif import OnvifSimulator

            assert isinstance(simulator, OnvifSimulator)
            media.add_replay_path(simulator.replay_path(channel), live, onvif=True)

    def main_path(self, device_id: str, channel: int) -> str:
        """The media server path of a camera channel's live main stream."""
        return self._main[device_id][channel]

    def keep_recordings(self, device_id: str, start: datetime, end: datetime, folder: Path) -> None:
        """Put what the device's cameras played in ``[start, end)`` on its storage (its recordings).

        Hikvision and ONVIF devices serve it by RTSP playback; a Dahua device's files are written
        into ``folder`` (from the first keyframe, on a whole second) and served for download.
        """
        simulator, media = self.simulators[device_id], self.media[device_id]
        recordings = []
        for channel, path in sorted(self._main.get(device_id, {}).items()):
            if simulator.vendor == "dahua":
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / f"{device_id}-ch{channel}-{start:%Y%m%dT%H%M%S}.mov"
                first, last = media.save_recording(path, start, end, target)
                recordings.append(
                    SimulatedRecording(channel=channel, start=first, end=last, path=str(target))
                )
            else:
                recordings.append(SimulatedRecording(channel=channel, start=start, end=end))
        simulator.recordings = recordings

    async def stop(self) -> None:
        for simulator in self.simulators.values():
            await simulator.stop()
        for media in self.media.values():
            await media.stop()
        self.simulators.clear()
        self.media.clear()

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def cut(self, device_id: str) -> None:
        """Cut a device's media, as a cable pulled: sessions closed, streams withheld."""
        media = self.media[device_id]
        for path in self._paths[device_id]:
            media.set_paused(path, True)
        media.close_all_sessions()

    def restore(self, device_id: str) -> None:
        """Plug the device's media back in."""
        for path in self._paths[device_id]:
            self.media[device_id].set_paused(path, False)


def fleet_yaml(counts: dict[str, int], *, first_port: int, secret_file: str, channels: int = 1) -> str:
    """A configuration for a generated fleet: ``counts[vendor]`` cameras of each vendor at one
    site, device ``n`` on HTTP port ``first_port + 2n`` and RTSP port ``first_port + 2n + 1``."""
    lines = [
        "# Written by `camhub simulate`: a simulated fleet on 127.0.0.1.",
        "camhub: 1",
        "province: {id: sim, name: Tỉnh Mô Phỏng}",
        "levels: [{id: province, name: Tỉnh}]",
        'bodies: [{id: hcc, name: Trung tâm Hành chính công, level: province, article5: "5.3"}]',
        f"credentials: {{sim: {{username: admin, password: {{$file: {secret_file}}}}}}}",
        "units:",
        "  - id: sim",
        "    name: Trung tâm Hành chính công (mô phỏng)",
        "    level: province",
        "    managing_body: hcc",
        "    devices:",
    ]
    n = 0
    for vendor in SIMULATED_VENDORS:
        for index in range(counts.get(vendor, 0)):
            port = first_port + 2 * n
            chans = ", ".join(f"{{id: {c}, audio: true}}" for c in range(1, channels + 1))
            lines.append(
                f"      - {{id: {vendor}-{index + 1}, vendor: {vendor}, kind: camera, host: 127.0.0.1, "
                f"port: {port}, rtsp_port: {port + 1}, credentials: sim, channels: [{chans}]}}"
            )
            n += 1
    return "\n".join(lines) + "\n"
