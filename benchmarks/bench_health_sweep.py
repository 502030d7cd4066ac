"""Health sweep of 1,000 simulated devices from one process, against bare HTTP round trips (issue #3).

Run it as a script::

    /work/venv/bin/python benchmarks/bench_health_sweep.py [--devices 1000] [--tracemalloc]
        [--plan pool:200:4,aiohttp-transport:200:0] [--profile FILE]

A sweep is what camhub's health monitor does for every device: ``time()``, ``identity()`` and
``channels()`` of its adapter, one call after another inside a task, devices concurrently (at
most CONCURRENCY at once, an ``asyncio.Semaphore``). ``time()`` comes first so that an ONVIF
adapter measures the device clock once, not again for its first WS-Security token.

Separate processes, so that no one's CPU is counted against another's:

- the *devices*: one process running a simulator per device (40 % Hikvision, 30 % Dahua, 30 %
  ONVIF, each with real HTTP Digest; ONVIF with WS-Security *and* Digest, the configuration's
  default) on 127.0.0.1, and the bare endpoint: one aiohttp application listening on one more
  port per device, answering ``GET /ping`` with ``ok``, no authentication. No media servers (a
  sweep reads no stream). It reports its own CPU time and the requests it answered.
- a *sweeper* (a fresh process each, open-files limit raised, logging configured as the
  ``camhub`` command does it: info level, JSON on stderr) per subject and plan entry:

  - ``camhub``: loads the configuration written by :func:`camhub.testing.fleet.fleet_yaml`,
    opens every adapter with :func:`camhub.devices.open_adapter` on one
    :class:`camhub.devices.ClientPool` (one shared ``httpx.AsyncClient``), then runs a cold
    sweep (new connections, Digest challenges, ONVIF clock measurement) and a warm one;
  - ``bare``: the peer the issue names, the same number of devices, three bare ``GET`` round
    trips per device with the same ``ClientPool``'s httpx client and the same semaphore;
  - ``aiohttp``: the same three round trips with one ``aiohttp.ClientSession``: the floor of
    HTTP from Python on this machine.

A plan entry is POOL:CONCURRENCY:LIMIT, POOL being ``pool`` (``ClientPool`` as it is, LIMIT
connections per device) or ``aiohttp-transport`` (the alternative measured beside it, LIMIT
connections in all, 0 for none; see :func:`client_pool`), under the same single httpx client:
the adapters are not changed. The bare aiohttp floor has no connection limit (the semaphore
bounds it).

Measured per sweep: wall time, process CPU (user + system), the rise of peak RSS
(``ru_maxrss``), the devices' CPU and the HTTP requests they answered (401 challenges
included), the median time of a device's three calls, errors, and the machine's 1-minute load
average after it (other work on a shared machine inflates wall times first). Per device, the
adapter set-up: ``open_adapter`` (configuration lookup included) and the adapter constructor
alone, the first of each vendor apart, and the making of a device's connection pool (on its
first request). ``--tracemalloc`` repeats the camhub sweeps of the plan's most concurrent
entry in one more process under tracemalloc, for the peak Python heap (its timings are not
used); ``--profile FILE`` runs every sweeper under cProfile and prints where the time goes.

The machine is shared and noisy: read the ratios against the peers of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

PASSWORD = "camhub-sim-1"
#: Share of each vendor in the fleet (the rest of the rounding goes to the first).
MIX = (("hikvision", 0.4), ("dahua", 0.3), ("onvif", 0.3))
#: Bare round trips per device: one for each of identity, time and channels.
BARE_REQUESTS = 3
#: What the default run measures (POOL:CONCURRENCY:LIMIT): ClientPool as it is (4 connections per
#: device, its default), and the aiohttp transport sketched beside it (no overall limit).
DEFAULT_PLAN = "pool:200:4,aiohttp-transport:200:0"

Job = Callable[[], Awaitable[None]]


# -- process helpers ----------------------------------------------------------------------------
def raise_open_files() -> int:
    """Raise the soft open-files limit to the hard one (a sweep holds a socket per device)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def counts_for(devices: int) -> dict[str, int]:
    counts = {vendor: int(devices * share) for vendor, share in MIX}
    counts[MIX[0][0]] += devices - sum(counts.values())
    return counts


# -- the devices ----------------------------------------------------------------------------------
async def serve(config: Path, bare_first_port: int) -> None:
    """Run a simulator per configured device and the bare endpoint until stdin closes."""
    raise_open_files()
    from aiohttp import web

    from camhub.config import load_config
    from camhub.testing.dahua import DahuaSimulator
    from camhub.testing.hikvision import HikvisionSimulator
    from camhub.testing.onvif import OnvifSimulator
    from camhub.testing.simulator import DeviceProfile, SimulatedDevice

    province = load_config(config)
    simulators: list[tuple[str, SimulatedDevice]] = []
    for number, device in enumerate(province.devices):
        account = province.credentials[device.credentials]
        profile = DeviceProfile(
            model=f"SIM-{device.vendor.upper()}",
            serial=f"SN{number:08d}",
            firmware="1.0.0",
            mac=f"02:00:00:00:{number // 256:02x}:{number % 256:02x}",
            name=device.id,
            channels=max(1, len(device.effective_channels())),
            username=account.username,
            password=account.password.reveal(),
        )
        rtsp = f"rtsp://127.0.0.1:{device.rtsp_port}"
        simulator: SimulatedDevice
        if device.vendor == "hikvision":
            simulator = HikvisionSimulator(profile, rtsp_url=rtsp, port=device.port)
        elif device.vendor == "dahua":
            simulator = DahuaSimulator(profile, rtsp_url=rtsp, port=device.port)
        else:
            simulator = OnvifSimulator(
                profile, rtsp_url=rtsp, port=device.port, auth=getattr(device, "auth", "both")
            )
        await simulator.start()
        simulators.append((device.vendor, simulator))

    bare_requests = 0

    async def ping(request: web.Request) -> web.Response:
        nonlocal bare_requests
        bare_requests += 1
        return web.Response(body=b"ok", content_type="text/plain")

    bare = web.Application()
    bare.router.add_get("/ping", ping)
    bare_runner = web.AppRunner(bare, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await bare_runner.setup()
    for index in range(len(province.devices)):
        await web.TCPSite(bare_runner, "127.0.0.1", bare_first_port + index, backlog=1024).start()

    async def stats(request: web.Request) -> web.Response:
        requests: Counter[str] = Counter()
        for vendor, simulator in simulators:
            requests[vendor] += len(simulator.requests)
        return web.json_response({"cpu": cpu_seconds(), "requests": dict(requests), "bare": bare_requests})

    control = web.Application()
    control.router.add_get("/stats", stats)
    control_runner = web.AppRunner(control, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await control_runner.setup()
    site = web.TCPSite(control_runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"control": control_runner.addresses[0][1], "rss_mib": rss_mib()}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await control_runner.cleanup()
    await bare_runner.cleanup()
    for _, simulator in simulators:
        await simulator.stop()


# -- the sweeper ---------------------------------------------------------------------------------
class Control:
    """The devices' own figures (CPU, requests answered), read outside the measured intervals."""

    def __init__(self, port: int) -> None:
        import httpx

        self._client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False)

    async def stats(self) -> dict[str, Any]:
        response = await self._client.get("/stats")
        result: dict[str, Any] = response.json()
        return result

    async def aclose(self) -> None:
        await self._client.aclose()


def client_pool(kind: str, max_connections: int) -> Any:
    """The :class:`~camhub.devices.ClientPool` to sweep with: as it is, or on an aiohttp transport.

    Every kind gives the adapters one shared ``httpx.AsyncClient``, as camhub does; only the
    transport under it differs, so the adapters see no difference.

    - ``pool``: ``ClientPool`` as it is: camhub's HTTP/1.1 transport with a small connection
      pool per device (:class:`~camhub.devices.DevicePoolTransport`), ``max_connections`` per
      device.
    - ``aiohttp-transport``: the alternative measured beside it, a sketch: a transport sending
      each request with one ``aiohttp.ClientSession`` (its connector looks connections up by
      host; at most ``max_connections`` in all) under the same :class:`~camhub.devices.DeviceClient`;
      httpx still builds the requests, runs Digest and reads the answers.
    """
    import ssl

    import aiohttp
    import httpx
    from yarl import URL

    from camhub.devices import ClientPool, DeviceClient

    if kind == "pool":
        return ClientPool(connections_per_device=max_connections, keepalive_expiry=60.0)

    class AiohttpBody(httpx.AsyncByteStream):
        def __init__(self, response: aiohttp.ClientResponse) -> None:
            self._response = response

        async def __aiter__(self) -> Any:
            try:
                async for chunk in self._response.content.iter_any():
                    yield chunk
            except aiohttp.ClientError as exc:
                raise httpx.ReadError(str(exc)) from exc

        async def aclose(self) -> None:
            self._response.release()

    class AiohttpTransport(httpx.AsyncBaseTransport):
        def __init__(self, verify: bool) -> None:
            self._ssl = ssl.create_default_context() if verify else False
            self._session: aiohttp.ClientSession | None = None

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        limit=max_connections, ssl=self._ssl, keepalive_timeout=60
                    ),
                    auto_decompress=False,  # httpx decodes
                )
            timeout = request.extensions.get("timeout", {})
            try:
                response = await self._session.request(
                    request.method,
                    URL(str(request.url), encoded=True),
                    headers=list(request.headers.multi_items()),
                    data=await request.aread() or None,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        connect=timeout.get("connect"), sock_read=timeout.get("read")
                    ),
                )
            except aiohttp.ClientConnectorError as exc:
                raise httpx.ConnectError(str(exc), request=request) from exc
            except TimeoutError as exc:
                raise httpx.ReadTimeout(str(exc), request=request) from exc
            except aiohttp.ClientError as exc:
                raise httpx.ReadError(str(exc), request=request) from exc
            return httpx.Response(
                response.status,
                headers=list(response.raw_headers),
                stream=AiohttpBody(response),
                request=request,
            )

        async def aclose(self) -> None:
            if self._session is not None:
                await self._session.close()

    class AiohttpPool(ClientPool):
        def client(self, *, verify: bool = True) -> httpx.AsyncClient:
            client = self._clients.get(verify)
            if client is None:
                client = DeviceClient(
                    transport=AiohttpTransport(verify),
                    trust_env=False,
                    timeout=self._timeout,
                    follow_redirects=False,
                )
                self._clients[verify] = client
            return client

    return AiohttpPool()


def pool_setup_us(pool: Any, devices: int) -> float | None:
    """Median µs to make one more device's connection pool (``ClientPool`` only), as its first
    request does; made for hosts never swept, then closed unused."""
    from camhub.devices import DevicePoolTransport

    transport = pool.client()._transport
    if not isinstance(transport, DevicePoolTransport):
        return None
    times = []
    for number in range(devices):
        begun = time.perf_counter_ns()
        transport.pool_for(b"http", f"setup-{number}.invalid".encode(), 80)
        times.append((time.perf_counter_ns() - begun) / 1000)
    return statistics.median(times[1:])


def summarise_error(vendor: str, exc: Exception) -> str:
    """The error without the device's name, so that alike errors count together."""
    detail = str(exc)
    for word in detail.split():
        if word.rstrip(":,").startswith(f"{vendor}-"):
            detail = detail.replace(word.rstrip(":,"), "N")
    return f"{vendor}: {type(exc).__name__}: {detail[:160]}"


async def sweep(
    name: str, jobs: list[tuple[str, Job]], concurrency: int, control: Control, traced: bool
) -> dict[str, Any]:
    """Run every job, at most ``concurrency`` at once; wall, CPU, memory, errors, the devices' work."""
    semaphore = asyncio.Semaphore(concurrency)
    errors: Counter[str] = Counter()
    latency: dict[str, list[float]] = {}

    async def one(vendor: str, job: Job) -> None:
        async with semaphore:
            started = time.perf_counter()
            try:
                await job()
            except Exception as exc:  # noqa: BLE001 - counted and reported: a sweep with errors is void
                errors[summarise_error(vendor, exc)] += 1
            latency.setdefault(vendor, []).append(time.perf_counter() - started)

    gc.collect()
    before = await control.stats()
    heap_before = 0
    if traced:
        tracemalloc.reset_peak()
        heap_before = tracemalloc.get_traced_memory()[0]
    peak_before = peak_rss_mib()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(one(vendor, job) for vendor, job in jobs))
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    result: dict[str, Any] = {
        "sweep": name,
        "wall": wall,
        "cpu": cpu,
        "peak_rss_rise_mib": peak_rss_mib() - peak_before,
        "rss_after_mib": rss_mib(),
        "errors": dict(errors),
        "load": os.getloadavg()[0],
        "device_ms": {v: 1000 * statistics.median(times) for v, times in latency.items()},
    }
    if traced:
        result["heap_peak_mib"] = (tracemalloc.get_traced_memory()[1] - heap_before) / 2**20
    after = await control.stats()
    result["server_cpu"] = after["cpu"] - before["cpu"]
    result["requests"] = {
        vendor: after["requests"].get(vendor, 0) - before["requests"].get(vendor, 0)
        for vendor in after["requests"]
    }
    result["bare_requests"] = after["bare"] - before["bare"]
    return result


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One sweeper process: set up, then a cold and a warm sweep of ``args.subject``."""
    raise_open_files()
    from camhub.config import load_config
    from camhub.devices import open_adapter
    from camhub.log import configure_logging
    from camhub.plugins import PluginHost

    configure_logging(json=True, level="info")
    traced = bool(args.tracemalloc)
    if traced:
        tracemalloc.start()
    control = Control(args.control)
    report: dict[str, Any] = {
        "subject": args.subject,
        "pool": args.pool,
        "concurrency": args.concurrency,
        "max_connections": args.max_connections,
    }
    started = time.perf_counter()
    host = PluginHost.from_installed()
    province = load_config(args.config, host=host)
    report["config_load_s"] = time.perf_counter() - started
    devices = province.devices
    # (aiohttp's peer sends with its own session; it makes the same ClientPool all the same.)
    pool = client_pool("pool" if args.pool == "own" else args.pool, args.max_connections)
    started = time.perf_counter()
    client = pool.client_for(devices[0])  # the shared httpx client (its TLS context, once)
    report["pool_client_ms"] = 1000 * (time.perf_counter() - started)
    report["rss_before_mib"] = rss_mib()
    jobs: list[tuple[str, Job]] = []
    session = None

    if args.subject == "camhub":
        # Set-up of every device's adapter: open_adapter (configuration lookup + constructor),
        # timed one by one; then the constructor alone, on a second set thrown away.
        opened: dict[str, list[float]] = {}
        adapters = []
        for device in devices:
            begun = time.perf_counter_ns()
            adapter = open_adapter(province, device.id, host, pool)
            opened.setdefault(device.vendor, []).append((time.perf_counter_ns() - begun) / 1000)
            adapters.append(adapter)
        built: dict[str, list[float]] = {}
        for device in devices:
            spec = host.adapters[device.vendor]
            account = province.credentials[device.credentials]
            begun = time.perf_counter_ns()
            spec.adapter_type(device, client, username=account.username, password=account.password)
            built.setdefault(device.vendor, []).append((time.perf_counter_ns() - begun) / 1000)
        report["setup_us"] = {
            vendor: {
                "first": times[0],
                "median": statistics.median(times[1:]),
                "mean": statistics.fmean(times[1:]),
                "max": max(times[1:]),
                "constructor_median": statistics.median(built[vendor][1:]),
                "n": len(times),
            }
            for vendor, times in opened.items()
        }
        report["setup_total_ms"] = sum(sum(times) for times in opened.values()) / 1000
        report["rss_adapters_mib"] = rss_mib()

        def health(adapter: Any) -> Job:
            async def job() -> None:
                await adapter.time()
                await adapter.identity()
                await adapter.channels()

            return job

        jobs = [(a.config.vendor, health(a)) for a in adapters]
    elif args.subject == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.max_connections, keepalive_timeout=60)
        )

        def bare_aiohttp(url: str) -> Job:
            async def job() -> None:
                for _ in range(BARE_REQUESTS):
                    async with session.get(url) as response:
                        if response.status != 200 or await response.read() != b"ok":
                            raise RuntimeError(f"bad answer: HTTP {response.status}")

            return job

        jobs = [
            (device.vendor, bare_aiohttp(f"http://127.0.0.1:{args.bare_first_port + index}/ping"))
            for index, device in enumerate(devices)
        ]
    else:
        import httpx

        def bare(url: str) -> Job:
            async def job() -> None:
                for _ in range(BARE_REQUESTS):
                    response = await client.get(url)
                    if response.status_code != 200 or response.content != b"ok":
                        raise httpx.HTTPStatusError("bad answer", request=response.request, response=response)

            return job

        jobs = [
            (device.vendor, bare(f"http://127.0.0.1:{args.bare_first_port + index}/ping"))
            for index, device in enumerate(devices)
        ]

    profiler = cProfile.Profile() if args.profile else None
    report["sweeps"] = []
    for name in ("cold", "warm"):
        if profiler is not None:
            profiler.enable()
        report["sweeps"].append(await sweep(name, jobs, args.concurrency, control, traced))
        if profiler is not None:
            profiler.disable()
    if profiler is not None:
        profiler.dump_stats(args.profile)
    if args.subject == "camhub":
        report["pool_setup_us"] = pool_setup_us(pool, len(devices))
    await pool.aclose()
    if session is not None:
        await session.close()
    await control.aclose()
    return report


# -- orchestration -------------------------------------------------------------------------------
def run_sweeper(args: argparse.Namespace, config: Path, control: int, **choice: Any) -> Any:
    command = [
        sys.executable,
        __file__,
        "--role",
        "sweep",
        "--config",
        str(config),
        "--control",
        str(control),
        "--bare-first-port",
        str(args.bare_first_port),
        "--subject",
        choice["subject"],
        "--pool",
        choice["pool"],
        "--concurrency",
        str(choice["concurrency"]),
        "--max-connections",
        str(choice["max_connections"]),
    ]
    if choice.get("tracemalloc"):
        command.append("--tracemalloc")
    if choice.get("profile"):
        command += ["--profile", str(choice["profile"])]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def key_of(report: dict[str, Any]) -> str:
    limit = report["max_connections"]
    shown = f"{limit} per device" if report["pool"] == "pool" else f"{limit or 'no'} limit"
    return f"{report['pool']}, {report['concurrency']} at once, {shown}"


def print_results(results: list[dict[str, Any]], heap: dict[str, Any] | None, devices: int) -> None:
    print(
        "\n| subject | pool | concurrency | max connections | sweep | wall s | CPU s | devices' CPU s | "
        "requests | peak RSS rise MiB | errors | load |"
    )
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for report in results:
        for row in report["sweeps"]:
            requests = sum(row["requests"].values()) + row["bare_requests"]
            print(
                f"| {report['subject']} | {report['pool']} | {report['concurrency']} | "
                f"{report['max_connections']} | {row['sweep']} | {row['wall']:.2f} | {row['cpu']:.2f} | "
                f"{row['server_cpu']:.2f} | {requests} | {row['peak_rss_rise_mib']:.1f} | "
                f"{sum(row['errors'].values())} | {row['load']:.0f} |"
            )
    peers = {key_of(r): r for r in results if r["subject"] == "bare"}
    floors = {r["concurrency"]: r for r in results if r["subject"] == "aiohttp"}
    print(
        "\n| camhub | sweep | wall / bare httpx | CPU / bare httpx | wall / bare aiohttp | "
        "CPU / bare aiohttp | camhub requests per device (bare: 3) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for report in results:
        if report["subject"] != "camhub":
            continue
        peer = peers.get(key_of(report))
        floor = floors.get(report["concurrency"])
        for index, mine in enumerate(report["sweeps"]):
            cells = []
            for other in (peer, floor):
                if other is None:
                    cells += ["", ""]
                else:
                    theirs = other["sweeps"][index]
                    cells += [f"{mine['wall'] / theirs['wall']:.2f}", f"{mine['cpu'] / theirs['cpu']:.2f}"]
            print(
                f"| {key_of(report)} | {mine['sweep']} | {' | '.join(cells)} | "
                f"{sum(mine['requests'].values()) / devices:.1f} |"
            )
    counts = counts_for(devices)
    for report in results:
        print(f"\n{report['subject']}, {key_of(report)}:")
        for row in report["sweeps"]:
            if report["subject"] == "camhub":
                shown = ", ".join(f"{v} {n / counts[v]:.1f}" for v, n in sorted(row["requests"].items()))
                print(f"  {row['sweep']}: requests per device (401 challenges included): {shown}")
            times = ", ".join(f"{v} {ms:.0f}" for v, ms in sorted(row["device_ms"].items()))
            print(f"  {row['sweep']}: median ms per device, semaphore held: {times}")
            for error, n in sorted(row["errors"].items(), key=lambda item: -item[1]):
                print(f"  {row['sweep']}: error x{n}: {error}")
    camhub = next((r for r in results if r["subject"] == "camhub"), None)
    if camhub is None:
        return
    print(
        f"\nAdapter set-up (µs per device; {camhub['setup_total_ms']:.1f} ms for all {devices}; "
        f"the shared httpx client made once before, in {camhub['pool_client_ms']:.1f} ms):"
    )
    print("\n| vendor | devices | first | median after the first | mean | max | constructor alone (median) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for vendor, row in sorted(camhub["setup_us"].items()):
        print(
            f"| {vendor} | {row['n']} | {row['first']:.0f} | {row['median']:.1f} | {row['mean']:.1f} | "
            f"{row['max']:.0f} | {row['constructor_median']:.1f} |"
        )
    if camhub.get("pool_setup_us") is not None:
        print(
            f"\nA device's connection pool, made on its first request: {camhub['pool_setup_us']:.1f} µs (median)"
        )
    print(
        f"\nConfiguration load {camhub['config_load_s']:.2f} s; sweeper RSS {camhub['rss_before_mib']:.0f} MiB "
        f"before the adapters, {camhub['rss_adapters_mib']:.0f} MiB with them, "
        + ", ".join(f"{r['rss_after_mib']:.0f} MiB after the {r['sweep']} sweep" for r in camhub["sweeps"])
    )
    if heap is not None:
        shown = ", ".join(f"{r['sweep']} {r['heap_peak_mib']:.1f} MiB" for r in heap["sweeps"])
        print(f"Peak Python heap above the set-up during a sweep (tracemalloc, {key_of(heap)}): {shown}")


def profile_path(stem: str, choice: dict[str, Any]) -> str:
    return f"{stem}.{choice['subject']}-{choice['pool']}-{choice['concurrency']}-{choice['max_connections']}"


def split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def orchestrate(args: argparse.Namespace) -> None:
    raise_open_files()
    from camhub.testing.fleet import fleet_yaml

    choices: list[dict[str, Any]] = []
    for entry in split(args.plan):
        pool, concurrency, limit = entry.split(":")
        for subject in split(args.subjects):
            choice: dict[str, Any] = {"subject": subject, "pool": pool, "concurrency": int(concurrency)}
            choice["max_connections"] = int(limit)
            if subject == "aiohttp":  # its own connection pool, no limit: once per concurrency
                choice["pool"] = "own"
                choice["max_connections"] = 0
                if choice in choices:
                    continue
            choices.append(choice)
    with tempfile.TemporaryDirectory(prefix="camhub-sweep-") as directory:
        config = Path(directory) / "fleet.yaml"
        (Path(directory) / "password").write_text(PASSWORD + "\n", encoding="utf-8")
        config.write_text(
            fleet_yaml(counts_for(args.devices), first_port=args.first_port, secret_file="password"),
            encoding="utf-8",
        )
        print(f"starting {args.devices} simulated devices ({counts_for(args.devices)}) …", file=sys.stderr)
        started = time.perf_counter()
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--role",
                "serve",
                "--config",
                str(config),
                "--bare-first-port",
                str(args.bare_first_port),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        results: list[dict[str, Any]] = []
        heap = None
        try:
            assert server.stdout is not None
            ready = json.loads(server.stdout.readline())
            print(
                f"devices up in {time.perf_counter() - started:.1f} s ({ready['rss_mib']:.0f} MiB)",
                file=sys.stderr,
            )
            for choice in choices:
                print(f"sweeping: {choice} …", file=sys.stderr)
                profile = profile_path(args.profile, choice) if args.profile else ""
                results.append(run_sweeper(args, config, ready["control"], profile=profile, **choice))
            if args.tracemalloc:
                choice = max((c for c in choices if c["subject"] == "camhub"), key=lambda c: c["concurrency"])
                print(f"sweeping under tracemalloc: {choice} …", file=sys.stderr)
                heap = run_sweeper(args, config, ready["control"], tracemalloc=True, **choice)
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(timeout=60)
    print_results(results, heap, args.devices)
    for choice in choices if args.profile else []:
        print(f"\n== cProfile of both sweeps: {choice}")
        stats = pstats.Stats(profile_path(args.profile, choice))
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(35)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument(
        "--subjects", default="aiohttp,bare,camhub", help="bare (httpx), camhub, aiohttp (comma-separated)"
    )
    parser.add_argument(
        "--plan",
        default=DEFAULT_PLAN,
        help="comma-separated POOL:CONCURRENCY:LIMIT; POOL is pool (ClientPool as it is, LIMIT per "
        "device) or aiohttp-transport (the alternative sketched, LIMIT in all, 0: none; see client_pool)",
    )
    parser.add_argument("--first-port", type=int, default=21000, help="devices: this port + 2n (+1: RTSP)")
    parser.add_argument("--bare-first-port", type=int, default=24000, help="the bare endpoint: this port + n")
    parser.add_argument("--tracemalloc", action="store_true", help="also measure the peak Python heap")
    parser.add_argument("--profile", default="", help="cProfile the sweeps into files named FILE.<choice>")
    parser.add_argument("--role", choices=("orchestrate", "serve", "sweep"), default="orchestrate")
    parser.add_argument("--subject", default="camhub", help=argparse.SUPPRESS)
    parser.add_argument("--pool", default="pool", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=200, help=argparse.SUPPRESS)
    parser.add_argument("--max-connections", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--control", type=int, default=0)
    args = parser.parse_args()
    if args.role == "serve":
        asyncio.run(serve(args.config, args.bare_first_port))
    elif args.role == "sweep":
        print(json.dumps(asyncio.run(measure(args))), flush=True)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
