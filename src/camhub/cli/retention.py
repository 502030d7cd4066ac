"""``camhub retention`` (one retention pass, or a dry run) and ``camhub hold`` (add, list, release holds)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from camhub.catalog import Catalog, HoldKind, HoldRecord, StorageTier
from camhub.cli.hubcmd import catalog_option, data_dir_option, open_catalog
from camhub.errors import CamhubError
from camhub.hub import HubSettings
from camhub.province import ProvinceConfig
from camhub.retention import Retention, RetentionPolicy
from camhub.storage import Storage

__all__ = ["hold", "retention"]

_config_argument = click.argument("config", type=click.Path(path_type=Path, dir_okay=False), metavar="CONFIG")
_by_option = click.option(
    "--by",
    default=None,
    help="Who acts, recorded in the catalog (default: your login name).",
)


def _who(by: str | None) -> str:
    if by is None:
        try:
            by = getpass.getuser()
        except (OSError, KeyError):  # no login name (e.g. a container without a user entry)
            raise click.UsageError("--by: cannot tell who you are; give --by NAME") from None
    name = by.strip()
    if not name:
        raise click.UsageError("--by: give a name (who acts is recorded)")
    return name


@contextmanager
def _opened(
    state: Any, config: Path, data_dir: Path, catalog_url: str | None, by: str
) -> Iterator[Retention]:
    """The configuration's retention over its catalog, spool and central store."""
    from camhub.uploader import open_central_storage

    province: ProvinceConfig = state.load(config)
    catalog: Catalog = open_catalog(data_dir, catalog_url, create=False)
    storage: Storage | None = None
    try:
        try:
            storage = open_central_storage(province, state.host, data_dir)
        except CamhubError as exc:  # a hold must be possible while the store is down
            click.echo(f"warning: the central store is not reachable ({exc}); local copies only", err=True)
        spool = HubSettings(data_dir=data_dir).spool
        yield Retention(catalog, storage, spool, RetentionPolicy.from_config(province), by=by)
    finally:
        if storage is not None:
            storage.close()
        catalog.close()


@click.command()
@_config_argument
@data_dir_option
@catalog_option
@click.option("--dry-run", is_flag=True, help="Only print what would be deleted, and why.")
@_by_option
@click.pass_obj
def retention(
    state: Any, config: Path, data_dir: Path, catalog_url: str | None, dry_run: bool, by: str | None
) -> None:
    """Run one retention pass on the hub's spool and the central store of CONFIG.

    Deletes local copies past retention.spool_days and central objects past
    retention.central_days (never under 7 days), never unsynced or held footage; prints every
    copy deleted (or, with --dry-run, that would be) and the rule that allowed it.
    """
    with _opened(state, config, data_dir, catalog_url, _who(by)) as keeper:
        report = keeper.run(dry_run=dry_run)
    for action in report.actions:
        span = f"{action.start.isoformat()} – {action.end.isoformat()}"
        detail = f" — {action.detail}" if action.detail else ""
        click.echo(
            f"{action.outcome}: {action.tier.value} copy of segment {action.segment_id} "
            f"({action.device_id} channel {action.channel}, {span}) at {action.location} "
            f"[{action.rule}]{detail}"
        )
    done = "would delete" if dry_run else "deleted"
    local, central = (report.count(done, tier) for tier in (StorageTier.LOCAL, StorageTier.CENTRAL))
    click.echo(
        f"{'dry run: ' if dry_run else ''}{done} {local} local cop{'y' if local == 1 else 'ies'} and "
        f"{central} central object{'' if central == 1 else 's'}; {report.count('refused by the store')} "
        "refused by the store"
    )
    for reason, count in sorted(report.kept.items()):
        click.echo(f"kept {count}: {reason}")
    pressure = report.pressure
    if pressure.level != "ok":
        click.echo(
            f"disk pressure: {pressure.level} (spool {pressure.spool_bytes} bytes, {pressure.free_bytes} free, "
            f"{pressure.freed_bytes} freed early)"
        )
    for error in report.errors:
        click.echo(f"error: {error}", err=True)


@click.group()
def hold() -> None:
    """Hold footage so that retention never deletes it (an export, an incident, a manual hold)."""


def _moment(value: str, province: ProvinceConfig, option: str) -> datetime:
    """An ISO 8601 time; without an offset it is the province's local time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.UsageError(
            f"{option}: {value!r} is not an ISO 8601 time (e.g. 2026-03-01T08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(province.province.timezone))
    return moment


@hold.command("add")
@_config_argument
@data_dir_option
@catalog_option
@click.option("--device", required=True, help="The device whose footage is held.")
@click.option("--channel", type=click.IntRange(min=1), default=None, help="Only this channel (default: all).")
@click.option("--start", required=True, help="Start of the held span (ISO 8601; local time without offset).")
@click.option("--end", required=True, help="End of the held span (ISO 8601).")
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in HoldKind]),
    default=HoldKind.MANUAL.value,
    show_default=True,
    help="Why footage is held.",
)
@click.option("--reason", default=None, help="What the hold is for (required), e.g. an incident number.")
@_by_option
@click.pass_obj
def hold_add(
    state: Any,
    config: Path,
    data_dir: Path,
    catalog_url: str | None,
    device: str,
    channel: int | None,
    start: str,
    end: str,
    kind: str,
    reason: str | None,
    by: str | None,
) -> None:
    """Hold a span of a device's footage (every channel unless --channel) with a reason."""
    if reason is None or not reason.strip():
        raise click.UsageError(
            "hold add: --reason is required: say what the hold is for (e.g. an incident number)"
        )
    who = _who(by)
    province: ProvinceConfig = state.load(config)
    try:
        province.device(device)
    except KeyError:
        raise click.UsageError(f"--device: no device {device!r} in {config}") from None
    a, b = _moment(start, province, "--start"), _moment(end, province, "--end")
    if b <= a:
        raise click.UsageError("--end must be after --start")
    with _opened(state, config, data_dir, catalog_url, who) as keeper:
        record, held = keeper.add_hold(device, channel, a, b, kind=HoldKind(kind), reason=reason, by=who)
    click.echo(f"hold {record.id} added: {_describe(record)}")
    if held:
        click.echo(f"the central store holds {held} object{'' if held == 1 else 's'} (legal hold)")


@hold.command("list")
@_config_argument
@data_dir_option
@catalog_option
@click.option("--device", default=None, help="Only this device's holds.")
@click.option("--all", "everything", is_flag=True, help="Released holds too.")
@click.pass_obj
def hold_list(
    state: Any, config: Path, data_dir: Path, catalog_url: str | None, device: str | None, everything: bool
) -> None:
    """List the holds in force (or, with --all, every hold ever placed)."""
    state.load(config)
    catalog = open_catalog(data_dir, catalog_url, create=False)
    try:
        records = catalog.holds(device_id=device, active_only=not everything)
    finally:
        catalog.close()
    for record in records:
        click.echo(f"{record.id}: {_describe(record)}")
    if not records:
        click.echo("no holds" if everything else "no holds in force")


@hold.command("release")
@_config_argument
@click.argument("hold_id", type=int, metavar="HOLD_ID")
@data_dir_option
@catalog_option
@_by_option
@click.pass_obj
def hold_release(
    state: Any, config: Path, hold_id: int, data_dir: Path, catalog_url: str | None, by: str | None
) -> None:
    """Release a hold: its footage follows the retention policy again."""
    who = _who(by)
    with _opened(state, config, data_dir, catalog_url, who) as keeper:
        record, released = keeper.release_hold(hold_id, by=who)
    click.echo(f"hold {record.id} released by {who}: {_describe(record)}")
    if released:
        click.echo(f"the central store released {released} object{'' if released == 1 else 's'} (legal hold)")


def _describe(record: HoldRecord) -> str:
    channel = "every channel" if record.channel is None else f"channel {record.channel}"
    released = (
        f"; released by {record.released_by} at {record.released_at.isoformat()}"
        if record.released_at is not None
        else ""
    )
    return (
        f"{record.device_id} {channel}, {record.start.isoformat()} – {record.end.isoformat()}, "
        f"{record.kind.value}: {record.reason} (by {record.created_by}){released}"
    )
