"""``camhub demo``: a simulated province recorded for about a minute, with nothing to install.

The demo province (the same ``demo.yaml`` as in ``examples/configs``) comes to life as a fleet of
simulated Hikvision, Dahua and ONVIF devices on 127.0.0.1, each answering its vendor's API and
streaming real H.264 with sound (G.711 from the Dahua ones, transcoded to AAC when recorded). The
hub records every channel while a live table shows each one; one camera's media is cut for a
few seconds on purpose, so the summary shows a gap with its cause next to the segments, the
coverage and where the files are.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from camhub.catalog import Catalog
from camhub.config import load_config
from camhub.hub import Hub, HubSettings
from camhub.plugins import PluginHost
from camhub.province import ProvinceConfig
from camhub.testing.fleet import Fleet

__all__ = ["demo_config", "run_demo"]


def demo_config() -> Path:
    """The demo province: packaged with camhub, or the repository's example when run from source."""
    packaged = resources.files("camhub") / "demo" / "demo.yaml"
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "examples" / "configs" / "demo.yaml"


async def run_demo(
    *,
    data_dir: Path,
    seconds: float = 60.0,
    segment_seconds: float = 15.0,
    cut_after: float = 20.0,
    cut_for: float = 8.0,
    host: PluginHost | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the demo; returns the summary it prints (per channel: segments, coverage, gaps)."""
    console = console or Console(highlight=False)
    host = host or PluginHost.from_installed()
    province = load_config(demo_config(), host=host)
    fleet = Fleet(province)
    console.print(
        f"Starting {len(fleet.devices)} simulated devices of {province.province.name} on 127.0.0.1 …"
    )
    await fleet.start()
    data_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.open(str(data_dir / "catalog.db"))
    try:
        hub = Hub(province, host, catalog, HubSettings(data_dir=data_dir, segment_seconds=segment_seconds))
        victim = next(d.id for d in fleet.devices if d.kind.value == "camera")
        started = datetime.now(UTC)
        stop = asyncio.Event()
        task = asyncio.create_task(hub.run(stop))
        await _watch(hub, fleet, victim, seconds, cut_after, cut_for, console)
        stop.set()
        await task
        ended = datetime.now(UTC)
        summary = _summary(province, catalog, hub, started, ended)
    finally:
        catalog.close()
        await fleet.stop()
    _print_summary(summary, data_dir, victim, console)
    return summary


async def _watch(
    hub: Hub, fleet: Fleet, victim: str, seconds: float, cut_after: float, cut_for: float, console: Console
) -> None:
    """Show the channels live; cut the victim's media between ``cut_after`` and ``+ cut_for``."""
    begin = time.monotonic()
    note = ""
    cut = restored = False
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while (elapsed := time.monotonic() - begin) < seconds:
            if not cut and elapsed >= cut_after:
                fleet.cut(victim)
                cut = True
                note = f"[yellow]Cutting {victim}'s cable for {cut_for:g} s to show a gap …[/]"
            elif cut and not restored and elapsed >= cut_after + cut_for:
                fleet.restore(victim)
                restored = True
                note = f"[green]{victim} is back: the recorder reconnects by itself.[/]"
            live.update(Group(_live_table(hub, elapsed, seconds), note, ""))
            await asyncio.sleep(0.5)


def _live_table(hub: Hub, elapsed: float, seconds: float) -> Table:
    table = Table(title=f"Recording — {elapsed:4.0f} / {seconds:.0f} s", title_justify="left")
    for column in ("device", "ch", "state", "segments", "MB received", "gap"):
        table.add_column(column)
    for key, recorder in hub.recorders.items():
        gap = hub.sink.board.get(key, {}).get("gap")
        state = recorder.state.value
        shown = {"recording": "[green]recording[/]", "retrying": "[yellow]retrying[/]"}.get(state, state)
        table.add_row(
            key.device_id,
            str(key.channel),
            shown,
            str(recorder.segments),
            f"{recorder.bytes_in / 1e6:.1f}",
            gap["cause"] if gap else "",
        )
    return table


def _summary(
    province: ProvinceConfig, catalog: Catalog, hub: Hub, start: datetime, end: datetime
) -> dict[str, Any]:
    channels = []
    for key in hub.recorders:
        segments = catalog.segments(key.device_id, key.channel, start, end)
        coverage = catalog.coverage(key.device_id, key.channel, start, end)
        first = segments[0].start if segments else end
        gaps = [
            {
                "cause": g.cause.value,
                "seconds": ((g.end or end) - g.start).total_seconds(),
                "detail": g.detail,
            }
            for g in catalog.gaps(key.device_id, key.channel, start, end)
        ]
        channels.append(
            {
                "device": key.device_id,
                "channel": key.channel,
                "unit": province.device(key.device_id).unit,
                "segments": len(segments),
                "bytes": sum(s.size for s in segments),
                "recorded": coverage.covered_seconds,
                "since_first_keyframe": (end - first).total_seconds(),
                "audio": sorted({_audio(s.audio_codec, s.audio_source_codec) for s in segments}),
                "video": sorted({s.video_codec or "—" for s in segments}),
                "gaps": gaps,
                "files": sorted({str(Path(str(s.local_path)).parent) for s in segments}),
            }
        )
    return {"start": start.isoformat(), "end": end.isoformat(), "channels": channels}


def _audio(codec: str | None, source: str | None) -> str:
    if codec is None:
        return "—"
    return f"{source}→{codec}" if source else codec


def _print_summary(summary: dict[str, Any], data_dir: Path, victim: str, console: Console) -> None:
    table = Table(title="What was recorded", title_justify="left")
    for column in (
        "device",
        "ch",
        "unit",
        "segments",
        "MB",
        "recorded s",
        "coverage",
        "video",
        "audio",
        "gaps",
    ):
        table.add_column(column)
    for c in summary["channels"]:
        span = c["since_first_keyframe"]
        coverage = f"{100 * c['recorded'] / span:.0f} %" if span > 0 else "—"
        gaps = ", ".join(f"{g['cause']} {g['seconds']:.1f} s" for g in c["gaps"]) or "none"
        table.add_row(
            c["device"],
            str(c["channel"]),
            c["unit"],
            str(c["segments"]),
            f"{c['bytes'] / 1e6:.1f}",
            f"{c['recorded']:.0f}",
            coverage,
            ", ".join(c["video"]),
            ", ".join(c["audio"]),
            gaps,
        )
    console.print(table)
    victim_gaps = [g for c in summary["channels"] if c["device"] == victim for g in c["gaps"]]
    if victim_gaps:
        console.print(
            f"The gap on {victim} is the cable cut on purpose: every second is either recorded or a gap "
            "with its cause."
        )
    folder = data_dir.resolve()
    console.print(f"Segments (fragmented MP4, play in any browser or player): {folder / 'spool'}")
    console.print(f"Catalog (SQLite): {folder / 'catalog.db'}")
    console.print(f"Per-channel status of the last run: camhub status {demo_config()} --data-dir {data_dir}")
