"""``camhub device …`` and ``camhub discover``: talk to one configured device, find devices."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs
import click
from rich.console import Console
from rich.table import Table

from camhub.adapter import DeviceAdapter, StreamProfile
from camhub.devices import ClientPool, open_adapter

T = TypeVar("T")
_ICT = timedelta(hours=7)  # times are shown to people in Asia/Ho_Chi_Minh (UTC+7)


def _run_with_adapter(
    ctx: click.Context, config: Path, device_id: str, work: Callable[[DeviceAdapter], Awaitable[T]]
) -> T:
    state = ctx.obj
    province = state.load(config)

    async def scenario() -> T:
        async with ClientPool() as pool:
            adapter = open_adapter(province, device_id, state.host, pool)
            try:
                return await work(adapter)
            finally:
                await adapter.aclose()

    return asyncio.run(scenario())


def _plain(value: Any) -> Any:
    """attrs values, enums, datetimes and timedeltas as JSON-friendly data."""
    if attrs.has(type(value)):
        return {k: _plain(v) for k, v in attrs.asdict(value, recurse=False).items() if k != "password"}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if hasattr(value, "value") and type(value).__module__.startswith("camhub"):
        return value.value
    return value


def _local(moment: datetime) -> str:
    """A UTC time as people in Vietnam read it (UTC+7)."""
    return (moment.astimezone(UTC) + _ICT).strftime("%Y-%m-%d %H:%M:%S (UTC+7)")


@click.group()
def device() -> None:
    """Talk to one configured device through its adapter."""


_config = click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
_device_id = click.argument("device_id")
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@device.command()
@_config
@_device_id
@_json
@click.pass_context
def info(ctx: click.Context, config: Path, device_id: str, as_json: bool) -> None:
    """Model, serial number, firmware, MAC address, clock and channels of a device."""

    async def work(adapter: DeviceAdapter) -> dict[str, Any]:
        identity = await adapter.identity()
        clock = await adapter.time()
        channels = await adapter.channels()
        return {"identity": identity, "time": clock, "channels": channels}

    found = _run_with_adapter(ctx, config, device_id, work)
    if as_json:
        click.echo(json.dumps({"device": device_id, **_plain(found)}, ensure_ascii=False, indent=2))
        return
    identity, clock, channels = found["identity"], found["time"], found["channels"]
    table = Table(title=f"Device {device_id}", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for label, value in (
        ("vendor", identity.vendor),
        ("model", identity.model),
        ("serial", identity.serial),
        ("firmware", identity.firmware),
        ("MAC", identity.mac),
        ("name", identity.name),
        ("clock", f"{_local(clock.device_time)}, offset {clock.offset.total_seconds():+.1f} s"),
        ("channels", str(len(channels))),
    ):
        table.add_row(label, value)
    console = Console(highlight=False, soft_wrap=True)
    console.print(table)
    console.print(_channel_table(channels))


def _channel_table(channels: list[Any]) -> Table:
    table = Table(title="Channels", title_justify="left")
    for column in ("channel", "kind", "name", "online", "sound"):
        table.add_column(column)
    for channel in channels:
        online = "?" if channel.online is None else ("yes" if channel.online else "no")
        table.add_row(
            str(channel.id), channel.kind.value, channel.name, online, "yes" if channel.audio else "no"
        )
    return table


@device.command()
@_config
@_device_id
@_json
@click.pass_context
def channels(ctx: click.Context, config: Path, device_id: str, as_json: bool) -> None:
    """The cameras and microphones behind a device, with their stream addresses."""

    async def work(adapter: DeviceAdapter) -> list[Any]:
        return await adapter.channels()

    found = _run_with_adapter(ctx, config, device_id, work)
    if as_json:
        click.echo(json.dumps(_plain(found), ensure_ascii=False, indent=2))
    else:
        Console(highlight=False, soft_wrap=True).print(_channel_table(found))


@device.command()
@_config
@_device_id
@click.option("--channel", type=int, default=1, show_default=True)
@click.option(
    "--output", "-o", type=click.Path(path_type=Path, dir_okay=False), help="Default: DEVICE-chN.jpg"
)
@click.pass_context
def snapshot(ctx: click.Context, config: Path, device_id: str, channel: int, output: Path | None) -> None:
    """Save a JPEG picture of a channel, now."""

    async def work(adapter: DeviceAdapter) -> bytes:
        return await adapter.snapshot(channel)

    picture = _run_with_adapter(ctx, config, device_id, work)
    target = output or Path(f"{device_id}-ch{channel}.jpg")
    target.write_bytes(picture)
    click.echo(f"{target} ({len(picture)} bytes)")


@device.command()
@_config
@_device_id
@click.option("--count", type=int, default=0, help="Stop after this many events (0: no limit).")
@click.option("--seconds", type=float, default=60.0, show_default=True, help="Stop after this long.")
@click.option("--heartbeats/--no-heartbeats", default=False, help="Show keep-alive events too.")
@_json
@click.pass_context
def events(
    ctx: click.Context,
    config: Path,
    device_id: str,
    count: int,
    seconds: float,
    heartbeats: bool,
    as_json: bool,
) -> None:
    """Print the device's events as they come (motion, video loss, tamper, storage, logins)."""

    async def work(adapter: DeviceAdapter) -> int:
        shown = 0
        try:
            async with asyncio.timeout(seconds):
                async for event in adapter.events():
                    if event.kind.value == "heartbeat" and not heartbeats:
                        continue
                    shown += 1
                    if as_json:
                        click.echo(json.dumps(_plain(event), ensure_ascii=False))
                    else:
                        state = "start" if event.active else "end"
                        where = f"channel {event.channel}" if event.channel else "device"
                        click.echo(
                            f"{_local(event.time)}  {event.kind.value:13} {state:5} {where}  ({event.vendor_type})"
                        )
                    if count and shown >= count:
                        break
        except TimeoutError:
            pass
        return shown

    _run_with_adapter(ctx, config, device_id, work)


@device.command()
@_config
@_device_id
@click.option("--channel", type=int, default=1, show_default=True)
@click.option("--hours", type=float, default=24.0, show_default=True, help="Search the last this many hours.")
@_json
@click.pass_context
def recordings(
    ctx: click.Context, config: Path, device_id: str, channel: int, hours: float, as_json: bool
) -> None:
    """Spans of footage kept on the device's own storage (SD card, recorder disk)."""
    end = datetime.now(UTC)
    start = end - timedelta(hours=hours)

    async def work(adapter: DeviceAdapter) -> list[Any]:
        return await adapter.search_recordings(channel, start, end)

    spans = _run_with_adapter(ctx, config, device_id, work)
    if as_json:
        click.echo(json.dumps(_plain(spans), ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Recordings on {device_id}, channel {channel}", title_justify="left")
    for column in ("start", "end", "minutes"):
        table.add_column(column)
    for span in spans:
        table.add_row(
            _local(span.start), _local(span.end), f"{(span.end - span.start).total_seconds() / 60:.1f}"
        )
    Console(highlight=False, soft_wrap=True).print(table)


@device.command()
@_config
@_device_id
@click.option("--channel", type=int, default=1, show_default=True)
@click.option("--sub", is_flag=True, help="The sub stream instead of the main one.")
@click.pass_context
def stream(ctx: click.Context, config: Path, device_id: str, channel: int, sub: bool) -> None:
    """The RTSP address of a channel's live stream (without credentials)."""
    profile = StreamProfile.SUB if sub else StreamProfile.MAIN

    async def work(adapter: DeviceAdapter) -> str:
        return (await adapter.stream(channel, profile)).url

    click.echo(_run_with_adapter(ctx, config, device_id, work))


@click.command()
@click.option("--interface", default="0.0.0.0", show_default=True, help="Local IPv4 address to search from.")
@click.option("--timeout", type=float, default=3.0, show_default=True, help="Seconds to listen for answers.")
@_json
@click.pass_obj
def discover(state: Any, interface: str, timeout: float, as_json: bool) -> None:
    """Find devices on the network (ONVIF WS-Discovery, and what other plugins offer)."""
    found = state.host.discover(interface, timeout)
    if as_json:
        click.echo(json.dumps(_plain(found), ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Devices found from {interface}", title_justify="left")
    for column in ("address", "protocol", "vendor", "name", "model", "service"):
        table.add_column(column)
    for item in found:
        table.add_row(item.address, item.protocol, item.vendor, item.name, item.model, ", ".join(item.urls))
    Console(highlight=False, soft_wrap=True).print(table)
