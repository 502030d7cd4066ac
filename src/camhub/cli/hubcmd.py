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
from camhub.leases import LeaseSettings, holder_name

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


catalog_option = click.option(
    "--catalog",
    "catalog_url",
    help="Catalog URL (default: SQLite in the data folder), e.g. postgresql+psycopg://…",
)


def require_unit(province: Any, unit: str | None, option: str, config: Path) -> None:
    """A usage error (exit status 2) when ``unit`` is given and the province has no such unit."""
    if unit is not None:
        try:
            province.unit(unit)
        except KeyError:
            raise click.UsageError(f"{option}: no unit {unit!r} in {config}") from None


def open_catalog(data_dir: Path, url: str | None, *, create: bool = True) -> Any:
    """The catalog at ``url``, or the data folder's. ``create=False``: a usage error when the data
    folder has none (a mistyped ``--data-dir`` must not look like an empty catalog)."""
    from camhub.catalog import Catalog

    path = data_dir / "catalog.db"
    if url is None and not create and not path.is_file():
        raise click.UsageError(
            f"no catalog in {data_dir} (nothing was recorded there): give the hub's --data-dir or --catalog"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    return Catalog.open(url or str(path))


@click.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@data_dir_option
@catalog_option
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
@click.option(
    "--lease",
    is_flag=True,
    help="Share the channels with every other hub on the same catalog through leases (scale-out; "
    "use a PostgreSQL catalog for hubs on several machines).",
)
@click.option(
    "--lease-seconds",
    type=click.FloatRange(3, 3600),
    default=30.0,
    show_default=True,
    help="How long a lease lasts unrenewed: a dead hub's channels move within it.",
)
@click.option("--hub-name", help="This hub's name in the leases (default: the host name).")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port.")
@click.option("--metrics-address", default="127.0.0.1", show_default=True)
@click.option(
    "--backfill-after",
    type=click.FloatRange(0),
    default=None,
    metavar="SECONDS",
    help="Fill a channel's gap from the device's own storage this long after it closes (default: off; "
    "see camhub backfill).",
)
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
    lease: bool,
    lease_seconds: float,
    hub_name: str | None,
    metrics_port: int | None,
    metrics_address: str,
    backfill_after: float | None,
    seconds: float | None,
) -> None:
    """Record every channel of every device in CONFIG until stopped; stopping seals open segments."""
    province = state.load(config)
    require_unit(province, site, "--site", config)
    if workers > 1 and worker is None:
        raise SystemExit(_run_workers(workers))
    settings = HubSettings(
        data_dir=data_dir,
        segment_seconds=segment_seconds,
        site=site,
        worker=(worker or 0, workers),
        metrics_port=None if metrics_port is None else metrics_port + (worker or 0),
        metrics_address=metrics_address,
        lease=LeaseSettings(holder=holder_name(hub_name), period=lease_seconds) if lease else None,
        backfill_after=backfill_after,
    )
    catalog = open_catalog(data_dir, catalog_url)
    hub = Hub(province, state.host, catalog, settings)
    if settings.lease is None:
        click.echo(
            f"camhub: recording {len(hub.channels())} channels into {data_dir} (Ctrl-C to stop)", err=True
        )
    else:
        click.echo(
            f"camhub: hub {settings.lease.holder} sharing {len(hub.channels())} channels through leases in "
            f"{catalog.url}, recording into {data_dir} (Ctrl-C to stop)",
            err=True,
        )
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
@click.option(
    "--catalog",
    "catalog_url",
    help="Also show which hub holds each channel (scale-out leases) from this catalog, e.g. postgresql+psycopg://…",
)
@click.pass_obj
def status(state: Any, config: Path, data_dir: Path, as_json: bool, catalog_url: str | None) -> None:
    """Per channel: recording, retrying or in a gap; bitrate; last segment (from a running hub)."""
    import json

    province = state.load(config)
    documents = read_status(data_dir)
    leases = None if catalog_url is None else _lease_rows(province, catalog_url)
    if as_json:
        shown: Any = documents if leases is None else {"status": documents, "leases": leases}
        click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
        return
    console = Console(highlight=False, soft_wrap=True)
    if leases is not None:
        _print_leases(console, leases)
    if not documents:
        console.print(f"No hub has recorded into {data_dir} yet (start one with: camhub run {config}).")
        return
    table = Table(title=f"Recording status — {province.province.name}", title_justify="left")
    hubs = any(document.get("holder") for document in documents)
    for column in (
        *(("hub",) if hubs else ()),
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
                *((document.get("holder") or "—",) if hubs else ()),
                channel["device"],
                str(channel["channel"]),
                state_text,
                _rate(channel.get("bitrate", 0)),
                str(channel.get("segments", 0)),
                _local(last["end"]) if last else "—",
                detail,
            )
    console.print(table)
    latest = max(documents, key=lambda d: d["updated"])
    if latest.get("upload"):
        for line in _upload_lines(latest["upload"]):
            console.print(line)
    age = time.time() - newest.timestamp()
    if age > _STALE_SECONDS:
        console.print(f"[yellow]The hub last reported {age:.0f} s ago: it is not running.[/]")


def _lease_rows(province: Any, catalog_url: str) -> list[dict[str, Any]]:
    """Every configured channel with the hub that holds its lease now (from the catalog)."""
    from camhub.catalog import Catalog

    with Catalog.open(catalog_url, migrate=False) as catalog:
        now = catalog.database_time()
        leases = {(lease.device_id, lease.channel): lease for lease in catalog.leases()}
    rows = []
    for device in province.devices:
        for channel in device.effective_channels():
            row: dict[str, Any] = {"device": device.id, "channel": channel.id, "holder": None, "token": None}
            lease = leases.get((device.id, channel.id))
            if lease is not None:
                row["token"] = lease.token
                if lease.expires_at > now:
                    row["holder"] = lease.holder
                    row["expires_in"] = round((lease.expires_at - now).total_seconds(), 1)
            rows.append(row)
    return rows


def _print_leases(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title="Channel leases (which hub records each channel)", title_justify="left")
    for column in ("device", "ch", "hub", "token", "lease runs out in"):
        table.add_column(column)
    for row in rows:
        held = row["holder"] is not None
        table.add_row(
            row["device"],
            str(row["channel"]),
            row["holder"] if held else "[yellow]free[/]",
            "—" if row["token"] is None else str(row["token"]),
            f"{row['expires_in']:.0f} s" if held else "—",
        )
    console.print(table)
    free = sum(1 for row in rows if row["holder"] is None)
    if free:
        console.print(
            f"[yellow]{free} channels have no hub: none is running, or they are being taken over.[/]"
        )


def _upload_lines(upload: dict[str, Any]) -> list[str]:
    """The store-and-forward backlog and its alerts, for people (see camhub.uploader)."""
    backlog, store = upload["backlog"], upload["store"]
    if backlog["segments"]:
        waiting = (
            f"{backlog['segments']} segments ({backlog['bytes'] / 1e6:.1f} MB) waiting, the oldest "
            f"from {_local(backlog['oldest'])} ({backlog['oldest_age_seconds'] / 60:.0f} min ago)"
        )
    else:
        waiting = "nothing waiting"
    lines = [
        f"Central store: {waiting}; {upload['uploaded']['segments']} segments sent"
        + (f", last at {_local(store['last_upload'])}" if store["last_upload"] else "")
        + (f"; {upload['set_aside']} set aside (see the log)" if upload["set_aside"] else "")
        + (" (times UTC+7)" if backlog["segments"] or store["last_upload"] else "")
    ]
    if "spool_backlog" in upload["alerts"]:
        share = 100 * backlog["bytes"] / max(upload["spool_limit_bytes"] or 1, 1)
        lines.append(f"[red]ALERT: the footage waiting fills {share:.0f} % of the spool's limit.[/]")
    if "store_unreachable" in upload["alerts"]:
        lines.append(
            f"[red]ALERT: the central store has failed every upload since "
            f"{_local(store['unreachable_since'])}: {store['last_error']}[/]"
        )
    elif not store["reachable"]:
        lines.append(f"[yellow]The central store is failing: {store['last_error']}[/]")
    return lines


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
