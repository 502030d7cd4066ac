"""``camhub backfill``: fill the gaps of the recording from what the devices kept on their own storage."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from camhub.cli.hubcmd import catalog_option, data_dir_option, open_catalog, require_unit

_ICT = timedelta(hours=7)
_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime) -> datetime:
    """``24h``, ``90m``, ``7d``, ``30s`` before ``now``, or an ISO 8601 time (UTC unless it says)."""
    match = _AGO.match(text.strip().lower())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: give a duration (24h, 7d, 90m) or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False), metavar="CONFIG")
@data_dir_option
@catalog_option
@click.option("--unit", help="Only the devices of this unit and the units below it.")
@click.option("--device", "devices", multiple=True, metavar="ID", help="Only this device (repeatable).")
@click.option(
    "--since", default="7d", show_default=True, help="Gaps from this long ago (24h, 7d) or this ISO time."
)
@click.option("--until", default=None, help="Gaps up to this ISO time (default: now).")
@click.option("--segment-seconds", type=float, default=60.0, show_default=True, help="The segment grid.")
@click.option("--dry-run", is_flag=True, help="Only ask the devices what they hold; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def backfill(
    state: Any,
    config: Path,
    data_dir: Path,
    catalog_url: str | None,
    unit: str | None,
    devices: tuple[str, ...],
    since: str,
    until: str | None,
    segment_seconds: float,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Fill gaps in the recording from the devices' own storage (SD cards, site NVRs).

    Each closed gap of a camera in the window is searched for on its device; what the device
    holds is fetched, remuxed into segments like live ones (marked as backfilled, with their
    source) and queued for the central store, and the gap shrinks to what is still missing.
    Exit status 1 when a device could not be asked or its footage not fetched.
    """
    from camhub.backfill import backfill_gaps

    province = state.load(config)
    require_unit(province, unit, "--unit", config)
    now = datetime.now(UTC)
    start = parse_since(since, now)
    end = parse_since(until, now) if until else now
    catalog = open_catalog(data_dir, catalog_url)
    try:
        report = asyncio.run(
            backfill_gaps(
                province,
                catalog,
                state.host,
                data_dir / "backfill",
                since=start,
                until=end,
                unit=unit,
                devices=devices or None,
                segment_seconds=segment_seconds,
                dry_run=dry_run,
            )
        )
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        _print(report)
    if report.failed:
        raise SystemExit(1)


def _print(report: Any) -> None:
    console = Console(highlight=False, soft_wrap=True)
    if not report.entries:
        console.print("No gap in the recording of the chosen devices in that window.")
        return
    title = "Backfill (dry run)" if report.dry_run else "Backfill"
    table = Table(title=f"{title} — times in UTC+7", title_justify="left")
    for column in ("device", "ch", "gap (UTC+7)", "cause", "status", "on device", "filled", "left", "detail"):
        table.add_column(column)
    for entry in report.entries:
        gap_end = "…" if entry.end is None else _shown(entry.end)
        table.add_row(
            entry.device_id,
            str(entry.channel),
            f"{_shown(entry.start)} – {gap_end}",
            entry.cause.value,
            entry.status.value,
            _seconds(entry.found),
            f"{entry.filled_seconds:.1f} s" + (f" ({entry.segments} seg.)" if entry.segments else ""),
            _seconds(entry.remaining),
            entry.detail,
        )
    console.print(table)
    console.print(f"Filled {report.filled_seconds:.1f} s; {len(report.failed)} gap(s) could not be fetched.")


def _shown(moment: datetime) -> str:
    return (moment.astimezone(UTC) + _ICT).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(spans: Any) -> str:
    return f"{sum(s.duration.total_seconds() for s in spans):.1f} s" if spans else ""
