"""A guest flooding winarm (issue 14, finding 6): 8,000 console event lines cost 6.9 s of event-loop time (the
phases were derived again from every event at each new one) and 3,000 distinct markers made 3,000 metrics series,
with no bound on the logs. Through the real Reporter and EventLog: the caps hold, what was dropped is counted and
said once, winarm's own events are never dropped, and the phase work grows linearly with the events."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest

from winarm.timeline import phases as phases_module
from winarm.timeline.events import EventKind, EventLog, read_events
from winarm.timeline.phases import LivePhases, derive_phases
from winarm.vm.event_caps import DETAIL_CHARS, GUEST_EVENTS, MARKERS
from winarm.vm.report import Reporter


def reporter(tmp_path: Path) -> tuple[Reporter, io.StringIO]:
    out = io.StringIO()
    return Reporter(EventLog(tmp_path / "events.jsonl"), "vm", out), out


def test_a_flood_of_50k_lines_and_3000_markers_stays_within_the_caps(tmp_path: Path) -> None:
    rep, out = reporter(tmp_path)
    rep.record(EventKind.RUNNING)
    for i in range(50_000):
        rep.record(EventKind.FIRMWARE_OUTPUT, line=f"flood {i}")
    for i in range(3000):
        rep.record(EventKind.MARKER, name=f"m{i}", source="serial")
    rep.record(EventKind.STOP_REQUESTED, reason="test")
    rep.record(EventKind.EXIT, code=0)
    rep.events.close()
    events = read_events(tmp_path / "events.jsonl")
    kinds = [e["kind"] for e in events]
    assert kinds.count("firmware-output") + kinds.count("marker") <= GUEST_EVENTS
    assert kinds.count("marker") <= MARKERS
    assert kinds[-3:] == ["stop-requested", "events-dropped", "exit"], "winarm's own events are kept"
    dropped = [e for e in events if e["kind"] == "events-dropped"]
    assert len(dropped) == 2 and dropped[0]["first"] == "firmware-output"
    assert dropped[1]["count"] == 50_000 + 3000 - (kinds.count("firmware-output") + kinds.count("marker"))
    assert out.getvalue().count("flooding") == 1, "said once"
    assert len(derive_phases(events)) <= MARKERS + 4, "phases (and metrics series) are bounded too"


def test_a_new_boot_starts_the_counts_again(tmp_path: Path) -> None:
    rep, _ = reporter(tmp_path)
    rep.record(EventKind.RUNNING)
    for i in range(MARKERS + 5):
        rep.record(EventKind.MARKER, name=f"a{i}", source="serial")
    rep.record(EventKind.RESET)
    rep.record(EventKind.MARKER, name="after-reset", source="serial")
    names = [e.get("name") for e in rep.events.events if e["kind"] == "marker"]
    assert names[-1] == "after-reset" and len(names) == MARKERS + 1


def test_long_text_is_cut(tmp_path: Path) -> None:
    rep, _ = reporter(tmp_path)
    rep.record(EventKind.FIRMWARE_OUTPUT, line="x" * 10_000)
    assert len(rep.events.events[-1]["line"]) == DETAIL_CHARS


def test_the_phase_work_grows_linearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted, not timed: how many times the phase clock looks at an event while 1,500 are recorded (within
    the caps). Deriving the phases again at each event looked at about n*n/2 of them (1.1 million)."""
    fed = 0
    original = phases_module._Clock.feed

    def counting(self: Any, event: dict[str, Any]) -> None:
        nonlocal fed
        fed += 1
        original(self, event)

    monkeypatch.setattr(phases_module._Clock, "feed", counting)
    rep, _ = reporter(tmp_path)
    for i in range(1500):
        rep.record(EventKind.FIRMWARE_OUTPUT, line=f"line {i}")
    assert fed == 1500


KINDS = ["running", "boot-device", "marker", "reset", "firmware-output", "report", "storage-full",
         "storage-resumed", "stop-requested"]


@pytest.mark.parametrize("seed", range(20))
def test_live_phases_agree_with_derive_phases(seed: int) -> None:
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    live = LivePhases()
    t = 0.0
    for _ in range(rng.randrange(5, 80)):
        t += rng.choice([0.0, 0.5, 1.0])
        kind = rng.choice(KINDS)
        event: dict[str, Any] = {"t": t, "kind": kind}
        if kind == "marker":
            event.update(name=rng.choice(["a", "b", "windowsPE"]), source=rng.choice(["serial", "boot-order"]))
        if kind == "boot-device":
            event["device"] = rng.choice(["cd", "disk"])
        events.append(event)
        live.feed(event)
        assert live.closed == [p for p in derive_phases(events) if p.end is not None], events
    events.append({"t": t + 1, "kind": "exit"})
    live.feed(events[-1])
    assert live.closed == derive_phases(events) and live.current is None
