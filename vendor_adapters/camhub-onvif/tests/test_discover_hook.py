"""`camhub discover` through the ONVIF plugin's camhub_discover_devices hook, on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from onvif_testing import onvif_device

from camhub import PluginHost
from camhub_onvif.discovery import PORT


def _port_free() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", PORT))
        except OSError:
            return False
    return True


def test_host_discover_finds_a_simulated_device() -> None:
    if not _port_free():
        pytest.fail(f"UDP 127.0.0.1:{PORT} is taken: the WS-Discovery port is needed for this test")
    host = PluginHost.from_installed()
    ready = threading.Event()
    done = threading.Event()
    urls: list[str] = []

    def serve() -> None:
        async def scenario() -> None:
            async with onvif_device() as (device, _):
                await device.start_discovery(PORT)
                urls.append(device.service_url("device"))
                ready.set()
                while not done.is_set():
                    await asyncio.sleep(0.05)

        asyncio.run(scenario())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        found = host.discover("127.0.0.1", 1.0)
    finally:
        done.set()
        thread.join(10)
    assert [(d.protocol, d.vendor, d.address) for d in found] == [("ws-discovery", "onvif", "127.0.0.1")]
    assert found[0].urls == (urls[0],)
