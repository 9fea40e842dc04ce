"""The boot-phase clock: timestamped events in, named phases with durations out.

Every event is a dict ``{"t": seconds since winarm up started, "kind": ..., ...details}``, appended to a
JSON-lines file the moment it happens, so a crash loses nothing already seen. Phases are derived from the
events by a pure function, so the arithmetic is tested without QEMU.

Phase boundaries (each phase runs from one boundary to the next, so durations add up to the total):
- ``launch``: from ``winarm up`` to QEMU running;
- ``firmware``: from the start of each boot (QEMU running, or a RESET) to the firmware starting a boot entry;
- ``boot-<device>``: from the firmware starting an entry (the CD, the disk) to the guest's first marker;
- ``<marker>``: each marker starts a phase of its name; its ``source`` says who named it: ``serial`` (a
  ``WINARM-PHASE <name>`` line on the console: the test guest's own Linux phases), ``guest`` (a report over the
  guest channel), ``share`` (the desktop-ready file), or ``boot-order`` (winarm named an install boot by Setup's
  sequence: windowsPE, specialize, oobeSystem); a guest report later in that boot confirms it (``guest``);
- phases winarm sees itself (launch, firmware, boot-<device>, shutdown) carry no source;
- ``shutdown``: from the stop request (``stop-requested``: a signal, ``winarm down``, the ``--stop-at`` marker;
  or ``powerdown-requested`` when winarm stops the VM by itself) to QEMU's exit; markers the guest prints
  meanwhile do not split it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from winarm.timeline.events import Event

INFERRED = "boot-order"
"""The source of a phase winarm named by Setup's boot sequence alone."""
CONFIRMED = "guest"
"""The source of a phase a report over the guest channel started or confirmed."""
BOUNDARY_KINDS = ("running", "boot-device", "marker", "reset", "stop-requested", "powerdown-requested", "exit")


@dataclass(frozen=True)
class Phase:
    """One named span of a boot. ``end`` and ``duration`` are None while the phase is still going on."""

    name: str
    boot: int
    start: float
    end: float | None
    paused: float = 0.0
    """Seconds of this phase the VM spent paused because the storage was full (part of ``duration``)."""
    source: str | None = None
    """Who named the phase (see the module docstring); None for the phases winarm sees itself."""

    @property
    def inferred(self) -> bool:
        """Whether the phase is only inferred from the boot order (no guest report confirmed it)."""
        return self.source == INFERRED

    @property
    def duration(self) -> float | None:
        return None if self.end is None else round(self.end - self.start, 6)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration"] = self.duration
        return out


class _Clock:
    """The fold behind :func:`derive_phases`: the phase under way, and the phases closed so far."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []
        self.said: set[int] = set()  # indexes of phases the guest announced: kept even when zero-length
        self.name, self.boot, self.start = "launch", 0, 0.0
        self.source: str | None = None
        self.from_marker = self.closed = False

    def close(self, at: float) -> None:
        """End the phase under way at ``at``."""
        if self.from_marker:
            self.said.add(len(self.phases))
        self.phases.append(Phase(self.name, self.boot, self.start, round(at, 6), source=self.source))

    def open(self, name: str, at: float, *, boot: int | None = None, source: str | None = None) -> None:
        """Close the phase under way at ``at`` and start ``name`` there (``source``: see :class:`Phase`)."""
        self.close(at)
        self.name, self.start, self.from_marker, self.source = name, at, source is not None, source
        if boot is not None:
            self.boot = boot

    def feed(self, event: Event) -> None:
        """Apply one event; kinds other than the boundaries (and reports, which confirm) are ignored."""
        kind, t = event.get("kind"), float(event.get("t", 0.0))
        if kind == "report" and not self.closed and self.source == INFERRED:
            self.source = CONFIRMED  # the guest spoke in this boot: the boot order named it right
            return
        if self.closed or kind not in BOUNDARY_KINDS or self._ignored(kind):
            return
        if kind == "running":
            self.open("firmware", t, boot=1)
        elif kind == "reset":
            self.open("firmware", t, boot=self.boot + 1)
        elif kind == "boot-device":
            self.open(f"boot-{event.get('device', 'unknown')}", t)
        elif kind == "marker":
            self.open(str(event.get("name", "marker")), t, source=str(event.get("source", "serial")))
        elif kind in ("stop-requested", "powerdown-requested"):
            self.open("shutdown", t)
        else:  # exit
            self.close(t)
            self.closed = True

    def _ignored(self, kind: object) -> bool:
        """A RESUME after a pause is not a new boot; what the guest says while it shuts down (a reset, a
        boot entry, a marker, another stop request) is part of the shutdown."""
        if kind == "running":
            return self.boot != 0
        return self.name == "shutdown" and kind != "exit"

    def result(self) -> list[Phase]:
        """The phases, with the last one open unless an exit closed the stream; a zero-length phase of
        winarm's own making says nothing (two boundaries in the same instant); one the guest announced is
        kept: its markers can arrive in one read, and the phase still happened."""
        phases = self.phases if self.closed else [
            *self.phases, Phase(self.name, self.boot, self.start, None, source=self.source)]
        return [p for i, p in enumerate(phases)
                if p.end is None or p.end > p.start or p.name == "launch" or i in self.said]


def derive_phases(events: Iterable[Event]) -> list[Phase]:
    """Turn an ordered event stream into contiguous phases (see the module docstring for the rules).

    Events other than the boundary kinds (key presses, firmware output, QMP ready) are ignored here.
    The last phase is open (``end`` None) unless an ``exit`` event closed the stream.
    """
    events_list = list(events)
    clock = _Clock()
    for event in events_list:
        clock.feed(event)
    return _with_pauses(clock.result(), events_list)


class LivePhases:
    """:func:`derive_phases` kept up to date one event at a time, for a running VM: each :meth:`feed` costs
    time in proportion to the phases it closes (and the pauses, which are few), not to the events so far, so a
    guest flooding the console cannot make the daemon's work grow with the square of what it sent."""

    def __init__(self) -> None:
        self._clock = _Clock()
        self._pause_events: list[Event] = []
        self._seen = 0  # phases of the clock already looked at
        self.closed: list[Phase] = []
        """The closed phases so far, as :func:`derive_phases` gives them (zero-length ones of winarm's making
        left out, paused seconds counted)."""

    def feed(self, event: Event) -> list[Phase]:
        """Apply one event; returns the phases it closed (usually none)."""
        if event.get("kind") in ("storage-full", "storage-resumed", "exit"):
            self._pause_events.append(event)
        self._clock.feed(event)
        raw = self._clock.phases
        fresh = [p for i, p in enumerate(raw[self._seen:], start=self._seen)
                 if p.end is not None and (p.end > p.start or p.name == "launch" or i in self._clock.said)]
        self._seen = len(raw)
        fresh = _with_pauses(fresh, self._pause_events)
        self.closed += fresh
        return fresh

    @property
    def current(self) -> Phase | None:
        """The phase under way (None once an ``exit`` closed the stream)."""
        clock = self._clock
        return None if clock.closed else Phase(clock.name, clock.boot, clock.start, None, source=clock.source)


def pause_spans(events: Iterable[Event]) -> list[tuple[float, float | None]]:
    """When the VM was paused for a full storage: from each ``storage-full`` to the next ``storage-resumed``
    or ``exit`` (None: still paused)."""
    spans: list[tuple[float, float | None]] = []
    since: float | None = None
    for event in events:
        kind, t = event.get("kind"), float(event.get("t", 0.0))
        if kind == "storage-full" and since is None:
            since = t
        elif kind in ("storage-resumed", "exit") and since is not None:
            spans.append((since, t))
            since = None
    if since is not None:
        spans.append((since, None))
    return spans


def _with_pauses(phases: list[Phase], events: list[Event]) -> list[Phase]:
    """The phases with the paused seconds that fall inside each (an open span counts up to the phase's end)."""
    spans = pause_spans(events)
    if not spans:
        return phases
    out = []
    for phase in phases:
        paused = 0.0
        for start, end in spans:
            ends = [t for t in (end, phase.end) if t is not None]  # an open span or phase ends with the other
            if ends:
                paused += max(0.0, min(ends) - max(start, phase.start))
        out.append(replace(phase, paused=round(paused, 6)) if paused else phase)
    return out


def total_duration(phases: list[Phase]) -> float | None:
    """Seconds from start to the end of the last closed phase, or None when nothing closed."""
    closed = [p for p in phases if p.end is not None]
    return closed[-1].end if closed else None


def timeline_json(events: list[Event]) -> dict[str, Any]:
    """The ``winarm phases --json`` document: ``events`` and ``phases``."""
    phases = derive_phases(events)
    return {
        "events": events,
        "phases": [p.as_dict() for p in phases],
        "total": total_duration(phases),
    }


def format_phase_line(phase: Phase) -> str:
    """One live line for a phase that just ended."""
    paused = f", {phase.paused:.2f} s of it paused: storage full" if phase.paused else ""
    source = {INFERRED: ", inferred from the boot order", CONFIRMED: ", reported"}.get(phase.source or "", "")
    ends = f"ends at {phase.end:.2f} s{paused}{source}"
    return f"phase {phase.name:<18} {phase.duration or 0:8.2f} s   (boot {phase.boot}, {ends})"


def format_table(phases: list[Phase], *, now: float | None = None) -> Iterator[str]:
    """The timeline for people: one row a phase (with who named it: ``boot-order`` rows are inferred, not
    reported), then the total."""
    yield f"{'#':>2}  {'phase':<20} {'boot':>4} {'start s':>9} {'end s':>9} {'duration s':>11}  source"
    for index, phase in enumerate(phases, 1):
        lead = f"{index:>2}  {phase.name:<20} {phase.boot:>4} {phase.start:>9.2f}"
        source = f"  {phase.source or '-'}"
        if phase.end is None:
            running = f"{(now - phase.start):.2f}+" if now is not None else "running"
            yield f"{lead} {'-':>9} {running:>11}{source}"
        else:
            paused = f"   of which {phase.paused:.2f} s paused: storage full" if phase.paused else ""
            yield f"{lead} {phase.end:>9.2f} {phase.duration or 0.0:>11.2f}{source}{paused}"
    total = total_duration(phases)
    if total is not None:
        yield f"{'':>2}  {'total':<20} {'':>4} {'':>9} {'':>9} {total:>11.2f}"
