"""The ISAPI alert stream: ``EventNotificationAlert`` parts normalised into camhub DeviceEvents.

``GET /ISAPI/Event/notification/alertStream`` answers ``multipart/mixed`` and never ends: each
part is one ``EventNotificationAlert`` (parts may carry ``Content-Length`` or rely on the boundary
alone; smart events add JPEG parts, which are skipped). While nothing happens the device sends a
keep-alive about every 10 s — a ``videoloss`` alert in state ``inactive`` with ``activePostCount``
0 (cameras write ``channelID`` 1 in it, see the HikSink captures) — which becomes a
:attr:`~camhub.adapter.EventKind.HEARTBEAT`. Silence longer than the idle timeout is a
:class:`~camhub.errors.DeviceTimeout`; a stream cut inside a part is a
:class:`~camhub.errors.DeviceProtocolError`.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, tzinfo

import attrs

from camhub.adapter import DeviceEvent, EventKind
from camhub.errors import DeviceTimeout
from camhub.log import get_logger
from camhub.net import iter_multipart, local_name, parse_xml, text
from camhub_hikvision.parse import expect_root, parse_isapi_time

__all__ = [
    "EventTrigger",
    "alert_events",
    "classify",
    "is_heartbeat",
    "parse_alert",
    "parse_triggers",
]

#: Hikvision ``eventType`` (lower-cased) → camhub's kind; anything else is ``other``.
EVENT_KINDS: dict[str, EventKind] = {
    "vmd": EventKind.MOTION,
    "motiondetection": EventKind.MOTION,
    "videoloss": EventKind.VIDEO_LOSS,
    "shelteralarm": EventKind.TAMPER,
    "tamperdetection": EventKind.TAMPER,
    "diskfull": EventKind.STORAGE_FAULT,
    "diskerror": EventKind.STORAGE_FAULT,
    "hderror": EventKind.STORAGE_FAULT,
    "hdfull": EventKind.STORAGE_FAULT,
    "illaccess": EventKind.LOGIN_FAILURE,
    "badlogin": EventKind.LOGIN_FAILURE,
}

#: Largest alert part read (smart events carry pictures of a few hundred kB).
MAX_PART = 2 * 1024 * 1024


def is_heartbeat(event_type: str, active: bool, channel: int | None, post_count: str) -> bool:
    """The keep-alive: ``videoloss`` inactive, on no channel or with ``activePostCount`` 0."""
    return event_type.lower() == "videoloss" and not active and (channel is None or post_count in ("", "0"))


def classify(event_type: str, active: bool, channel: int | None, post_count: str = "") -> EventKind:
    """camhub's kind for a Hikvision ``eventType`` in a given state."""
    if is_heartbeat(event_type, active, channel, post_count):
        return EventKind.HEARTBEAT
    return EVENT_KINDS.get(event_type.lower(), EventKind.OTHER)


def _channel(alert: ET.Element) -> int | None:
    # Cameras write channelID; NVRs write dynChannelID (the channel as their UI numbers it).
    for name in ("channelID", "dynChannelID"):
        value = text(alert, name)
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def parse_alert(
    device_id: str,
    body: bytes | str,
    *,
    received: datetime | None = None,
    device_tz: tzinfo | None = None,
) -> DeviceEvent | None:
    """One ``EventNotificationAlert`` as a DeviceEvent; None for another (well-formed) document.

    The event time is the alert's ``dateTime`` in UTC; one written without an offset is read in
    ``device_tz``, and failing that the time the alert was ``received`` is used. ``payload`` is
    the alert's text, whole (only the framing's surrounding white space is removed).

    :raises DeviceProtocolError: for malformed or refused (DTD, entities) XML.
    """
    root = parse_xml(device_id, body)
    if local_name(root.tag) != "EventNotificationAlert":
        return None
    alert = root
    event_type = text(alert, "eventType")
    active = text(alert, "eventState").lower() == "active"
    channel = _channel(alert)
    kind = classify(event_type, active, channel, text(alert, "activePostCount"))
    when = parse_isapi_time(text(alert, "dateTime"), device_tz) or received or datetime.now(UTC)
    payload = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return DeviceEvent(
        device_id=device_id,
        kind=kind,
        active=active,
        time=when,
        channel=None if kind is EventKind.HEARTBEAT else channel,
        vendor_type=event_type,
        payload=payload.strip(),
    )


async def alert_events(
    device_id: str,
    chunks: AsyncIterator[bytes],
    boundary: str,
    *,
    idle_timeout: float,
    device_tz: Callable[[], tzinfo | None] = lambda: None,
) -> AsyncIterator[DeviceEvent]:
    """DeviceEvents from an alert stream's bytes, until it ends.

    :param idle_timeout: seconds without one complete part (event or keep-alive) before
        :class:`~camhub.errors.DeviceTimeout` — a device trickling bytes counts as silent.
    :param device_tz: the device's zone, for alerts that write their time without an offset.
    """
    log = get_logger("camhub_hikvision.events", device=device_id)
    parts = iter_multipart(device_id, chunks, boundary, max_part=MAX_PART)
    try:
        while True:
            try:
                async with asyncio.timeout(idle_timeout):
                    part = await anext(parts)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise DeviceTimeout(device_id, f"no alert or keep-alive for {idle_timeout:g} s") from None
            content_type = part.headers.get("content-type", "").lower()
            body = part.body.strip()
            if content_type.startswith("image/") or not body.startswith(b"<"):
                log.debug("hikvision.alert_part_skipped", content_type=content_type, size=len(part.body))
                continue
            event = parse_alert(device_id, body, received=datetime.now(UTC), device_tz=device_tz())
            if event is None:
                log.debug("hikvision.alert_document_skipped", size=len(part.body))
                continue
            yield event
    finally:
        # iter_multipart is an async generator typed as an iterator: close it if it can be.
        close = getattr(parts, "aclose", None)
        if close is not None:
            await close()


# -- /ISAPI/Event/triggers ------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class EventTrigger:
    """One ``EventTrigger``: what the device does when an event type fires on a channel or input.

    ``notifications`` lists the linkage methods (``center`` is the alert stream camhub reads,
    ``record``, ``email``, ``beep``…): an event reaches camhub only when ``center`` is set.
    """

    id: str
    event_type: str
    kind: EventKind
    channel: int | None = None
    input_port: int | None = None
    notifications: tuple[str, ...] = ()

    @property
    def notifies_center(self) -> bool:
        return "center" in self.notifications


def parse_triggers(device_id: str, root: ET.Element) -> list[EventTrigger]:
    """``GET /ISAPI/Event/triggers``: every trigger with its channel (or alarm input) and methods."""
    doc = expect_root(device_id, root, "EventTriggerList", "GET /ISAPI/Event/triggers")
    triggers = []
    for trigger in doc:
        if local_name(trigger.tag) != "EventTrigger":
            continue
        event_type = text(trigger, "eventType")
        channel = _first_number(trigger, "videoInputChannelID", "dynVideoInputChannelID")
        port = _first_number(trigger, "inputIOPortID", "dynInputIOPortID")
        methods = tuple(
            text(n, "notificationMethod")
            for n in trigger.iter()
            if local_name(n.tag) == "EventTriggerNotification" and text(n, "notificationMethod")
        )
        triggers.append(
            EventTrigger(
                id=text(trigger, "id"),
                event_type=event_type,
                kind=EVENT_KINDS.get(event_type.lower(), EventKind.OTHER),
                channel=channel,
                input_port=port,
                notifications=methods,
            )
        )
    return triggers


def _first_number(element: ET.Element, *names: str) -> int | None:
    for name in names:
        value = text(element, name)
        if value.isdigit():
            return int(value)
    return None
