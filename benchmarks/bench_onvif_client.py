"""Which ONVIF client camhub uses: onvif-zeep-async (WSDL + zeep + lxml) against the lean client.

Run it as a script::

    /work/venv/bin/python benchmarks/bench_onvif_client.py [--clients 1000] [--calls 300]

The simulated device (:class:`camhub.testing.onvif.OnvifSimulator`, WS-Security, since
onvif-zeep-async authenticates SOAP only that way) runs in its own process, so the client
figures are not mixed with the server's work; each client is measured in a fresh process of
its own, so that one's imports and caches do not help the other. Measured per client:

- the first client set-up of the process (onvif-zeep-async parses the device WSDL here);
- the set-up of each further client (what one more device costs), in microseconds;
- the SOAP layer alone, without network: build and sign a ``GetDeviceInformation`` request
  and parse the same captured answer (zeep: ``binding._create`` + ``process_reply``);
- the HTTP library alone: one POST of the same public SOAP request (aiohttp for
  onvif-zeep-async; camhub's ``DeviceHTTP`` over httpx for the lean client);
- the first ``GetDeviceInformation`` of a new client (median over 20 new clients; each
  onvif-zeep-async client opens its own connection, the lean ones share camhub's pool but
  measure the device clock first, an extra round trip onvif-zeep-async skips unless
  ``adjust_time`` is on);
- steady-state ``GetDeviceInformation`` on one client: wall time and the client process's CPU
  time per call;
- memory held by N set-up clients (RSS and the Python heap seen by tracemalloc), per 1,000.

The lean client shares camhub's one injected ``httpx.AsyncClient``, as the adapters do;
onvif-zeep-async makes an aiohttp session per camera and per service. Figures vary with the
machine; the ratios are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

USERNAME = "admin"
PASSWORD = "camhub-sim-1"


# -- the device -------------------------------------------------------------------------------
async def serve() -> None:
    """Run the simulator until stdin closes; print its port first."""
    from camhub.testing.onvif import OnvifSimulator
    from camhub.testing.simulator import DeviceProfile

    profile = DeviceProfile(model="BENCH-1", serial="B0001", firmware="1.0", mac="00:11:22:33:44:55")
    async with OnvifSimulator(profile, auth="ws-security") as device:
        print(device.port, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


# -- measurements ---------------------------------------------------------------------------
def load_capture(name: str) -> bytes:
    from camhub.testing.onvif import load_capture as load

    return load(name)


def envelope_of_time() -> bytes:
    from camhub_onvif.soap import envelope

    return envelope("<tds:GetSystemDateAndTime/>")


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


class Lean:
    """camhub_onvif's client: envelope templates over the shared httpx client."""

    name = "lean (camhub_onvif)"

    def __init__(self, port: int) -> None:
        import httpx

        from camhub.secrets import Secret
        from camhub_onvif.client import OnvifClient

        self.port = port
        self.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=100, max_keepalive_connections=100))
        self.secret = Secret(PASSWORD)
        self.client_type = OnvifClient

    async def make(self) -> Any:
        return self.client_type(
            self.http,
            "bench",
            f"http://127.0.0.1:{self.port}",
            username=USERNAME,
            password=self.secret,
            auth="ws-security",
        )

    async def call(self, client: Any) -> None:
        answer = await client.call(client.device_url, "tds", "GetDeviceInformation")
        assert answer.find("{http://www.onvif.org/ver10/device/wsdl}Model") is not None

    def soap_layer(self, client: Any, canned: bytes) -> None:
        from datetime import UTC, datetime

        from camhub_onvif.soap import answer_of, envelope, username_token

        token = username_token(USERNAME, PASSWORD, datetime.now(UTC))
        envelope("<tds:GetDeviceInformation/>", header=token)
        answer_of("bench", "GetDeviceInformation", 200, canned)

    async def round_trip(self, body: bytes) -> Callable[[], Awaitable[Any]]:
        from camhub.net import DeviceHTTP

        http = DeviceHTTP(self.http, "bench", f"http://127.0.0.1:{self.port}")
        headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
        return lambda: http.request("POST", "/onvif/device_service", content=body, headers=headers)

    async def close(self, client: Any) -> None:
        pass

    async def shutdown(self) -> None:
        await self.http.aclose()


class Zeep:
    """onvif-zeep-async 4.x: one ONVIFCamera and its devicemgmt service per device."""

    name = "onvif-zeep-async"

    def __init__(self, port: int) -> None:
        import logging

        from onvif import ONVIFCamera  # type: ignore[import-untyped]

        logging.getLogger("onvif").setLevel(logging.WARNING)  # it configures logging at import
        self.port = port
        self.camera_type = ONVIFCamera

    async def make(self) -> Any:
        camera = self.camera_type("127.0.0.1", self.port, USERNAME, PASSWORD, no_cache=True)
        camera.bench_service = await camera.create_devicemgmt_service()
        return camera

    async def call(self, client: Any) -> None:
        answer = await client.bench_service.GetDeviceInformation()
        assert answer.Model == "BENCH-1"

    def soap_layer(self, client: Any, canned: bytes) -> None:
        from types import SimpleNamespace

        from zeep.wsdl.utils import etree_to_string

        service = client.bench_service
        binding = service.ws_client._binding
        envelope, _ = binding._create(
            "GetDeviceInformation",
            (),
            {},
            client=service.zeep_client,
            options=service.ws_client._binding_options,
        )
        etree_to_string(envelope)  # type: ignore[no-untyped-call]
        reply = SimpleNamespace(
            status_code=200,
            content=canned,
            headers={"Content-Type": "application/soap+xml"},
            encoding="utf-8",
        )
        binding.process_reply(service.zeep_client, binding.get("GetDeviceInformation"), reply)

    async def round_trip(self, body: bytes) -> Callable[[], Awaitable[Any]]:
        import aiohttp

        self.session = aiohttp.ClientSession()
        url = f"http://127.0.0.1:{self.port}/onvif/device_service"
        headers = {"Content-Type": "application/soap+xml; charset=utf-8"}

        async def post() -> bytes:
            async with self.session.post(url, data=body, headers=headers) as response:
                return await response.read()

        return post

    async def close(self, client: Any) -> None:
        await client.close()

    async def shutdown(self) -> None:
        await self.session.close()


async def measure(kind: str, port: int, clients: int, calls: int) -> dict[str, float]:
    started = time.perf_counter()
    subject: Lean | Zeep = Lean(port) if kind == "lean" else Zeep(port)
    result: dict[str, float] = {"import_ms": (time.perf_counter() - started) * 1e3}

    started = time.perf_counter()
    first = await subject.make()
    result["first_setup_ms"] = (time.perf_counter() - started) * 1e3

    # Set-up of further clients (no network): what one more device costs.
    made = []
    started = time.perf_counter()
    for _ in range(200):
        made.append(await subject.make())
    result["setup_us"] = (time.perf_counter() - started) / 200 * 1e6

    # First call on new clients: a new connection (and, for lean, the clock measurement).
    firsts = [await timed(functools.partial(subject.call, c)) for c in made[:20]]
    result["first_call_ms"] = statistics.median(firsts) * 1e3
    for client in made:
        await subject.close(client)
    made.clear()

    # The SOAP layer alone: build and sign the request, parse the same answer (no network).
    canned = load_capture("agsh_GetDeviceInformation.xml")
    cpu = time.process_time()
    for _ in range(calls * 5):
        subject.soap_layer(first, canned)
    result["soap_us"] = (time.process_time() - cpu) / (calls * 5) * 1e6

    # The HTTP library alone: the same public request (no WS-Security work on either side).
    post = await subject.round_trip(envelope_of_time())
    for _ in range(20):
        await post()
    cpu = time.process_time()
    for _ in range(calls):
        await post()
    result["http_cpu_ms"] = (time.process_time() - cpu) / calls * 1e3

    # Steady state on one client.
    for _ in range(20):
        await subject.call(first)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await subject.call(first)
    result["call_ms"] = (time.perf_counter() - wall) / calls * 1e3
    result["call_cpu_ms"] = (time.process_time() - cpu) / calls * 1e3
    if kind == "lean":
        # httpcore 1.0.9 runs `import sniffio` on every request; without sniffio installed each
        # failed import searches sys.path. Short-circuit it to see what that costs.
        sys.modules["sniffio"] = None  # type: ignore[assignment]
        for _ in range(20):
            await subject.call(first)
        cpu = time.process_time()
        for _ in range(calls):
            await subject.call(first)
        result["call_cpu_nosniff_ms"] = (time.process_time() - cpu) / calls * 1e3
        del sys.modules["sniffio"]
    await subject.close(first)

    # Memory held by set-up clients.
    gc.collect()
    rss = rss_bytes()
    tracemalloc.start()
    heap = tracemalloc.get_traced_memory()[0]
    held = [await subject.make() for _ in range(clients)]
    gc.collect()
    result["rss_mb_per_1000"] = (rss_bytes() - rss) / clients * 1000 / 2**20
    result["heap_mb_per_1000"] = (tracemalloc.get_traced_memory()[0] - heap) / clients * 1000 / 2**20
    tracemalloc.stop()
    for client in held:
        await subject.close(client)
    await subject.shutdown()
    return result


# -- the report -------------------------------------------------------------------------------
ROWS = (
    ("import_ms", "import of the client library (ms)"),
    ("first_setup_ms", "first client set-up in the process (ms)"),
    ("setup_us", "set-up of each further client (µs)"),
    ("soap_us", "SOAP layer: build + sign + parse, no network (µs CPU)"),
    ("http_cpu_ms", "HTTP library: one SOAP POST, no SOAP work (ms CPU)"),
    ("first_call_ms", "first GetDeviceInformation, new client (ms)"),
    ("call_ms", "steady-state GetDeviceInformation, wall (ms)"),
    ("call_cpu_ms", "steady-state GetDeviceInformation, client CPU (ms)"),
    ("rss_mb_per_1000", "RSS per 1,000 clients (MB)"),
    ("heap_mb_per_1000", "Python heap per 1,000 clients (MB)"),
)


def table(zeep: dict[str, float] | None, lean: dict[str, float]) -> str:
    lines = [
        f"| {'metric':<56} | {'onvif-zeep-async':>16} | {'lean (camhub_onvif)':>19} | {'zeep ÷ lean':>11} |",
        f"|{'-' * 58}|{'-' * 17}:|{'-' * 20}:|{'-' * 12}:|",
    ]
    for key, label in ROWS:
        lv = lean[key]
        if zeep is None:
            lines.append(f"| {label:<56} | {'—':>16} | {lv:>19.3f} | {'—':>11} |")
            continue
        z = zeep[key]
        ratio = f"{z / lv:.1f}×" if lv > 0 else "—"
        lines.append(f"| {label:<56} | {z:>16.3f} | {lv:>19.3f} | {ratio:>11} |")
    return "\n".join(lines)


def run_measure(kind: str, port: int, clients: int, calls: int) -> dict[str, float]:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--measure",
            kind,
            "--port",
            str(port),
            "--clients",
            str(clients),
            "--calls",
            str(calls),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    parsed: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=1000, help="clients held for the memory figure")
    parser.add_argument("--calls", type=int, default=300, help="steady-state calls")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best figure is kept")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=("zeep", "lean"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.measure, args.port, args.clients, args.calls))))
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        # Alternate the two and keep each figure's best round: the machine is shared and noisy.
        kinds = ["zeep", "lean"] if importlib.util.find_spec("onvif") else ["lean"]
        rounds: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
        for _ in range(args.rounds):
            for kind in kinds:
                rounds[kind].append(run_measure(kind, port, args.clients, args.calls))
        best = {kind: {key: min(r[key] for r in rounds[kind]) for key in rounds[kind][0]} for kind in kinds}
        zeep, lean = best.get("zeep"), best["lean"]
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    print(
        f"ONVIF client benchmark: {args.clients} clients held, {args.calls} steady-state calls, best of "
        f"{args.rounds} alternating rounds, Python {sys.version.split()[0]}, simulator in its own process\n"
    )
    if zeep is None:
        print(
            "onvif-zeep-async is not installed (pip install 'onvif-zeep-async>=4.3,<5'): lean client only\n"
        )
    print(table(zeep, lean))
    print(
        f"\nlean steady-state client CPU with httpcore's per-request `import sniffio` short-circuited: "
        f"{lean['call_cpu_nosniff_ms']:.3f} ms (sniffio is not installed; httpcore 1.0.9 imports it per request)"
    )


if __name__ == "__main__":
    main()
