"""Caps on what the guest can make winarm record in one boot (issue 14: a guest flooding the serial console
made 8,000 event lines and 3,000 distinct markers, hence 3,000 metrics series, and no log had a bound).

The kinds the guest drives (console output, markers, reports) are counted per boot: past :data:`GUEST_EVENTS`
of them, or :data:`MARKERS` markers, more are dropped and counted, and the first drop of a boot is recorded once
(``events-dropped``, with what was capped) so the log says so. Kinds winarm drives itself (QMP events, the stop,
boundaries of boots) are never dropped. Any text in any event is cut to :data:`DETAIL_CHARS` characters.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

GUEST_EVENTS = 2000
"""Guest-driven events kept per boot: a real install records a few hundred (firmware lines, reports)."""
MARKERS = 100
"""Markers (each starts a phase, a line and a metrics series) kept per boot: an install has about ten."""
DETAIL_CHARS = 500
"""The longest text kept in an event's detail; longer text is cut and ends with an ellipsis."""
GUEST_DRIVEN = frozenset({
    "firmware-output", "boot-device", "marker", "marker-again", "guest-event", "report", "report-refused",
})
"""The kinds whose number the guest decides."""
NEW_BOOT = frozenset({"running", "reset"})


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > DETAIL_CHARS:
        return value[: DETAIL_CHARS - 1] + "\u2026"
    return value


class EventCaps:
    """Which events of a boot are kept: see the module. :attr:`dropped` counts what was dropped this boot, by
    kind; :attr:`dropped_total` over the whole run."""

    def __init__(self) -> None:
        self.kept: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.dropped_total = 0

    def admit(self, kind: str, details: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Whether to keep an event of ``kind``, and its details with long text cut. A new boot (``running``,
        ``reset``) starts the counts again."""
        if kind in NEW_BOOT:
            self.kept.clear()
            self.dropped.clear()
        details = {key: _cut(value) for key, value in details.items()}
        if kind not in GUEST_DRIVEN:
            return True, details
        guest = sum(self.kept[k] for k in GUEST_DRIVEN)
        if guest >= GUEST_EVENTS or (kind == "marker" and self.kept["marker"] >= MARKERS):
            self.dropped[kind] += 1
            self.dropped_total += 1
            return False, details
        self.kept[kind] += 1
        return True, details

    def first_drop(self) -> bool:
        """Whether the last refused event was the first of this boot (so the caller records that once)."""
        return sum(self.dropped.values()) == 1
