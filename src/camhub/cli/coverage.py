"""``camhub coverage``: the share of the retention window each channel has in the central store.

Exit status: 0 when every channel's coverage reaches ``--fail-under`` (100 % by default) and, with
``--verify``, every central object read back intact; 3 when a channel is below it; 4 when the
verification found an object missing, damaged or unreadable (4 wins over 3); 2 on a usage or
configuration error (an unknown ``--unit``); 1 on any other failure (catalog or store unreachable).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from camhub.cli.hubcmd import catalog_option, data_dir_option, open_catalog, require_unit

if TYPE_CHECKING:
    from camhub.coverage import CoverageReport, Verification

__all__ = ["EXIT_INCOMPLETE", "EXIT_VERIFY_FAILED", "coverage"]

#: Exit status when a channel's coverage is below ``--fail-under``.
EXIT_INCOMPLETE = 3
#: Exit status when the verification found a missing, damaged or unreadable object.
EXIT_VERIFY_FAILED = 4
_ICT = timedelta(hours=7)  # people read Asia/Ho_Chi_Minh time (DESIGN §4)


@click.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@data_dir_option
@catalog_option
@click.option("--unit", help="Only this unit and the units below it (default: the whole province).")
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
    default=7.0,
    show_default=True,
    help="Length of the window, ending now (7: the central floor of Article 6.2).",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Minutes before now where the window ends: footage younger than this is still on its way.",
)
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    default=100.0,
    show_default=True,
    help="Exit with status 3 when a channel's coverage, in percent, is below this.",
)
@click.option(
    "--verify", "check_objects", is_flag=True, help="Re-read every central object and check its SHA-256."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Objects read at once by --verify.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--max-gaps", type=click.IntRange(0), default=50, show_default=True, help="Missing spans listed."
)
@click.pass_obj
def coverage(
    state: Any,
    config: Path,
    data_dir: Path,
    catalog_url: str | None,
    unit: str | None,
    days: float,
    settle: float,
    fail_under: float,
    check_objects: bool,
    workers: int,
    as_json: bool,
    max_gaps: int,
) -> None:
    """Per channel, the share of the last --days in the central store, the gaps and their causes."""
    from camhub.coverage import report, to_json, verify  # SQLAlchemy loads only when needed
    from camhub.uploader import open_central_storage

    province = state.load(config)
    require_unit(province, unit, "--unit", config)
    end = datetime.now(UTC) - timedelta(minutes=settle)
    start = end - timedelta(days=days)
    verification: Verification | None = None
    with open_catalog(data_dir, catalog_url, create=False) as catalog:
        result = report(province, catalog, start, end, unit=unit)
        if check_objects:
            with open_central_storage(province, state.host, data_dir) as storage:
                verification = verify(result, catalog, storage, workers=workers)
    if as_json:
        click.echo(json.dumps(to_json(result, verification), ensure_ascii=False, indent=2))
    else:
        _print(result, verification, province.province.name, max_gaps)
    if verification is not None and not verification.ok:
        raise click.exceptions.Exit(EXIT_VERIFY_FAILED)
    if any(channel.ratio * 100 < fail_under for channel in result.channels):
        raise click.exceptions.Exit(EXIT_INCOMPLETE)


def _local(value: datetime) -> str:
    return (value.astimezone(UTC) + _ICT).strftime("%Y-%m-%d %H:%M:%S")


def _length(value: timedelta) -> str:
    seconds = round(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _percent(ratio: float) -> str:
    # Never round a channel that misses something up to 100 %.
    text = f"{ratio * 100:.2f} %"
    return "99.99 %" if ratio < 1 and text == "100.00 %" else text


def _print(result: CoverageReport, verification: Verification | None, name: str, max_gaps: int) -> None:
    console = Console(highlight=False, soft_wrap=True)
    scope = f"unit {result.unit} and below" if result.unit else "whole province"
    table = Table(
        title=f"Central coverage — {name} ({scope}), {_local(result.start)} → {_local(result.end)} UTC+7",
        title_justify="left",
    )
    for column, justify in (
        ("unit", "left"),
        ("device", "left"),
        ("ch", "right"),
        ("name", "left"),
        ("coverage", "right"),
        ("backfilled", "right"),
        ("missing", "right"),
        ("causes", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    previous = None
    for channel in result.channels:
        if previous is not None and channel.unit != previous:
            table.add_section()
        previous = channel.unit
        causes: Counter[str] = Counter()
        for missing in channel.missing:
            causes[missing.cause] += round(missing.duration.total_seconds())
        share = _percent(channel.ratio)
        table.add_row(
            channel.unit,
            channel.device_id,
            str(channel.channel),
            escape(channel.name),
            share if channel.complete else f"[yellow]{share}[/]",
            _length(channel.backfilled) if channel.backfilled else "",
            _length(channel.end - channel.start - channel.covered) if channel.missing else "",
            ", ".join(f"{cause} {_length(timedelta(seconds=s))}" for cause, s in causes.most_common()),
        )
    console.print(table)
    spans = [(channel, missing) for channel in result.channels for missing in channel.missing]
    if spans and max_gaps:
        gaps = Table(title="Missing spans (UTC+7)", title_justify="left")
        for column in ("device", "ch", "from", "to", "length", "cause", "detail"):
            gaps.add_column(column)
        for channel, missing in spans[:max_gaps]:
            gaps.add_row(
                channel.device_id,
                str(channel.channel),
                _local(missing.start),
                _local(missing.end),
                _length(missing.duration),
                missing.cause,
                escape(missing.detail),
            )
        console.print(gaps)
        if len(spans) > max_gaps:
            console.print(f"… and {len(spans) - max_gaps} more missing spans (--max-gaps, or --json for all)")
    complete = sum(channel.complete for channel in result.channels)
    console.print(
        f"{len(result.channels)} channels, {complete} complete; central coverage {_percent(result.ratio)}"
    )
    if verification is not None:
        console.print(
            f"Verified {verification.checked} central objects ({verification.size / 1e9:.2f} GB): "
            + (
                "[green]all intact[/]"
                if verification.ok
                else f"[red]{len(verification.problems)} problem(s)[/]"
            )
        )
        if verification.problems:
            problems = Table(title="Central objects that fail verification", title_justify="left")
            for column in ("key", "device", "ch", "segment start (UTC+7)", "problem", "detail"):
                problems.add_column(column)
            for problem in verification.problems:
                problems.add_row(
                    escape(problem.key),
                    problem.device_id,
                    str(problem.channel),
                    _local(problem.start),
                    f"[red]{problem.problem}[/]",
                    escape(problem.detail),
                )
            console.print(problems)
