"""What a supervised VM tells: lines for the person watching, and events for its phase log."""

from __future__ import annotations

from typing import Any, TextIO

from winarm.timeline.events import EventKind, EventLog
from winarm.timeline.phases import derive_phases, format_phase_line


class Reporter:
    """Says lines prefixed with the VM name and records events, printing each phase the moment it ends."""

    def __init__(self, events: EventLog, name: str, out: TextIO | None) -> None:
        self.events = events
        self.name = name
        self.out = out
        self._printed_phases = 0

    def say(self, message: str) -> None:
        """One line for the person watching, prefixed with the VM name (nothing without an output)."""
        if self.out is not None:
            print(f"[{self.name}] {message}", file=self.out, flush=True)

    def record(self, kind: EventKind, *, at: float | None = None, **details: Any) -> None:
        """Timestamp an event, append it to the log, and say any phase it completed. Never raises for a log
        the storage refuses (the log keeps it)."""
        self.events.record(kind, at=at, **details)
        phases = [p for p in derive_phases(self.events.events) if p.end is not None]
        for phase in phases[self._printed_phases :]:
            self.say(format_phase_line(phase))
        self._printed_phases = len(phases)
