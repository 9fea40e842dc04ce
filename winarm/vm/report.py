"""What a supervised VM tells: lines for the person watching, and events for its phase log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from winarm.timeline.events import EventKind, EventLog
from winarm.timeline.phases import LivePhases, Phase, format_phase_line
from winarm.vm.event_caps import GUEST_EVENTS, MARKERS, EventCaps


class Reporter:
    """Says lines prefixed with the VM name and records events, printing each phase the moment it ends."""

    def __init__(self, events: EventLog, name: str, out: TextIO | None) -> None:
        self.events = events
        self.name = name
        self.out = out
        self._phases = LivePhases()
        self.caps = EventCaps()
        """What this run dropped of the guest's events (shown by ``status``)."""
        self.current: Phase | None = None
        """The phase under way (None once the run ended)."""
        self.phase_listeners: list[Callable[[Phase | None], None]] = []
        """Called with the new phase whenever another one starts (the traffic watch's apply progress)."""

    def say(self, message: str) -> None:
        """One line for the person watching, prefixed with the VM name (nothing without an output)."""
        if self.out is not None:
            print(f"[{self.name}] {message}", file=self.out, flush=True)

    def record(self, kind: EventKind, *, at: float | None = None, **details: Any) -> None:
        """Timestamp an event, append it to the log, and say any phase it completed; a guest-driven event past
        the boot's caps is dropped and counted instead (:mod:`winarm.vm.event_caps`: the first drop of a boot
        is recorded and said once). Never raises for a log the storage refuses (the log keeps it)."""
        if kind in (EventKind.RUNNING, EventKind.RESET, EventKind.EXIT) and self.caps.dropped:
            self.events.record(EventKind.EVENTS_DROPPED, count=sum(self.caps.dropped.values()),
                               kinds=dict(self.caps.dropped))  # the boot's final count
        keep, details = self.caps.admit(kind, details)
        if not keep:
            if self.caps.first_drop():
                self.events.record(EventKind.EVENTS_DROPPED, first=str(kind), guest_events=GUEST_EVENTS,
                                   markers=MARKERS)
                self.say(f"the guest is flooding winarm: {kind} and other guest events past {GUEST_EVENTS} (or "
                         f"{MARKERS} markers) this boot are dropped and counted")
            return
        event = self.events.record(kind, at=at, **details)
        for phase in self._phases.feed(event):
            self.say(format_phase_line(phase))
        current = self._phases.current
        if (current and (current.name, current.start)) != (self.current and (self.current.name, self.current.start)):
            for listener in self.phase_listeners:
                listener(current)
        self.current = current
