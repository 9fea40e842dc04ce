"""``winarm phases``: the boot-phase timeline of the running or last boot."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from winarm.cli.options import options, vm_paths
from winarm.config.table import VM
from winarm.errors import UserError


@click.command()
@options(*VM)
@click.option("--json", "as_json", is_flag=True, help="Print {events, phases, total} as JSON.")
@click.option("--follow", is_flag=True, help="Print each phase as it completes, until the VM stops.")
@click.option("--chart", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Also draw the timeline as FILE.png and FILE.svg (needs matplotlib).")
def phases(name: str | None, storage: str | None, as_json: bool, follow: bool, chart: Path | None) -> None:
    """Print the boot-phase timeline of the running or last boot."""
    from winarm.timeline.events import read_events
    from winarm.timeline.phases import derive_phases, format_table, timeline_json

    vm, paths = vm_paths(name, storage)
    if not paths.events.exists():
        raise UserError(f"no boot recorded for VM {vm!r} in {paths.state_dir}: run 'winarm up' first")
    if follow:
        from winarm.timeline.follow import follow_phases

        sys.exit(follow_phases(paths.events, click.echo))
    events = read_events(paths.events)
    if chart is not None:
        from winarm.timeline.chart import phases_chart

        written = phases_chart([p.as_dict() for p in derive_phases(events)], chart, title=f"winarm phases: VM {vm}")
        for path in written:
            click.echo(f"chart: {path}", err=True)
    if as_json:
        click.echo(json.dumps(timeline_json(events), indent=2))
        return
    now = None
    if events and events[-1].get("kind") != "exit":  # still running: the open phase counts to now
        now = float(events[-1]["t"]) + max(0.0, time.time() - paths.events.stat().st_mtime)
    for line in format_table(derive_phases(events), now=now):
        click.echo(line)
