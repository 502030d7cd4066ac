"""The adapter conformance kit: test classes a provider subclasses to prove an adapter integrates.

Subclass :class:`AdapterConformance` in the adapter's own tests and provide :meth:`target`, an
async context manager that yields a :class:`KitTarget` (an adapter talking to a simulator or a
real device, and what to expect of it)::

    class TestAcme(AdapterConformance):
        vendor = "acme"

        @asynccontextmanager
        async def target(self):
            async with AcmeSimulator(...) as sim:
                yield KitTarget(...)

The kit is capability-gated (R-10.2): each test belongs to one capability; a capability the
adapter declares must pass, one it does not declare is skipped — never the other way round (an
adapter cannot make a declared capability pass by raising ``DeviceUnsupported``). Some checks
run for every adapter: secrets never reach ``repr``, logs or error messages; wrong credentials
are refused once, not retried; transport failures map to :mod:`camhub.errors` (driven through
an ``httpx`` transport, not by patching). Every outcome is written to
``conformance-report.json`` (or ``$CAMHUB_CONFORMANCE_REPORT``), keyed by vendor.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import AbstractAsyncContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import attrs
import httpx
import pytest
import structlog

from camhub._version import __version__
from camhub.adapter import Capability, DeviceAdapter, EventKind, StreamProfile
from camhub.errors import (
    DeviceAuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
    DeviceUnreachable,
    DeviceUnsupported,
)

__all__ = ["REPORT_ENV", "AdapterConformance", "Expectations", "KitTarget", "write_report"]

REPORT_ENV = "CAMHUB_CONFORMANCE_REPORT"
AdapterFactory = Callable[[httpx.AsyncClient, str], DeviceAdapter]


@attrs.frozen(kw_only=True)
class Expectations:
    """What the device under test is known to be; ``None`` means "do not check"."""

    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    mac: str | None = None
    channels: int | None = None
    clock_skew: timedelta | None = None
    #: Tolerance when comparing the measured clock offset with ``clock_skew``.
    clock_tolerance: timedelta = timedelta(seconds=3)
    #: (start, end) of a range that holds recordings on channel 1, when recordings are declared.
    recorded: tuple[datetime, datetime] | None = None


@attrs.frozen(kw_only=True)
class KitTarget:
    """A device under test and the means to exercise it.

    :param adapter: the adapter, logged in with the right password.
    :param password: that password, which the kit hunts for in every output.
    :param make_adapter: builds another adapter for the same device from an HTTP client and
        a password (the kit uses it for wrong credentials and transport failures).
    :param expected: what the device is known to be.
    :param trigger_event: makes the device raise an event (kind, channel); required when the
        adapter declares ``events``.
    :param failed_logins: how many failed logins the device has counted (to prove no retry).
    :param events_ready: tells when the adapter's event subscription is open on the device;
        without it the kit waits a moment before triggering events.
    """

    adapter: DeviceAdapter
    password: str
    make_adapter: AdapterFactory
    expected: Expectations = Expectations()
    trigger_event: Callable[[EventKind, int], None] | None = None
    failed_logins: Callable[[], int] | None = None
    #: True once the device has the adapter's event subscription open (then events are sent).
    events_ready: Callable[[], bool] | None = None


class AdapterConformance:
    """Conformance tests for a :class:`~camhub.adapter.DeviceAdapter`; subclass and provide
    :meth:`target`. Test methods are plain synchronous pytest tests (no plugin needed)."""

    #: The vendor name the report is filed under (the entry-point name).
    vendor: ClassVar[str] = ""
    #: Seconds any single kit check may take.
    timeout: ClassVar[float] = 20.0

    _results: ClassVar[dict[str, dict[str, str]]] = {}

    def target(self) -> AbstractAsyncContextManager[KitTarget]:
        """An async context manager yielding the device under test (subclasses provide it)."""
        raise TypeError(f"{type(self).__name__} must define target()")

    # -- machinery ----------------------------------------------------------------------------
    def _run(
        self, capability: Capability | None, name: str, check: Callable[[KitTarget], Awaitable[None]]
    ) -> None:
        """Run one check against a fresh target, gated on ``capability``, and record it."""

        async def scenario() -> None:
            async with self.target() as target:
                if capability is not None and capability not in type(target.adapter).capabilities:
                    raise _NotDeclared(capability)
                try:
                    async with asyncio.timeout(self.timeout):
                        await check(target)
                finally:
                    await target.adapter.aclose()

        key = f"{capability.value if capability else 'always'}:{name}"
        try:
            asyncio.run(scenario())
        except _NotDeclared as exc:
            self._record(key, "skipped")
            pytest.skip(f"capability {exc.capability.value!r} is not declared by the adapter")
        except BaseException:
            self._record(key, "failed")
            raise
        self._record(key, "passed")

    def _record(self, key: str, outcome: str) -> None:
        vendor = self.vendor or type(self).__name__
        results = AdapterConformance._results.setdefault(vendor, {})
        results[key] = outcome
        write_report("adapters", vendor, results)

    # -- identity, time, channels -------------------------------------------------------------
    def test_identity(self) -> None:
        async def check(t: KitTarget) -> None:
            identity = await t.adapter.identity()
            for field in ("model", "serial", "firmware", "mac"):
                value = getattr(identity, field)
                assert value, f"identity.{field} is empty"
                want = getattr(t.expected, field)
                assert want is None or value == want, f"identity.{field}: {value!r} != {want!r}"
            assert _looks_like_mac(identity.mac), f"identity.mac {identity.mac!r} is not a MAC address"

        self._run(Capability.IDENTITY, "identity", check)

    def test_time(self) -> None:
        async def check(t: KitTarget) -> None:
            before = datetime.now(UTC)
            measured = await t.adapter.time()
            assert measured.device_time.tzinfo is not None, "device_time must be timezone-aware"
            assert measured.device_time.utcoffset() == timedelta(0), "device_time must be in UTC"
            skew = t.expected.clock_skew
            if skew is not None:
                assert abs(measured.offset - skew) <= t.expected.clock_tolerance, (
                    f"offset {measured.offset} is not the device's skew {skew}"
                )
                assert abs(measured.device_time - (before + skew)) <= t.expected.clock_tolerance + timedelta(
                    seconds=self.timeout
                )

        self._run(Capability.TIME, "time", check)

    def test_channels(self) -> None:
        async def check(t: KitTarget) -> None:
            channels = await t.adapter.channels()
            ids = [c.id for c in channels]
            assert ids, "a device has at least one channel"
            assert len(set(ids)) == len(ids), f"duplicate channel ids {ids}"
            assert min(ids) >= 1, "channel numbers are 1-based"
            if t.expected.channels is not None:
                assert len(ids) == t.expected.channels, f"{len(ids)} channels, expected {t.expected.channels}"

        self._run(Capability.CHANNELS, "channels", check)

    # -- media --------------------------------------------------------------------------------
    def test_live_stream_uris(self) -> None:
        async def check(t: KitTarget) -> None:
            for profile in StreamProfile:
                source = await t.adapter.stream(1, profile)
                assert source.url.startswith(("rtsp://", "rtsps://")), f"{profile.value}: {source.url!r}"
                assert "@" not in source.url.split("/")[2], "credentials must not be in MediaSource.url"
                assert t.password not in repr(source)
                assert t.password not in source.url
            main = await t.adapter.stream(1, StreamProfile.MAIN)
            sub = await t.adapter.stream(1, StreamProfile.SUB)
            assert main.url != sub.url, "main and sub streams are different streams"

        self._run(Capability.LIVE, "stream_uris", check)

    def test_snapshot_is_jpeg(self) -> None:
        async def check(t: KitTarget) -> None:
            picture = await t.adapter.snapshot(1)
            assert picture[:2] == b"\xff\xd8", "a snapshot is a JPEG (starts with FF D8)"
            assert len(picture) > 100

        self._run(Capability.SNAPSHOT, "snapshot", check)

    # -- events -------------------------------------------------------------------------------
    def test_events_are_normalised(self) -> None:
        async def check(t: KitTarget) -> None:
            assert t.trigger_event is not None, "a target of an events adapter must offer trigger_event"
            stream = t.adapter.events()
            received: list[Any] = []

            async def collect() -> None:
                async for event in stream:
                    if event.kind is not EventKind.HEARTBEAT:
                        received.append(event)
                        if len(received) == 2:
                            return

            task = asyncio.create_task(collect())
            await _subscribed(t, self.timeout / 2)
            t.trigger_event(EventKind.MOTION, 1)
            await asyncio.sleep(0.2)
            t.trigger_event(EventKind.VIDEO_LOSS, 1)
            await asyncio.wait_for(task, self.timeout / 2)
            assert [e.kind for e in received] == [EventKind.MOTION, EventKind.VIDEO_LOSS]
            for event in received:
                assert event.channel == 1, f"event channel {event.channel}, expected 1"
                assert event.payload, "the vendor payload is kept"
                assert event.time.tzinfo is not None
                assert event.device_id == t.adapter.config.id

        self._run(Capability.EVENTS, "events", check)

    # -- recordings ---------------------------------------------------------------------------
    def test_recordings_search_and_fetch(self) -> None:
        async def check(t: KitTarget) -> None:
            assert t.expected.recorded is not None, (
                "a target of a recordings adapter must set expected.recorded"
            )
            start, end = t.expected.recorded
            spans = await t.adapter.search_recordings(1, start, end)
            assert spans, "recordings were expected in the given range"
            for span in spans:
                assert span.channel == 1
                assert span.start < span.end
                assert span.start < end and span.end > start, "a span overlaps the range asked for"
            source = await t.adapter.recording(spans[0])
            assert "://" in source.url
            assert t.password not in source.url and t.password not in repr(source)

        self._run(Capability.RECORDINGS, "recordings", check)

    # -- health -------------------------------------------------------------------------------
    def test_health(self) -> None:
        async def check(t: KitTarget) -> None:
            health = await t.adapter.health()
            assert health.reachable and health.auth_ok, f"healthy device reported {health}"
            skew = t.expected.clock_skew
            if skew is not None and health.clock_skew is not None:
                assert abs(health.clock_skew - skew) <= t.expected.clock_tolerance

        self._run(Capability.HEALTH, "health", check)

    # -- every adapter ------------------------------------------------------------------------
    def test_wrong_password_is_refused_once(self) -> None:
        async def check(t: KitTarget) -> None:
            before = t.failed_logins() if t.failed_logins else 0
            async with httpx.AsyncClient() as client:
                wrong = t.make_adapter(client, "wrong-" + t.password)
                with _captured_logs() as logs:
                    with pytest.raises(DeviceAuthError) as caught:
                        await _first_declared_call(wrong)
                    await wrong.aclose()
            assert t.password not in str(caught.value)
            assert t.password not in repr(logs)
            if t.failed_logins is not None:
                assert t.failed_logins() - before == 1, "wrong credentials must be tried once, never retried"

        self._run(None, "wrong_password", check)

    def test_secrets_never_shown(self) -> None:
        async def check(t: KitTarget) -> None:
            assert t.password not in repr(t.adapter)
            assert t.password not in repr(t.adapter.config)
            with _captured_logs() as logs:
                for capability in type(t.adapter).capabilities:
                    call = _CALLS.get(capability)
                    if call is not None:
                        try:
                            result = await call(t.adapter)
                        except DeviceError as exc:
                            assert t.password not in str(exc)
                        else:
                            assert t.password not in repr(result)
            assert t.password not in repr(logs)

        self._run(None, "secrets", check)

    @pytest.mark.parametrize(
        ("failure", "expected"),
        [
            ("connect", DeviceUnreachable),
            ("timeout", DeviceTimeout),
            ("garbage", (DeviceProtocolError, DeviceUnsupported)),
            ("server_error", (DeviceProtocolError, DeviceUnsupported)),
        ],
    )
    def test_transport_errors_are_mapped(
        self, failure: str, expected: type[Exception] | tuple[type[Exception], ...]
    ) -> None:
        async def check(t: KitTarget) -> None:
            async with httpx.AsyncClient(transport=httpx.MockTransport(_FAILURES[failure])) as client:
                broken = t.make_adapter(client, t.password)
                started = time.monotonic()
                with pytest.raises(expected) as caught:
                    await _first_declared_call(broken)
                await broken.aclose()
            assert isinstance(caught.value, DeviceError)
            assert caught.value.device_id == t.adapter.config.id, "errors name the device"
            assert time.monotonic() - started < self.timeout

        self._run(None, f"transport_{failure}", check)


class _NotDeclared(Exception):  # a control-flow signal, not an error
    def __init__(self, capability: Capability) -> None:
        self.capability = capability


_CALLS: dict[Capability, Callable[[DeviceAdapter], Awaitable[Any]]] = {
    Capability.IDENTITY: lambda a: a.identity(),
    Capability.TIME: lambda a: a.time(),
    Capability.CHANNELS: lambda a: a.channels(),
    Capability.LIVE: lambda a: a.stream(1),
    Capability.SNAPSHOT: lambda a: a.snapshot(1),
    Capability.HEALTH: lambda a: a.health(),
}


async def _first_declared_call(adapter: DeviceAdapter) -> Any:
    """Call the first declared request/response capability (health only if nothing else)."""
    order = [c for c in _CALLS if c is not Capability.HEALTH] + [Capability.HEALTH]
    for capability in order:
        if capability in type(adapter).capabilities:
            return await _CALLS[capability](adapter)
    raise AssertionError("the adapter declares no request/response capability to exercise")


def _connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def _garbage(request: httpx.Request) -> httpx.Response:
    # A streamed body, as a real transport gives (``content=`` would be pre-read).
    body = httpx.ByteStream(b"\x00\xff<not xml, json or key=value\x00")
    return httpx.Response(200, stream=body, headers={"Content-Type": "text/plain"})


def _server_error(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, stream=httpx.ByteStream(b"Internal Server Error"))


_FAILURES: dict[str, Callable[[httpx.Request], httpx.Response]] = {
    "connect": _connect_error,
    "timeout": _timeout,
    "garbage": _garbage,
    "server_error": _server_error,
}


async def _subscribed(target: KitTarget, timeout: float) -> None:
    """Wait until the device has the event subscription open (or a moment, if it cannot tell)."""
    if target.events_ready is None:
        await asyncio.sleep(0.5)
        return
    deadline = time.monotonic() + timeout
    while not target.events_ready():
        if time.monotonic() > deadline:
            raise AssertionError("the adapter did not open its event subscription in time")
        await asyncio.sleep(0.02)


def _looks_like_mac(value: str) -> bool:
    digits = value.replace(":", "").replace("-", "").replace(".", "")
    return len(digits) == 12 and all(c in "0123456789abcdefABCDEF" for c in digits)


@contextmanager
def _captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with structlog.testing.capture_logs() as logs:
        yield logs


def write_report(section: str, name: str, results: dict[str, str]) -> None:
    """Record one subject's kit results under ``section`` (``adapters``, ``storage``) of
    ``conformance-report.json`` (or ``$CAMHUB_CONFORMANCE_REPORT``), keeping the other entries."""
    path = Path(os.environ.get(REPORT_ENV, "conformance-report.json"))
    try:
        report = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError):
        report = {}
    report.setdefault("camhub", __version__)
    entries = report.setdefault(section, {})
    entries[name] = {
        "results": dict(sorted(results.items())),
        "passed": sum(v == "passed" for v in results.values()),
        "failed": sum(v == "failed" for v in results.values()),
        "skipped": sum(v == "skipped" for v in results.values()),
    }
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
