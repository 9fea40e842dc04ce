"""The boot-phase clock: timestamped events in, named phases with durations out.

Every event is a dict ``{"t": seconds since winarm up started, "kind": ..., ...details}``, appended to a
JSON-lines file the moment it happens, so a crash loses nothing already seen. Phases are derived from the
events by a pure function, so the arithmetic is tested without QEMU.

Phase boundaries (each phase runs from one boundary to the next, so durations add up to the total):
- ``launch``: from ``winarm up`` to QEMU running;
- ``firmware``: from the start of each boot (QEMU running, or a RESET) to the firmware starting a boot entry;
- ``boot-<device>``: from the firmware starting an entry (the CD, the disk) to the guest's first marker;
- ``<marker>``: each ``WINARM-PHASE <name>`` line on the serial console starts a phase of that name;
- ``shutdown``: from the stop request (``stop-requested``: a signal, ``winarm down``, the ``--stop-at`` marker;
  or ``powerdown-requested`` when winarm stops the VM by itself) to QEMU's exit; markers the guest prints
  meanwhile do not split it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from winarm.files import append_some

Event = dict[str, Any]

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

    @property
    def duration(self) -> float | None:
        return None if self.end is None else round(self.end - self.start, 6)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration"] = self.duration
        return out


def derive_phases(events: Iterable[Event]) -> list[Phase]:  # noqa: C901, PLR0912
    """Turn an ordered event stream into contiguous phases (see the module docstring for the rules).

    Events other than the boundary kinds (key presses, firmware output, QMP ready) are ignored here.
    The last phase is open (``end`` None) unless an ``exit`` event closed the stream.
    """
    events_list = list(events)
    phases: list[Phase] = []
    said: set[int] = set()  # indexes of phases the guest announced: kept even when zero-length
    name, boot, start = "launch", 0, 0.0
    from_marker = closed = False

    def close(at: float) -> None:
        if from_marker:
            said.add(len(phases))
        phases.append(Phase(name, boot, start, round(at, 6)))

    for event in events_list:
        kind, t = event.get("kind"), float(event.get("t", 0.0))
        if closed or kind not in BOUNDARY_KINDS:
            continue
        if kind == "running":
            if boot != 0:
                continue  # a RESUME after a pause, not a new boot
            close(t)
            name, boot, start, from_marker = "firmware", 1, t, False
        elif kind == "reset":
            if name == "shutdown":
                continue
            close(t)
            name, boot, start, from_marker = "firmware", boot + 1, t, False
        elif name == "shutdown" and kind in ("boot-device", "marker"):
            continue  # what the guest says while it shuts down is part of the shutdown
        elif kind == "boot-device":
            close(t)
            name, start, from_marker = f"boot-{event.get('device', 'unknown')}", t, False
        elif kind == "marker":
            close(t)
            name, start, from_marker = str(event.get("name", "marker")), t, True
        elif kind in ("stop-requested", "powerdown-requested"):
            if name == "shutdown":
                continue
            close(t)
            name, start, from_marker = "shutdown", t, False
        elif kind == "exit":
            close(t)
            closed = True
    if not closed:
        phases.append(Phase(name, boot, start, None))
    # a zero-length phase of winarm's own making says nothing (two boundaries in the same instant); one the
    # guest announced is kept: its markers can arrive in one read, and the phase still happened
    kept = [p for i, p in enumerate(phases) if p.end is None or p.end > p.start or p.name == "launch" or i in said]
    return _with_pauses(kept, events_list)


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


class EventLog:
    """Appends events to a JSON-lines file, timestamped from a monotonic clock started at construction.

    Each event is written as it is recorded. ``t0`` may be given to count from an earlier moment (the
    process start), so the first phase includes winarm's own start-up. When the file cannot be written (the
    storage is full), events are kept in memory, in order, and written at the next :meth:`record` or
    :meth:`flush` that succeeds: the log is late, never torn or reordered, and the VM is never stopped for it.
    """

    def __init__(self, path: Path, *, t0: float | None = None) -> None:
        self.path = path
        self.t0 = time.monotonic() if t0 is None else t0
        self.events: list[Event] = []
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._pending = b""
        self.write_error: OSError | None = None
        """The last write that failed, while events are waiting to be written; None when the file is whole."""

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 6)

    def record(self, kind: str, *, at: float | None = None, **details: Any) -> Event:
        """Append one event (timestamped now, or ``at``) to memory and to the file; returns it."""
        event: Event = {"t": self.now() if at is None else at, "kind": kind, **details}
        self.events.append(event)
        self._pending += (json.dumps(event, sort_keys=False) + "\n").encode()
        self.flush()
        return event

    def flush(self) -> bool:
        """Write what is waiting; True when the file holds every event. Never raises for a failed write."""
        written, self.write_error = append_some(self._fd, self._pending)
        self._pending = self._pending[written:]
        return self.write_error is None

    def close(self) -> None:
        self.flush()
        os.close(self._fd)


def read_events(path: Path) -> list[Event]:
    """Events from a JSON-lines log; a torn last line (a crash mid-write) is skipped, not fatal."""
    events: list[Event] = []
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            text = raw.strip()
            if not text:
                continue
            try:
                item = json.loads(text)
            except ValueError:
                continue
            if isinstance(item, dict):
                events.append(item)
    return events


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
    ends = f"ends at {phase.end:.2f} s{paused}"
    return f"phase {phase.name:<18} {phase.duration or 0:8.2f} s   (boot {phase.boot}, {ends})"


def format_table(phases: list[Phase], *, now: float | None = None) -> Iterator[str]:
    """The timeline for people: one row a phase, then the total."""
    yield f"{'#':>2}  {'phase':<20} {'boot':>4} {'start s':>9} {'end s':>9} {'duration s':>11}"
    for index, phase in enumerate(phases, 1):
        lead = f"{index:>2}  {phase.name:<20} {phase.boot:>4} {phase.start:>9.2f}"
        if phase.end is None:
            running = f"{(now - phase.start):.2f}+" if now is not None else "running"
            yield f"{lead} {'-':>9} {running:>11}"
        else:
            paused = f"   of which {phase.paused:.2f} s paused: storage full" if phase.paused else ""
            yield f"{lead} {phase.end:>9.2f} {phase.duration or 0.0:>11.2f}{paused}"
    total = total_duration(phases)
    if total is not None:
        yield f"{'':>2}  {'total':<20} {'':>4} {'':>9} {'':>9} {total:>11.2f}"
