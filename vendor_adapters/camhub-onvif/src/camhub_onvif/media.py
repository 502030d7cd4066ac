"""Media profiles as camhub channels: each distinct video source is a channel, its profiles its streams.

ONVIF has no channel numbers. A device lists media profiles, each bound to a video source
configuration whose ``SourceToken`` names the physical input. camhub numbers the distinct
sources 1, 2, … in the order the device lists them (the order of its own web interface), and
within a channel takes the profile with the largest picture as the main stream and the next
one as the sub stream. The same parser reads Media1 (``trt:Profiles`` with
``tt:VideoSourceConfiguration`` …) and Media2 (``tr2:Profiles/tr2:Configurations/tr2:VideoSource`` …).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

import attrs

from camhub.net import child, children, text

__all__ = [
    "MediaChannel",
    "MediaProfile",
    "channel_of_token",
    "channels_of",
    "parse_media_uri",
    "parse_profiles",
]


@attrs.frozen
class MediaProfile:
    """One media profile, reduced to what channels and streams need."""

    token: str
    name: str
    source_token: str
    source_config_token: str
    source_name: str = ""
    width: int = 0
    height: int = 0
    encoding: str = ""
    audio: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height


@attrs.frozen
class MediaChannel:
    """A camera channel: one video source and its profiles, the largest picture first."""

    id: int
    source_token: str
    name: str
    profiles: tuple[MediaProfile, ...]
    audio: bool

    @property
    def main(self) -> MediaProfile:
        return self.profiles[0]

    @property
    def sub(self) -> MediaProfile | None:
        return self.profiles[1] if len(self.profiles) > 1 else None

    @property
    def tokens(self) -> frozenset[str]:
        """Every token that designates this channel in events and recordings."""
        found = {self.source_token}
        for profile in self.profiles:
            found.update((profile.source_config_token, profile.token))
        return frozenset(t for t in found if t)


def parse_profiles(answer: ET.Element) -> list[MediaProfile]:
    """The profiles of a Media1 or Media2 ``GetProfiles`` answer that carry video."""
    profiles = []
    for element in children(answer, "Profiles"):
        configs = child(element, "Configurations")  # Media2 nests them here
        source = _first(child(element, "VideoSourceConfiguration"), child(configs, "VideoSource"))
        if source is None:
            continue  # an audio-only or metadata-only profile is not a camera stream
        encoder = _first(child(element, "VideoEncoderConfiguration"), child(configs, "VideoEncoder"))
        audio = _first(child(element, "AudioEncoderConfiguration"), child(configs, "AudioEncoder"))
        width, height = (
            _int(text(encoder, "Resolution", "Width")),
            _int(text(encoder, "Resolution", "Height")),
        )
        if not width or not height:
            bounds = child(source, "Bounds")
            width = _int(bounds.get("width", "") if bounds is not None else "")
            height = _int(bounds.get("height", "") if bounds is not None else "")
        profiles.append(
            MediaProfile(
                token=element.get("token", ""),
                name=text(element, "Name"),
                source_token=text(source, "SourceToken") or source.get("token", ""),
                source_config_token=source.get("token", ""),
                source_name=text(source, "Name"),
                width=width,
                height=height,
                encoding=text(encoder, "Encoding"),
                audio=audio is not None,
            )
        )
    return profiles


def channels_of(profiles: Sequence[MediaProfile]) -> tuple[MediaChannel, ...]:
    """Channels numbered 1… by video source, in the order the device lists them."""
    by_source: dict[str, list[MediaProfile]] = {}
    for profile in profiles:
        by_source.setdefault(profile.source_token, []).append(profile)
    channels = []
    for number, (source, group) in enumerate(by_source.items(), start=1):
        ordered = tuple(sorted(group, key=lambda p: -p.pixels))  # stable: ties keep the device's order
        channels.append(
            MediaChannel(
                id=number,
                source_token=source,
                name=group[0].source_name or source,
                profiles=ordered,
                audio=any(p.audio for p in group),
            )
        )
    return tuple(channels)


def channel_of_token(channels: Sequence[MediaChannel], token: str) -> int | None:
    """The channel a video source, source configuration or profile token designates."""
    for channel in channels:
        if token in channel.tokens:
            return channel.id
    return None


def parse_media_uri(answer: ET.Element) -> str:
    """The URI of a ``GetStreamUri``/``GetSnapshotUri``/``GetReplayUri`` answer (Media1 or Media2)."""
    return text(answer, "//Uri")


def _first(*elements: ET.Element | None) -> ET.Element | None:
    # Not `a or b`: an element without children is falsy.
    return next((e for e in elements if e is not None), None)


def _int(value: str) -> int:
    try:
        return int(float(value))
    except ValueError:
        return 0
