"""``camhub run`` (record) and ``camhub status`` (how each channel is doing)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from camhub.hub import Hub, HubSettings, read_status

DATA_DIR_ENV = "CAMHUB_DATA_DIR"
_STALE_SECONDS = 15


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar=DATA_DIR_ENV,
    default=Path("camhub-data"),
    show_default=True,
    help="The hub's folder: spool, catalog, status (also CAMHUB_DATA_DIR).",
)


def open_catalog(data_dir: Path, url: str | None) -> Any:
    from camhub.catalog import Catalog

    data_dir.mkdir(parents=True, exist_ok=True)
    return Catalog.open(url or str(data_dir / "catalog.db"))


@click.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@data_dir_option
@click.option(
    "--catalog",
    "catalog_url",
    help="Catalog URL (default: SQLite in the data folder), e.g. postgresql+psycopg://…",
)
@click.option("--site", help="Record only this unit and the units below it (a site hub).")
@click.option("--segment-seconds", type=float, default=60.0, show_default=True, help="The segment grid.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes to spread channels over.",
)
@click.option("--worker", type=int, default=None, hidden=True)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port.")
@click.option("--metrics-address", default="127.0.0.1", show_default=True)
@click.option(
    "--seconds", type=float, default=None, help="Stop after this long (default: until SIGINT/SIGTERM)."
)
@click.pass_obj
def run(
    state: Any,
    config: Path,
    data_dir: Path,
    catalog_url: str | None,
    site: str | None,
    segment_seconds: float,
    workers: int,
    worker: int | None,
    metrics_port: int | None,
    metrics_address: str,
    seconds: float | None,
) -> None:
    """Record every channel of every device in CONFIG until stopped; stopping seals open segments."""
    province = state.load(config)
    if site is not None:
        try:
            province.unit(site)
        except KeyError:
            raise click.UsageError(f"--site: no unit {site!r} in {config}") from None
    if workers > 1 and worker is None:
        raise SystemExit(_run_workers(workers))
    settings = HubSettings(
        data_dir=data_dir,
        segment_seconds=segment_seconds,
        site=site,
        worker=(worker or 0, workers),
        metrics_port=None if metrics_port is None else metrics_port + (worker or 0),
        metrics_address=metrics_address,
    )
    catalog = open_catalog(data_dir, catalog_url)
    hub = Hub(province, state.host, catalog, settings)
    click.echo(f"camhub: recording {len(hub.channels())} channels into {data_dir} (Ctrl-C to stop)", err=True)
    try:
        asyncio.run(_record(hub, seconds))
    finally:
        catalog.close()


async def _record(hub: Hub, seconds: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if seconds is not None:
        loop.call_later(seconds, stop.set)
    await hub.run(stop)


def _run_workers(count: int) -> int:
    """Start ``count`` worker processes with the same arguments; forward SIGINT/SIGTERM."""
    argv = sys.argv[1:]
    children = [
        subprocess.Popen([sys.executable, "-m", "camhub", *argv, "--worker", str(index)])
        for index in range(count)
    ]

    def forward(signum: int, _: Any) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [child.wait() for child in children]
    return max(codes)


@click.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw status documents.")
@click.pass_obj
def status(state: Any, config: Path, data_dir: Path, as_json: bool) -> None:
    """Per channel: recording, retrying or in a gap; bitrate; last segment (from a running hub)."""
    import json

    province = state.load(config)
    documents = read_status(data_dir)
    if as_json:
        click.echo(json.dumps(documents, ensure_ascii=False, indent=2))
        return
    console = Console(highlight=False, soft_wrap=True)
    if not documents:
        console.print(f"No hub has recorded into {data_dir} yet (start one with: camhub run {config}).")
        return
    table = Table(title=f"Recording status — {province.province.name}", title_justify="left")
    for column in (
        "device",
        "ch",
        "state",
        "bitrate",
        "segments",
        "last segment end (UTC+7)",
        "gap / detail",
    ):
        table.add_column(column)
    newest = max(datetime.fromisoformat(d["updated"]) for d in documents)
    for document in documents:
        for channel in document["channels"]:
            gap = channel.get("gap")
            detail = (
                f"{gap['cause']} since {_local(gap['start'])}: {gap['detail']}"
                if gap
                else channel.get("detail", "")
            )
            last = channel.get("last_segment") or {}
            state_text = {"recording": "[green]recording[/]", "retrying": "[yellow]retrying[/]"}.get(
                channel["state"], channel["state"]
            )
            table.add_row(
                channel["device"],
                str(channel["channel"]),
                state_text,
                _rate(channel.get("bitrate", 0)),
                str(channel.get("segments", 0)),
                _local(last["end"]) if last else "—",
                detail,
            )
    console.print(table)
    age = time.time() - newest.timestamp()
    if age > _STALE_SECONDS:
        console.print(f"[yellow]The hub last reported {age:.0f} s ago: it is not running.[/]")


def _rate(bits_per_second: float) -> str:
    return f"{bits_per_second / 1e6:.2f} Mbit/s" if bits_per_second else "—"


def _local(iso: str) -> str:
    return (datetime.fromisoformat(iso).astimezone(UTC) + timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S")


@click.command()
@click.option("--seconds", type=float, default=60.0, show_default=True, help="How long to record.")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("camhub-demo"),
    show_default=True,
    help="Where the demo's segments and catalog go.",
)
@click.pass_obj
def demo(state: Any, seconds: float, data_dir: Path) -> None:
    """Record a simulated province for about a minute: no configuration, nothing to install."""
    from camhub.demo import run_demo

    asyncio.run(run_demo(data_dir=data_dir, seconds=seconds, host=state.host))


@click.command()
@click.option("--hikvision", type=click.IntRange(0, 500), default=1, show_default=True)
@click.option("--dahua", type=click.IntRange(0, 500), default=1, show_default=True)
@click.option("--onvif", type=click.IntRange(0, 500), default=1, show_default=True)
@click.option(
    "--channels", type=click.IntRange(1, 16), default=1, show_default=True, help="Cameras per device."
)
@click.option("--first-port", type=click.IntRange(1024, 60000), default=20000, show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("fleet.yaml"),
    show_default=True,
    help="The configuration written for the fleet.",
)
@click.option("--seconds", type=float, default=None, help="Stop after this long (default: until Ctrl-C).")
@click.pass_obj
def simulate(
    state: Any,
    hikvision: int,
    dahua: int,
    onvif: int,
    channels: int,
    first_port: int,
    output: Path,
    seconds: float | None,
) -> None:
    """Start simulated devices on 127.0.0.1 and write a configuration that points at them."""
    from camhub.testing.fleet import Fleet, fleet_yaml

    secret = output.parent / "fleet-password"
    secret.write_text("camhub-sim-1\n", encoding="utf-8")
    counts = {"hikvision": hikvision, "dahua": dahua, "onvif": onvif}
    output.write_text(
        fleet_yaml(counts, first_port=first_port, secret_file=secret.name, channels=channels),
        encoding="utf-8",
    )
    province = state.load(output)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if seconds is not None:
            loop.call_later(seconds, stop.set)
        async with Fleet(province) as fleet:
            click.echo(f"{len(fleet.devices)} simulated devices up; configuration: {output} (Ctrl-C to stop)")
            await stop.wait()

    asyncio.run(serve())
