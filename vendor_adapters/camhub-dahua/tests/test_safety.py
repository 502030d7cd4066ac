"""Credentials, lockout and hostile answers: the adapter fails safe, fast, bounded and quiet."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from aiohttp import web
from dahua_support import IPC_PASSWORD, NVR_PASSWORD, adapter_for, nvr, rig, run, take_events

from camhub.devices import ClientPool
from camhub.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceTimeout, DeviceUnsupported
from camhub.model import DeviceKind
from camhub.secrets import Secret
from camhub.testing.dahua import DahuaSimulator
from camhub.testing.simulator import default_recordings
from camhub_dahua import DahuaAdapter, DahuaConfig

WRONG = "wrong-" + IPC_PASSWORD
HUNDRED_MB = 100 * 1024 * 1024


def every_call(adapter: DahuaAdapter) -> list[Callable[[], Awaitable[Any]]]:
    return [
        adapter.identity,
        adapter.time,
        adapter.channels,
        lambda: adapter.snapshot(1),
        lambda: adapter.search_recordings(1, _utc_now() - timedelta(hours=1), _utc_now()),
        lambda: take_events(adapter, 1),
    ]


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -- credentials ----------------------------------------------------------------------------------
def test_a_wrong_password_costs_exactly_one_failed_login() -> None:
    async def scenario() -> None:
        async with rig() as r:
            wrong = adapter_for(r.sim, r.client, WRONG)
            # Several callers at once: the login gate lets one try, the rest learn from it.
            results = await asyncio.gather(*(call() for call in every_call(wrong)), return_exceptions=True)
            assert all(isinstance(result, DeviceAuthError) for result in results), results
            assert r.sim.failed_logins == 1
            asked = len(r.sim.requests)
            for call in every_call(wrong):
                with pytest.raises(DeviceAuthError, match="does not retry"):
                    await call()
            health = await wrong.health()
            assert (health.reachable, health.auth_ok) == (True, False)
            assert (r.sim.failed_logins, len(r.sim.requests)) == (1, asked), "nothing more was sent"

    run(scenario)


def test_the_lock_is_recognised_and_then_nothing_is_sent() -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.sim.faults.lockout_after = 3
            r.sim.failed_logins = 2  # two failures elsewhere already
            wrong = adapter_for(r.sim, r.client, WRONG)
            with pytest.raises(DeviceAuthError, match="locked the account") as caught:
                await wrong.identity()
            assert "User Locked!" in str(caught.value)
            assert r.sim.failed_logins == 3
            asked = len(r.sim.requests)
            for call in every_call(wrong):
                with pytest.raises(DeviceAuthError, match="locked"):
                    await call()
            assert "locked" in (await wrong.health()).error
            assert (r.sim.failed_logins, len(r.sim.requests)) == (3, asked)

    run(scenario)


def test_a_locked_account_is_not_sent_the_password_even_when_it_is_right() -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.sim.faults.lockout_after = 5
            r.sim.failed_logins = 5
            with pytest.raises(DeviceAuthError, match="locked the account"):
                await r.adapter.time()
            # One request, answered 401 "User Locked!": its Digest challenge was not answered.
            assert len(r.sim.requests) == 1
            assert r.sim.failed_logins == 5
            health = await r.adapter.health()
            assert not health.auth_ok and "locked" in health.error
            assert len(r.sim.requests) == 1

    run(scenario)


def test_the_password_never_shows() -> None:
    async def scenario() -> list[str]:
        shown: list[str] = []
        async with rig(nvr()) as r:
            r.sim.recordings = default_recordings(r.sim, hours=1)
            with structlog.testing.capture_logs() as logs:
                shown += [
                    repr(r.adapter),
                    repr(r.adapter._cgi),
                    repr(r.adapter._cgi.auth),
                    repr(r.adapter.config),
                ]
                shown.append(repr(await r.adapter.identity()))
                shown.append(repr(await r.adapter.health()))
                shown.append(repr(await r.adapter.stream(1)))
                spans = await r.adapter.search_recordings(1, r.sim.now() - timedelta(hours=2), r.sim.now())
                shown.append(repr(await r.adapter.recording(spans[0])))
                shown.append(repr(await take_events(r.adapter, 1, sim=r.sim, skip_heartbeats=False)))
                # A wrong password, then the right one on the account it locked.
                for password, lockout in (("bad-" + NVR_PASSWORD, None), (NVR_PASSWORD, 1)):
                    r.sim.faults.lockout_after = lockout
                    refused = adapter_for(r.sim, r.client, password)
                    for call in every_call(refused):
                        try:
                            await call()
                        except DeviceError as exc:
                            shown += [str(exc), repr(exc)]
                    shown.append(repr(await refused.health()))
            shown.append(repr(logs))
            assert any("dahua.login_refused" in repr(entry) for entry in logs)
        return shown

    shown = run(scenario)
    for text in shown:
        assert NVR_PASSWORD not in text
        assert "pass%word" not in text and "pass%25word" not in text


# -- what the device answers ------------------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 400])
def test_an_error_body_is_a_refusal_not_data(status: int) -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.sim.error_status = status
            r.sim.refuse.add("global.cgi:getCurrentTime")
            with pytest.raises(DeviceUnsupported, match=rf"Error \(Bad Request!, HTTP {status}\)"):
                await r.adapter.time()
            assert r.adapter._cgi.refused is None, "a refused request is not a refused login"
            assert (await r.adapter.identity()).serial == r.sim.profile.serial

    run(scenario)


def test_a_slow_loris_device_times_out() -> None:
    async def scenario() -> None:
        async with rig(timeout=1.0) as r:
            r.sim.faults.trickle_bytes_per_second = 1
            started = time.monotonic()
            with pytest.raises(DeviceTimeout, match="within 1 s"):
                await r.adapter.identity()
            assert time.monotonic() - started < 2.5
            assert r.sim.failed_logins == 0

    run(scenario)


@asynccontextmanager
async def tiny_device(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[int]:
    """A bare aiohttp server (no authentication) answering every path with ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def bare_adapter(port: int, client: httpx.AsyncClient) -> DahuaAdapter:
    config = DahuaConfig(
        vendor="dahua", id="dahua-1", kind=DeviceKind.CAMERA, host="127.0.0.1", port=port, credentials="site",
        timeout=5.0,
    )  # fmt: skip
    return DahuaAdapter(config, client, username="admin", password=Secret(IPC_PASSWORD))


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_a_100_mb_answer_is_cut_at_the_limit_without_being_held(declared: bool) -> None:
    sent = [0]

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        if declared:
            response.content_length = HUNDRED_MB
        await response.prepare(request)
        chunk = b"table.x=" + b"y" * (64 * 1024 - 10) + b"\r\n"
        try:
            while sent[0] < HUNDRED_MB:
                await response.write(chunk)
                sent[0] += len(chunk)
        except ConnectionError:
            pass
        return response

    async def scenario() -> None:
        async with tiny_device(huge) as port, ClientPool() as pool:
            client = pool.client()
            adapter = bare_adapter(port, client)
            tracemalloc.start()
            try:
                started = time.monotonic()
                with pytest.raises(DeviceProtocolError, match="exceeds the limit"):
                    await adapter.identity()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert time.monotonic() - started < 5
            assert peak < 12 * 1024 * 1024, f"{peak} bytes held"
            with pytest.raises(DeviceProtocolError, match="exceeds the limit"):
                await adapter.snapshot(1)
        assert sent[0] < HUNDRED_MB // 2, "the adapter stopped reading"

    run(scenario)


@pytest.mark.parametrize(
    ("body", "status", "error", "match"),
    [
        (b"\x00\xff<html>not key=value</html>", 200, DeviceProtocolError, "no 'type='"),
        (b"Error\r\nInvalid Authority!\r\n", 200, DeviceAuthError, "may not do this"),
        (b"Error\r\nUser Locked!\r\n", 200, DeviceAuthError, "locked the account"),
        (b"Authority:check failure.", 403, DeviceUnsupported, "HTTP 403"),
        (b"Internal Error", 500, DeviceProtocolError, "HTTP 500"),
    ],
)
def test_odd_answers_are_mapped(body: bytes, status: int, error: type[DeviceError], match: str) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body)

    async def scenario() -> None:
        async with tiny_device(answer) as port, ClientPool() as pool:
            client = pool.client()
            adapter = bare_adapter(port, client)
            with pytest.raises(error, match=match) as caught:
                await adapter.identity()
            assert caught.value.device_id == "dahua-1"
            latched = adapter._cgi.refused is not None
            assert latched == ("Locked" in body.decode("latin-1")), "only a lock stops the adapter"

    run(scenario)


def test_a_simulator_lock_answer_carries_a_challenge_and_the_reason() -> None:
    async def scenario() -> None:
        async with DahuaSimulator() as sim, ClientPool() as pool:
            client = pool.client()
            sim.faults.lockout_after = 0
            answer = await client.get(f"{sim.url}/cgi-bin/magicBox.cgi?action=getSerialNo")
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"].startswith("Digest ")
            assert answer.text == "Error\r\nUser Locked!\r\n"

    run(scenario)
