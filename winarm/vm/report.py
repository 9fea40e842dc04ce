"""What a supervised VM tells: lines for the person watching, and events for its phase log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from winarm.timeline.events import EventKind, EventLog
from winarm.timeline.phases import Phase, derive_phases, format_phase_line


class Reporter:
    """Says lines prefixed with the VM name and records events, printing each phase the moment it ends."""

    def __init__(self, events: EventLog, name: str, out: TextIO | None) -> None:
        self.events = events
        self.name = name
        self.out = out
        self._printed_phases = 0
        self.current: Phase | None = None
        """The phase under way (None once the run ended)."""
        self.phase_listeners: list[Callable[[Phase | None], None]] = []
        """Called with the new phase whenever another one starts (the traffic watch's apply progress)."""

    def say(self, message: str) -> None:
        """One line for the person watching, prefixed with the VM name (nothing without an output)."""
        if self.out is not None:
            print(f"[{self.name}] {message}", file=self.out, flush=True)

    def record(self, kind: EventKind, *, at: float | None = None, **details: Any) -> None:
        """Timestamp an event, append it to the log, and say any phase it completed. Never raises for a log
        the storage refuses (the log keeps it)."""
        self.events.record(kind, at=at, **details)
        every = derive_phases(self.events.events)
        phases = [p for p in every if p.end is not None]
        for phase in phases[self._printed_phases :]:
            self.say(format_phase_line(phase))
        self._printed_phases = len(phases)
        current = every[-1] if every and every[-1].end is None else None
        if (current and (current.name, current.start)) != (self.current and (self.current.name, self.current.start)):
            for listener in self.phase_listeners:
                listener(current)
        self.current = current
