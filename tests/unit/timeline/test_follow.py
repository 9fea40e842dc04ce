"""``winarm phases --follow`` against a phase log written while it watches (threads synchronised by events,
not sleeps)."""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path

from winarm.timeline.follow import follow_phases


def append(log: Path, event: dict[str, object]) -> None:
    with log.open("a") as handle:
        handle.write(json.dumps(event) + "\n")


def start(log: Path) -> tuple[queue.Queue[str], list[int], threading.Thread]:
    """follow_phases in a thread: the lines it prints arrive in the queue, its status in the list."""
    lines: queue.Queue[str] = queue.Queue()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(follow_phases(log, lines.put, idle_timeout=30)))
    thread.start()
    return lines, result, thread


def test_follow_prints_each_phase_as_it_completes_and_ends_with_the_run(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    append(log, {"t": 0.0, "kind": "start"})
    append(log, {"t": 0.2, "kind": "running"})
    lines, result, thread = start(log)
    assert lines.get(timeout=10).startswith("phase launch ")
    append(log, {"t": 2.0, "kind": "boot-device", "device": "disk"})
    assert lines.get(timeout=10).startswith("phase firmware ")
    append(log, {"t": 5.0, "kind": "marker", "name": "ready"})
    assert lines.get(timeout=10).startswith("phase boot-disk ")
    append(log, {"t": 6.0, "kind": "powerdown-requested"})
    assert lines.get(timeout=10).startswith("phase ready ")
    append(log, {"t": 7.5, "kind": "exit", "code": 0})
    assert lines.get(timeout=10).startswith("phase shutdown ")
    assert lines.get(timeout=10) == "stopped: total 7.50 s"
    thread.join(10)
    assert result == [0]
    assert lines.empty()


def test_follow_starts_over_when_a_new_run_replaces_the_log(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    append(log, {"t": 0.0, "kind": "start"})
    append(log, {"t": 0.3, "kind": "running"})
    lines, result, thread = start(log)
    assert lines.get(timeout=10).startswith("phase launch ")
    log.rename(tmp_path / "old.jsonl")  # what a new `winarm up` does with the last run's log
    fresh = tmp_path / "events.jsonl.new"
    append(fresh, {"t": 0.0, "kind": "start"})
    append(fresh, {"t": 0.4, "kind": "running"})
    append(fresh, {"t": 0.9, "kind": "exit", "code": 0})
    fresh.rename(log)
    assert lines.get(timeout=10).startswith("phase launch ")
    assert lines.get(timeout=10).startswith("phase firmware ")
    assert lines.get(timeout=10) == "stopped: total 0.90 s"
    thread.join(10)
    assert result == [0]


def test_follow_gives_up_after_the_idle_timeout(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    append(log, {"t": 0.0, "kind": "start"})
    assert follow_phases(log, lambda line: None, idle_timeout=0.2) == 1


def test_follow_prints_progress_reports_and_a_stall_between_phases(tmp_path: Path) -> None:
    """An install's windowsPE (inferred) with its apply progress, a stall and its end, then a report."""
    log = tmp_path / "events.jsonl"
    for event in ({"t": 0.0, "kind": "start"}, {"t": 0.2, "kind": "running"},
                  {"t": 2.0, "kind": "boot-device", "device": "cd"},
                  {"t": 2.0, "kind": "marker", "name": "windowsPE", "source": "boot-order"}):
        append(log, event)
    lines, result, thread = start(log)
    assert lines.get(timeout=10).startswith("phase launch ")
    assert lines.get(timeout=10).startswith("phase firmware ")
    append(log, {"t": 9.0, "kind": "apply-progress", "percent": 45, "written": 4_300_000_000,
                 "total": 9_600_000_000})
    assert lines.get(timeout=10) == "      9.00 s  applying image: 44 % (4.3 of about 9.6 GB)"
    append(log, {"t": 900.0, "kind": "stalled", "quiet": 600, "last": "disk I/O at 300.0 s"})
    assert lines.get(timeout=10) == "    900.00 s  STALLED: nothing moved for 600 s (last: disk I/O at 300.0 s)"
    append(log, {"t": 950.0, "kind": "reset"})
    line = lines.get(timeout=10)
    assert line.startswith("phase windowsPE ") and line.endswith("inferred from the boot order)")
    append(log, {"t": 960.0, "kind": "report", "name": "drivers"})
    assert lines.get(timeout=10) == "    960.00 s  guest reported drivers"
    append(log, {"t": 961.0, "kind": "exit", "code": 0})
    assert lines.get(timeout=10).startswith("phase firmware ")
    assert lines.get(timeout=10).startswith("stopped: total")
    thread.join(10)
    assert result == [0]
