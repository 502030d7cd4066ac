"""The ``camhub`` command: check and explore a province's configuration, list plugins.

Exit status: 0 on success, 2 on a usage or configuration error, 1 on any other failure. Errors
are one line each on stderr, never a traceback (set ``CAMHUB_DEBUG=1`` to see one).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from camhub._version import __version__
from camhub.cli import backfill as backfill_commands
from camhub.cli import coverage as coverage_commands
from camhub.cli import device as device_commands
from camhub.cli import hubcmd as hub_commands
from camhub.cli import retention as retention_commands
from camhub.config import json_schema, load_config
from camhub.errors import CamhubError, ConfigError
from camhub.log import configure_logging
from camhub.model import Article5Point, ChannelKind
from camhub.plugins import PluginHost
from camhub.province import ProvinceConfig

__all__ = ["cli", "main"]

EXIT_USAGE = 2
_POINT_LABELS = {
    Article5Point.PROVINCE: "5.1 whole province",
    Article5Point.SUBTREE: "5.2 unit and below",
    Article5Point.SITE: "5.3 own site",
}


class _State:
    def __init__(self, disabled: tuple[str, ...]) -> None:
        self.disabled = disabled
        self._host: PluginHost | None = None

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = PluginHost.from_installed(blocked=self.disabled)
        return self._host

    def load(self, path: Path) -> ProvinceConfig:
        return load_config(path, host=self.host)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="camhub")
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    help="How log events are written to stderr.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="The least important log events shown.",
)
@click.option(
    "--disable-plugin",
    "disabled",
    multiple=True,
    metavar="NAME",
    help="Do not load this plugin (repeatable; also CAMHUB_DISABLED_PLUGINS=a,b).",
)
@click.pass_context
def cli(ctx: click.Context, log_format: str, log_level: str, disabled: tuple[str, ...]) -> None:
    """camhub: the cameras, microphones and recorders of a province's public-service sites."""
    configure_logging(json=log_format == "json", level=log_level)
    ctx.obj = _State(disabled)


_config_argument = click.argument("config", type=click.Path(path_type=Path, dir_okay=False), metavar="CONFIG")


@cli.command()
@_config_argument
@click.pass_obj
def check(state: _State, config: Path) -> None:
    """Validate CONFIG and the files it includes, and summarise the province."""
    province = state.load(config)
    console = _console()
    includes = len(province.sources) - 1
    more = f" (+{includes} included file{'s' if includes != 1 else ''})" if includes else ""
    console.print(f"[green]✓[/] {config}{more}: valid — {province.province.name}")
    for table in _summary_tables(province):
        console.print(table)


def _summary_tables(province: ProvinceConfig) -> list[Table]:
    per_level = Counter(unit.level for unit in province.units)
    units = Table(title="Units per level", title_justify="left")
    units.add_column("level")
    units.add_column("name")
    units.add_column("units", justify="right")
    for level in province.levels:
        units.add_row(level.id, level.name, str(per_level[level.id]))

    devices = Table(title="Devices per vendor", title_justify="left")
    devices.add_column("vendor")
    for kind in ("camera", "nvr", "dvr", "encoder"):
        devices.add_column(kind, justify="right")
    devices.add_column("cameras", justify="right")
    devices.add_column("with sound", justify="right")
    devices.add_column("microphones", justify="right")
    by_vendor: dict[str, Counter[str]] = {}
    for device in province.devices:
        counts = by_vendor.setdefault(device.vendor, Counter())
        counts[device.kind.value] += 1
        for channel in device.effective_channels():
            if channel.kind is ChannelKind.MICROPHONE:
                counts["microphones"] += 1
            else:
                counts["cameras"] += 1
                counts["with sound"] += channel.audio
    for vendor, counts in sorted(by_vendor.items()):
        devices.add_row(
            vendor,
            *(
                str(counts[key])
                for key in ("camera", "nvr", "dvr", "encoder", "cameras", "with sound", "microphones")
            ),
        )

    people = Table(title="People per Article 5 point", title_justify="left")
    people.add_column("point")
    people.add_column("people", justify="right")
    points: Counter[str] = Counter()
    for person in province.people:
        held = province.article5_points(person)
        points.update(_POINT_LABELS[point] for point in held)
        if not held:
            points["5.4 by grant only"] += 1
    for label in [*_POINT_LABELS.values(), "5.4 by grant only"]:
        people.add_row(label, str(points[label]))

    storage = Table(title="Storage and retention", title_justify="left", show_header=False)
    storage.add_column("setting")
    storage.add_column("value")
    central = province.storage.central
    storage.add_row("central store", f"{central.backend}: {getattr(central, 'path', '')}".rstrip(": "))
    storage.add_row("local spool", f"{province.storage.spool} (at most {province.storage.spool_max_gb:g} GB)")
    storage.add_row("central retention", f"{province.retention.central_days} days (floor 7, Article 6.2)")
    storage.add_row("spool retention", f"{province.retention.spool_days} day(s) after sync")
    return [units, devices, people, storage]


@cli.command()
@_config_argument
@click.option("--devices/--no-devices", default=False, help="List each unit's devices too.")
@click.pass_obj
def units(state: _State, config: Path, devices: bool) -> None:
    """Show the unit tree of CONFIG: levels, sites, managing bodies and device counts."""
    province = state.load(config)
    trees: dict[str, Tree] = {}
    root: Tree | None = None
    for _, unit in province.walk():
        own = province.devices_of(unit.id)
        label = f"[bold]{unit.name}[/] [dim]{unit.id} · {unit.level} · {len(own)} devices[/]"
        if unit.merged_from:
            label += f" [dim]· from {len(unit.merged_from)} former units[/]"
        node = trees[unit.parent].add(label) if unit.parent else Tree(label)
        if unit.parent is None:
            root = node
        trees[unit.id] = node
        if devices:
            for device in own:
                node.add(
                    f"[cyan]{device.id}[/] {device.vendor} {device.kind.value} "
                    f"{device.host} · {len(device.effective_channels())} channels"
                )
    assert root is not None  # a valid province has exactly one root
    _console().print(root)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def plugins(state: _State, as_json: bool) -> None:
    """List installed plugins: what each provides, its version, and any load error."""
    infos = state.host.plugins
    if as_json:
        rows = [
            {
                "name": i.name,
                "group": i.group,
                "distribution": i.distribution,
                "version": i.version,
                "status": i.status,
                "provides": list(i.provides),
                "error": i.error,
            }
            for i in infos
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title="camhub plugins", title_justify="left")
    for column in ("name", "group", "distribution", "version", "status", "provides / error"):
        table.add_column(column)
    for info in infos:
        status = {"loaded": "[green]loaded[/]", "failed": "[red]failed[/]"}.get(info.status, info.status)
        detail = info.error if info.error else ", ".join(info.provides)
        table.add_row(info.name, info.group, info.distribution, info.version, status, detail)
    _console().print(table)


@cli.group()
def config() -> None:
    """Work with the configuration format."""


@config.command()
@click.pass_obj
def schema(state: _State) -> None:
    """Print the JSON Schema of configuration files (with every installed vendor)."""
    click.echo(json.dumps(json_schema(state.host), ensure_ascii=False, indent=2))


cli.add_command(device_commands.device)
cli.add_command(hub_commands.run)
cli.add_command(hub_commands.status)
cli.add_command(coverage_commands.coverage)
cli.add_command(hub_commands.demo)
cli.add_command(hub_commands.simulate)
cli.add_command(device_commands.discover)
cli.add_command(backfill_commands.backfill)
cli.add_command(retention_commands.retention)
cli.add_command(retention_commands.hold)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return (and, as a script, exit with) its exit status."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        result = cli.main(args=argv, prog_name="camhub", standalone_mode=False)
    except ConfigError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False)
        count = len(exc.issues)
        err.print(f"camhub: {count} configuration error{'s' if count != 1 else ''}", markup=False)
        return EXIT_USAGE
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("camhub: aborted", markup=False)
        return 1
    except CamhubError as exc:
        err.print(f"camhub: error: {exc}", markup=False)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("CAMHUB_DEBUG"):
            raise
        err.print(
            f"camhub: internal error: {type(exc).__name__}: {exc} "
            "(set CAMHUB_DEBUG=1 for a traceback, and please report it)",
            markup=False,
        )
        return 1
    # Without standalone mode, click returns the exit code of --help/--version as the result.
    return result if isinstance(result, int) else 0
