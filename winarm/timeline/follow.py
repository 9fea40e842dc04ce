"""``winarm phases --follow``: print each phase of a VM's phase log the moment it completes.

The log is watched with inotify (no polling); a new ``winarm up`` of the same VM moves the old log aside and
starts a new one, which is followed from its beginning.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from winarm.timeline.events import Event, EventKind, read_events
from winarm.timeline.phases import derive_phases, format_phase_line, total_duration
from winarm.vm.progress import progress_line
from winarm.vm.watch import IN_CLOSE_WRITE, IN_CREATE, IN_MODIFY, IN_MOVED_TO, Watch

_LINES: dict[str, Callable[[Event], str]] = {
    EventKind.APPLY_PROGRESS: lambda e: progress_line(int(e.get("written") or 0), int(e.get("total") or 1)),
    EventKind.REPORT: lambda e: f"guest reported {e.get('name')}",
    EventKind.REPORT_REFUSED: lambda e: f"guest channel refused: {e.get('reason')}",
    EventKind.NIC_UP: lambda e: "the guest's network driver is up",
    EventKind.STALLED: lambda e: f"STALLED: nothing moved for {float(e.get('quiet', 0)):.0f} s (last: {e.get('last')})",
    EventKind.STALL_ENDED: lambda e: "moving again",
    EventKind.EVENTS_DROPPED: lambda e: (f"guest flood: {e['count']} guest events dropped this boot" if "count" in e
                                         else f"guest flood: dropping {e.get('first')} and more past the caps"),
}


def event_line(event: Event) -> str | None:
    """The line ``--follow`` prints for an event between phases (progress, reports, the network driver, a
    stall), or None for the kinds it leaves to the phase lines."""
    line = _LINES.get(str(event.get("kind")))
    return None if line is None else f"  {float(event.get('t', 0.0)):8.2f} s  {line(event)}"


def follow_phases(log: Path, echo: Callable[[str], None], *, idle_timeout: float | None = None) -> int:
    """Print the phases already complete, then each one as it completes, until the run's ``exit`` event
    (status 0) or ``idle_timeout`` seconds without any change (status 1). Raises OSError when the VM's
    directory cannot be watched."""
    printed = seen = 0
    inode: int | None = None
    with Watch(log.parent, IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO) as watch:
        while True:
            try:
                current = os.stat(log).st_ino
                events = read_events(log)
            except FileNotFoundError:
                current, events = None, []
            if current != inode:  # a new run started a new log
                inode, printed, seen = current, 0, 0
            for event in events[seen:]:
                line = event_line(event)
                if line is not None:
                    echo(line)
            seen = len(events)
            phases = [p for p in derive_phases(events) if p.end is not None]
            for phase in phases[printed:]:
                echo(format_phase_line(phase))
            printed = len(phases)
            if events and events[-1].get("kind") == "exit":
                total = total_duration(derive_phases(events))
                echo(f"stopped: total {total:.2f} s" if total is not None else "stopped")
                return 0
            if not watch.wait(idle_timeout):
                return 1
            watch.drain()
