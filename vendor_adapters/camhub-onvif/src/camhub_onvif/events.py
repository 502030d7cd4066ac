"""ONVIF events: a pull-point subscription kept alive, and its notifications as camhub DeviceEvents.

The subscription is created with ``CreatePullPointSubscription``, read with ``PullMessages``
(a long poll of a few seconds), renewed before it terminates, and ended with ``Unsubscribe``.
Real devices get this wrong in known ways, and each is tolerated:

- an empty subscription address (the pull point is then the event service itself);
- ``CurrentTime``/``TerminationTime`` that are 1970, equal, or not valid times at all (minute
  61): the subscription is then renewed on a fixed period instead of before its termination;
- a ``Renew`` that refuses a relative time (it is sent again as an absolute time on the
  device's clock) or is not supported at all (the device keeps the subscription while polled);
- reference parameters in the subscription address, which must come back as SOAP headers.

Topics are mapped to :class:`~camhub.adapter.EventKind` by their path with prefixes removed;
the notification's own text is kept whole as the payload. An empty poll yields a
``HEARTBEAT`` event, so the consumer can tell a quiet device from a dead subscription.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, Callable, MutableSet
from copy import deepcopy
from datetime import UTC, datetime, timedelta

import attrs
import httpx

from camhub.adapter import DeviceEvent, EventKind
from camhub.errors import DeviceError, DeviceProtocolError, DeviceUnsupported
from camhub.log import get_logger
from camhub.net import child, children, text
from camhub_onvif.client import MAX_POLL, OnvifClient, rebase
from camhub_onvif.soap import NS, addressing, format_datetime, format_duration, parse_datetime, simple_items

__all__ = ["PullPoint", "PullPointOptions", "event_kind", "parse_notifications", "pull_point_events"]

CREATE_ACTION = "http://www.onvif.org/ver10/events/wsdl/EventPortType/CreatePullPointSubscriptionRequest"
PULL_ACTION = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription/PullMessagesRequest"
RENEW_ACTION = "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest"
UNSUBSCRIBE_ACTION = "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeRequest"
#: Shortest poll asked (ONVIF durations are sent in whole seconds).
MIN_POLL = 1.0


@attrs.frozen(kw_only=True)
class PullPointOptions:
    """How a pull-point subscription is kept.

    :param termination: lifetime asked at creation and at each renewal.
    :param pull_timeout: how long one ``PullMessages`` waits for messages (``Timeout``).
    :param message_limit: most messages one poll returns (``MessageLimit``).
    :param fallback_renew: renewal period when the device's times cannot be trusted.
    :param heartbeats: yield a ``HEARTBEAT`` event for each empty poll.
    """

    termination: timedelta = timedelta(seconds=60)
    pull_timeout: timedelta = timedelta(seconds=5)
    message_limit: int = 100
    fallback_renew: timedelta = timedelta(seconds=30)
    heartbeats: bool = True


# -- topics -----------------------------------------------------------------------------------
_TOPICS: tuple[tuple[tuple[str, ...], EventKind], ...] = (
    (("VideoSource", "MotionAlarm"), EventKind.MOTION),
    (("RuleEngine", "CellMotionDetector", "Motion"), EventKind.MOTION),
    (("VideoSource", "SignalLoss"), EventKind.VIDEO_LOSS),
    (("VideoSource", "GlobalSceneChange"), EventKind.TAMPER),
    (("VideoSource", "ImageTooBlurry"), EventKind.TAMPER),
    (("VideoSource", "ImageTooDark"), EventKind.TAMPER),
    (("VideoSource", "ImageTooBright"), EventKind.TAMPER),
    (("VideoSource", "Tampering"), EventKind.TAMPER),
    (("RuleEngine", "TamperDetector"), EventKind.TAMPER),
    (("Device", "HardwareFailure", "StorageFailure"), EventKind.STORAGE_FAULT),
)
# Data items that carry an event's state, most specific first.
_STATE_ITEMS = ("State", "IsMotion", "IsTamper", "IsSignalLoss", "Failed", "LogicalState", "Value")
_TRUE, _FALSE = frozenset({"true", "1", "on", "active"}), frozenset({"false", "0", "off", "inactive"})


def event_kind(topic: str) -> EventKind:
    """The camhub kind of an ONVIF topic (``tns1:RuleEngine/CellMotionDetector/Motion`` → motion)."""
    segments = [segment.rsplit(":", 1)[-1].strip() for segment in topic.strip().split("/")]
    for pattern, kind in _TOPICS:
        if tuple(segments[: len(pattern)]) == pattern:
            return kind
    return EventKind.OTHER


def parse_notifications(
    device_id: str, answer: ET.Element, raw: bytes, channel_of: Callable[[str], int | None]
) -> list[DeviceEvent]:
    """The ``wsnt:NotificationMessage`` elements of a ``PullMessages`` answer as DeviceEvents.

    :param raw: the answer as received; each event's payload is its message's own text.
    :param channel_of: the channel a source token (video source, configuration, profile) means.
    """
    messages = list(children(answer, "NotificationMessage"))
    texts = _raw_messages(raw, len(messages))
    events = []
    for index, message in enumerate(messages):
        topic = text(message, "Topic")
        body = child(message, "Message")
        inner = child(body, "Message")
        content = inner if inner is not None else body
        stamp = parse_datetime(content.get("UtcTime", "")) if content is not None else None
        source = simple_items(child(content, "Source"))
        data = simple_items(child(content, "Data"))
        channel = next((c for c in map(channel_of, source.values()) if c is not None), None)
        events.append(
            DeviceEvent(
                device_id=device_id,
                kind=event_kind(topic),
                active=_active(data),
                time=stamp or datetime.now(UTC),
                channel=channel,
                vendor_type=topic,
                payload=texts[index] if texts else ET.tostring(message, encoding="unicode"),
            )
        )
    return events


def _active(data: dict[str, str]) -> bool:
    ordered = [data[name] for name in _STATE_ITEMS if name in data] + list(data.values())
    for value in ordered:
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return True  # a notification without a state is an occurrence


_MESSAGE_START = re.compile(r"<(?:([\w.-]+):)?NotificationMessage[\s/>]")


def _raw_messages(raw: bytes, expected: int) -> list[str]:
    """Each NotificationMessage's text as the device sent it (empty when it cannot be cut out)."""
    if not expected:
        return []
    document = raw.decode("utf-8", errors="replace")
    found = []
    position = 0
    while (start := _MESSAGE_START.search(document, position)) is not None:
        prefix = f"{start.group(1)}:" if start.group(1) else ""
        end = re.compile(rf"</{re.escape(prefix)}NotificationMessage\s*>").search(document, start.end())
        if end is None:
            return []
        found.append(document[start.start() : end.end()])
        position = end.end()
    return found if len(found) == expected else []


# -- the subscription -------------------------------------------------------------------------
class PullPoint:
    """One pull-point subscription on a device."""

    def __init__(
        self,
        client: OnvifClient,
        events_url: str,
        channel_of: Callable[[str], int | None],
        options: PullPointOptions,
    ) -> None:
        self.client = client
        self.events_url = events_url
        self.channel_of = channel_of
        self.options = options
        self.address = events_url
        self.renewals = 0
        self.relative_times_broken = False
        self._reference_parameters = ""
        self._renew_at = 0.0
        self._closed = False

    def __repr__(self) -> str:
        return f"<PullPoint device={self.client.device_id!r} address={self.address!r}>"

    async def create(self) -> None:
        """``CreatePullPointSubscription`` on the event service."""
        inner = f"<tev:InitialTerminationTime>{format_duration(self.options.termination)}</tev:InitialTerminationTime>"
        answer = await self.client.call(
            self.events_url, "tev", "CreatePullPointSubscription", inner, action=CREATE_ACTION
        )
        reference = child(answer, "SubscriptionReference")
        address = text(reference, "Address")
        # An empty address (seen on real cameras) means the event service is the pull point.
        self.address = rebase(address, self.client.base_url) if address else self.events_url
        self._reference_parameters = _reference_parameters(child(reference, "ReferenceParameters"))
        self._schedule(answer, renewed=True)
        get_logger(__name__).debug(
            "onvif.subscribed",
            device=self.client.device_id,
            address=self.address,
            relative_times_broken=self.relative_times_broken,
        )

    def renew_due(self) -> bool:
        """True when the next poll (at least a second) would end after the renewal time."""
        return time.monotonic() + MIN_POLL >= self._renew_at

    async def pull(self) -> tuple[list[DeviceEvent], datetime | None]:
        """One ``PullMessages``: the events it brought and the device's current time.

        The poll waits at most until the renewal is due, so a subscription is never left to
        lapse while a poll is held.
        """
        left = timedelta(seconds=max(MIN_POLL, int(self._renew_at - time.monotonic())))
        wait = min(self.options.pull_timeout, left, timedelta(seconds=MAX_POLL))
        inner = (
            f"<tev:Timeout>{format_duration(wait)}</tev:Timeout>"
            f"<tev:MessageLimit>{self.options.message_limit}</tev:MessageLimit>"
        )
        answer, raw = await self.client.call_with_body(
            self.address,
            "tev",
            "PullMessages",
            inner,
            action=PULL_ACTION,
            header=self._header(PULL_ACTION),
            poll=wait.total_seconds(),
        )
        self._schedule(answer, renewed=False)
        events = parse_notifications(self.client.device_id, answer, raw, self.channel_of)
        return events, parse_datetime(text(answer, "CurrentTime"))

    async def renew(self) -> None:
        """``Renew`` for another ``termination``; absolute time if the device refuses a duration."""
        relative = format_duration(self.options.termination)
        try:
            answer = await self._renew(relative)
        except DeviceUnsupported:
            # The device keeps pull points alive while they are polled; ask again later.
            self._renew_at = time.monotonic() + self._fallback_seconds()
            return
        except DeviceProtocolError:
            offset = self.client.clock_offset or timedelta(0)
            answer = await self._renew(format_datetime(datetime.now(UTC) + offset + self.options.termination))
        self.renewals += 1
        self._schedule(answer, renewed=True)

    async def _renew(self, termination: str) -> ET.Element:
        inner = f"<wsnt:TerminationTime>{termination}</wsnt:TerminationTime>"
        return await self.client.call(
            self.address, "wsnt", "Renew", inner, action=RENEW_ACTION, header=self._header(RENEW_ACTION)
        )

    async def close(self) -> None:
        """``Unsubscribe`` (once); failures are ignored, the subscription then simply expires."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.client.call(
                self.address,
                "wsnt",
                "Unsubscribe",
                action=UNSUBSCRIBE_ACTION,
                header=self._header(UNSUBSCRIBE_ACTION),
                timeout=min(self.client.timeout, 3.0),
            )
        except (DeviceError, httpx.HTTPError, RuntimeError, OSError) as exc:
            get_logger(__name__).debug(
                "onvif.unsubscribe_failed", device=self.client.device_id, error=str(exc)
            )

    def _header(self, action: str) -> str:
        return addressing(action, self.address, self._reference_parameters)

    def _schedule(self, answer: ET.Element, *, renewed: bool) -> None:
        """Plan the next renewal from the device's CurrentTime and TerminationTime.

        The lifetime is taken relative to the device's own clock (TerminationTime − CurrentTime),
        so clock skew does not matter; renewal comes at two thirds of it. Times that are
        missing, invalid or not increasing switch to the fixed ``fallback_renew`` period.
        """
        now = time.monotonic()
        current = parse_datetime(text(answer, "CurrentTime"))
        termination = parse_datetime(text(answer, "TerminationTime"))
        if current is None or termination is None or termination <= current:
            if renewed:
                if not self.relative_times_broken:
                    get_logger(__name__).info(
                        "onvif.subscription_times_unusable", device=self.client.device_id
                    )
                self.relative_times_broken = True
                self._renew_at = now + self._fallback_seconds()
            return
        due = now + (termination - current).total_seconds() * 2 / 3
        self._renew_at = due if renewed else min(self._renew_at, due)

    def _fallback_seconds(self) -> float:
        return min(self.options.fallback_renew, self.options.termination * 2 / 3).total_seconds()


def _reference_parameters(element: ET.Element | None) -> str:
    """Reference parameters echoed as SOAP headers, marked ``wsa:IsReferenceParameter``."""
    if element is None:
        return ""
    parts = []
    for parameter in element:
        copy = deepcopy(parameter)
        copy.set(f"{{{NS['wsa']}}}IsReferenceParameter", "true")
        parts.append(ET.tostring(copy, encoding="unicode"))
    return "".join(parts)


async def pull_point_events(
    client: OnvifClient,
    events_url: str,
    channel_of: Callable[[str], int | None],
    options: PullPointOptions,
    open_pull_points: MutableSet[PullPoint],
) -> AsyncGenerator[DeviceEvent, None]:
    """Events of a new pull-point subscription until the consumer stops; then ``Unsubscribe``.

    A subscription the device no longer knows (it rebooted, or the consumer paused longer than
    the subscription lives) is replaced once; a second failure in a row is raised.
    """
    pull_point = PullPoint(client, events_url, channel_of, options)
    await pull_point.create()
    open_pull_points.add(pull_point)
    try:
        replaced = False
        while True:
            try:
                if pull_point.renew_due():
                    await pull_point.renew()
                events, current = await pull_point.pull()
            except DeviceProtocolError as exc:
                if replaced:
                    raise
                get_logger(__name__).info("onvif.resubscribing", device=client.device_id, error=exc.detail)
                open_pull_points.discard(pull_point)
                await pull_point.close()
                pull_point = PullPoint(client, events_url, channel_of, options)
                await pull_point.create()
                open_pull_points.add(pull_point)
                replaced = True
                continue
            replaced = False
            if not events and options.heartbeats:
                yield DeviceEvent(
                    device_id=client.device_id,
                    kind=EventKind.HEARTBEAT,
                    active=True,
                    time=current or datetime.now(UTC),
                    vendor_type="PullMessages",
                )
            for event in events:
                yield event
    finally:
        open_pull_points.discard(pull_point)
        await pull_point.close()
