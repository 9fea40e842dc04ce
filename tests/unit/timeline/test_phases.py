"""The phase clock's arithmetic and the console parsing, on captured text: no QEMU needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from winarm.qemu.console import (
    LineSplitter,
    classify_device_path,
    parse_boot_entry,
    parse_guest_event,
    parse_marker,
    strip_ansi,
)
from winarm.timeline.events import EventKind, EventLog, read_events
from winarm.timeline.phases import (
    BOUNDARY_KINDS,
    derive_phases,
    format_phase_line,
    format_table,
    timeline_json,
    total_duration,
)

BOOT = [
    {"t": 0.0, "kind": "start"},
    {"t": 0.3, "kind": "qmp-ready"},
    {"t": 0.31, "kind": "running"},
    {"t": 0.35, "kind": "firmware-output"},
    {"t": 2.0, "kind": "boot-device", "device": "cd"},
    {"t": 2.5, "kind": "key-pressed"},
    {"t": 4.0, "kind": "marker", "name": "init"},
    {"t": 5.0, "kind": "marker", "name": "setup"},
    {"t": 6.0, "kind": "reset"},
    {"t": 8.0, "kind": "boot-device", "device": "disk"},
    {"t": 9.5, "kind": "marker", "name": "ready"},
    {"t": 10.0, "kind": "powerdown-requested"},
    {"t": 10.2, "kind": "marker", "name": "poweroff"},
    {"t": 10.4, "kind": "shutdown", "guest": True},
    {"t": 10.5, "kind": "exit", "code": 0},
]


def test_phases_follow_boundaries_and_boots() -> None:
    phases = derive_phases(BOOT)
    assert [(p.name, p.boot) for p in phases] == [
        ("launch", 0),
        ("firmware", 1),
        ("boot-cd", 1),
        ("init", 1),
        ("setup", 1),
        ("firmware", 2),
        ("boot-disk", 2),
        ("ready", 2),
        ("shutdown", 2),  # the guest's "poweroff" marker falls inside the shutdown it belongs to
    ]
    assert [p.duration for p in phases][:3] == [0.31, 1.69, 2.0]


def test_phases_are_contiguous_and_add_up_to_the_total() -> None:
    phases = derive_phases(BOOT)
    for before, after in zip(phases, phases[1:], strict=False):
        assert before.end == after.start
    assert total_duration(phases) == 10.5
    assert abs(sum(p.duration or 0 for p in phases) - 10.5) < 1e-9


def test_a_running_boot_ends_in_an_open_phase() -> None:
    phases = derive_phases(BOOT[:8])
    assert phases[-1].name == "setup" and phases[-1].end is None and phases[-1].duration is None
    table = list(format_table(phases, now=5.5))
    assert "0.50+" in table[-2] or "0.50+" in table[-1]


def test_a_second_powerdown_or_late_reset_does_not_restart_phases() -> None:
    events = [
        {"t": 0, "kind": "start"},
        {"t": 1, "kind": "running"},
        {"t": 2, "kind": "powerdown-requested"},
        {"t": 3, "kind": "powerdown-requested"},
        {"t": 4, "kind": "reset"},
        {"t": 5, "kind": "exit"},
    ]
    assert [(p.name, p.start, p.end) for p in derive_phases(events)] == [
        ("launch", 0.0, 1.0),
        ("firmware", 1.0, 2.0),
        ("shutdown", 2.0, 5.0),
    ]


def test_event_log_appends_json_lines_as_they_happen(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, t0=0.0)
    log.record("start")
    # readable before close: a crash right now loses nothing
    assert [e["kind"] for e in read_events(path)] == ["start"]
    log.record("marker", name="x")
    log.close()
    with path.open("a") as handle:
        handle.write('{"t": 1, "kind": "torn')  # a crash mid-write
    assert [e["kind"] for e in read_events(path)] == ["start", "marker"]


def test_timeline_json_shape() -> None:
    doc = timeline_json(BOOT)
    assert set(doc) == {"events", "phases", "total"}
    assert set(doc["phases"][0]) == {"name", "boot", "start", "end", "duration", "paused", "source"}
    json.dumps(doc)


def test_time_paused_for_a_full_storage_is_shown_inside_the_phases_it_fell_in() -> None:
    events = [
        {"t": 0.5, "kind": "running"},
        {"t": 2.0, "kind": "marker", "name": "ready"},
        {"t": 3.0, "kind": "storage-full"},
        {"t": 7.5, "kind": "storage-resumed"},
        {"t": 9.0, "kind": "storage-full"},
        {"t": 10.0, "kind": "stop-requested"},
        {"t": 10.5, "kind": "exit"},
    ]
    phases = {p.name: p for p in derive_phases(events)}
    assert phases["firmware"].paused == 0.0
    assert phases["ready"].paused == 4.5 + 1.0, "the first pause whole, the second up to the stop request"
    assert phases["shutdown"].paused == 0.5, "a pause still going on at the exit ends there"
    assert sum(p.duration or 0 for p in phases.values()) == 10.5, "pauses are inside durations, not beside them"
    table = list(format_table(list(phases.values())))
    assert any(" ready " in row and row.endswith("of which 5.50 s paused: storage full") for row in table), table
    assert "5.50 s of it paused" in format_phase_line(phases["ready"])
    going_on = derive_phases(events[:4])[-1]
    assert going_on.name == "ready" and going_on.end is None and going_on.paused == 4.5, "an ended pause counts"


FIRMWARE = (
    b'\x1b[2J\x1b[01;01HBdsDxe: loading Boot0003 "UEFI QEMU QEMU USB HARDDRIVE 1-0000:00:02.0-1" from '
    b"PciRoot(0x0)/Pci(0x2,0x0)/USB(0x0,0x0)\r\n"
    b'BdsDxe: starting Boot0003 "UEFI QEMU QEMU USB HARDDRIVE 1-0000:00:02.0-1" from '
    b"PciRoot(0x0)/Pci(0x2,0x0)/USB(0x0,0x0)\r\n"
    b"\x1b[1m\x1b[33mPress any key to boot from CD or DVD"
)


def test_lines_are_split_and_cleaned() -> None:
    splitter = LineSplitter()
    lines = splitter.feed(FIRMWARE[:50]) + splitter.feed(FIRMWARE[50:])
    assert len(lines) == 2 and lines[0].startswith("BdsDxe: loading")
    assert splitter.pending() == "Press any key to boot from CD or DVD"
    assert "\x1b" not in "".join(lines)


def test_an_endless_line_is_cut() -> None:
    splitter = LineSplitter(max_line=100)
    assert len(splitter.feed(b"x" * 1000)) == 9
    assert len(splitter.pending()) == 100


def test_boot_entries_are_classified() -> None:
    entry = parse_boot_entry(LineSplitter().feed(FIRMWARE)[1])
    assert entry is not None and entry.device == "cd" and entry.entry == "Boot0003"
    assert parse_boot_entry(LineSplitter().feed(FIRMWARE)[0]) is None, "'loading' is not 'starting'"
    assert classify_device_path("PciRoot(0x0)/Pci(0x3,0x0)/HD(1,GPT,AB,0x800,0x10000)") == "disk"
    assert classify_device_path("PciRoot(0x0)/Pci(0x4,0x0)/MAC(525400123456,0x1)/IPv4(0.0.0.0)") == "network"
    assert classify_device_path("Fv(64074AFE)/FvFile(7C04A583)") == "firmware-app"


def test_markers() -> None:
    assert parse_marker("WINARM-PHASE init") == ("init", "")
    assert parse_marker("[    2.1] WINARM-PHASE error no cdrom found") == ("error", "no cdrom found")
    assert parse_marker("WINARM-PHASE") is None
    assert parse_marker("WINARM-EVENT driver-installed NetKVM") is None, "an event is not a phase boundary"
    assert parse_guest_event("WINARM-EVENT driver-installed NetKVM") == ("driver-installed", "NetKVM")
    assert parse_marker("nothing here") is None
    assert strip_ansi(b"\x1b]0;title\x07ok\x1b[0m") == b"ok"


def test_markers_read_in_one_chunk_keep_their_phase_but_winarm_boundaries_in_one_instant_do_not() -> None:
    """Two markers in one serial read share a timestamp: the first still names a (zero-length) phase, so every
    run of a benchmark has the same phases. A reset and a boot entry in the same instant leave no firmware."""
    events = [
        {"t": 0.0, "kind": "start"},
        {"t": 0.5, "kind": "running"},
        {"t": 2.0, "kind": "boot-device", "device": "disk"},
        {"t": 3.0, "kind": "marker", "name": "oobeSystem"},
        {"t": 3.0, "kind": "marker", "name": "first-logon"},
        {"t": 4.0, "kind": "reset"},
        {"t": 4.0, "kind": "boot-device", "device": "disk"},
        {"t": 5.0, "kind": "exit", "code": 0},
    ]
    names = [(p.name, p.boot, p.duration) for p in derive_phases(events)]
    assert names == [("launch", 0, 0.5), ("firmware", 1, 1.5), ("boot-disk", 1, 1.0), ("oobeSystem", 1, 0.0),
                     ("first-logon", 1, 1.0), ("boot-disk", 2, 1.0)]


def test_the_shutdown_starts_at_the_stop_request_not_at_the_power_button() -> None:
    """``--stop-at desktop-ready``: the request is recorded the moment the marker arrives; a marker the guest
    prints before the supervisor presses the power button is part of the shutdown, not a phase of its own."""
    events = [
        {"t": 0.0, "kind": "start"},
        {"t": 0.5, "kind": "running"},
        {"t": 2.0, "kind": "boot-device", "device": "disk"},
        {"t": 3.0, "kind": "marker", "name": "desktop-ready"},
        {"t": 3.0, "kind": "stop-requested", "reason": "the guest reached desktop-ready"},
        {"t": 3.08, "kind": "marker", "name": "ready"},
        {"t": 3.1, "kind": "powerdown-requested"},
        {"t": 4.0, "kind": "exit", "code": 0},
    ]
    names = [(p.name, p.start, p.end) for p in derive_phases(events)]
    assert names == [("launch", 0.0, 0.5), ("firmware", 0.5, 2.0), ("boot-disk", 2.0, 3.0),
                     ("desktop-ready", 3.0, 3.0), ("shutdown", 3.0, 4.0)]


def test_event_kinds_are_written_as_their_plain_strings(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl", t0=0.0)
    log.record(EventKind.STORAGE_FULL, error="x")
    log.close()
    assert '"kind": "storage-full"' in (tmp_path / "events.jsonl").read_text()
    assert read_events(tmp_path / "events.jsonl")[0]["kind"] == "storage-full"
    assert set(BOUNDARY_KINDS) <= {kind.value for kind in EventKind}, "every phase boundary is a known kind"
    assert len({kind.value for kind in EventKind}) == len(EventKind), "no two kinds share a string"


WINDOWS_INSTALL: list[dict[str, Any]] = [
    {"t": 0.0, "kind": "start"},
    {"t": 0.3, "kind": "running"},
    {"t": 2.0, "kind": "boot-device", "device": "cd"},
    {"t": 2.0, "kind": "marker", "name": "windowsPE", "source": "boot-order"},
    {"t": 60.0, "kind": "reset"},
    {"t": 62.0, "kind": "boot-device", "device": "disk"},
    {"t": 62.0, "kind": "marker", "name": "specialize", "source": "boot-order"},
    {"t": 80.0, "kind": "report", "name": "drivers"},
    {"t": 90.0, "kind": "reset"},
    {"t": 92.0, "kind": "boot-device", "device": "disk"},
    {"t": 92.0, "kind": "marker", "name": "oobeSystem", "source": "boot-order"},
    {"t": 120.0, "kind": "report", "name": "first-logon"},
    {"t": 120.0, "kind": "marker", "name": "first-logon", "source": "guest"},
    {"t": 130.0, "kind": "marker", "name": "desktop-ready", "source": "share"},
    {"t": 131.0, "kind": "stop-requested"},
    {"t": 133.0, "kind": "exit"},
]


def test_sources_say_who_named_each_phase() -> None:
    """An install named by the boot order: a report in a boot confirms that boot's inferred pass (specialize by
    the driver report, oobeSystem by the first-logon report), the windowsPE boot without one stays inferred, and
    the phases winarm sees itself carry no source."""
    phases = {p.name: p for p in derive_phases(WINDOWS_INSTALL)}
    assert phases["windowsPE"].source == "boot-order" and phases["windowsPE"].inferred
    assert phases["specialize"].source == "guest" and not phases["specialize"].inferred
    assert phases["oobeSystem"].source == "guest"
    assert phases["first-logon"].source == "guest"
    assert phases["desktop-ready"].source == "share"
    assert phases["firmware"].source is None and phases["shutdown"].source is None
    assert [p.name for p in derive_phases(WINDOWS_INSTALL)] == [
        "launch", "firmware", "windowsPE", "firmware", "specialize", "firmware", "oobeSystem", "first-logon",
        "desktop-ready", "shutdown"]


def test_a_report_confirms_only_the_boot_it_arrives_in() -> None:
    """A report after a reset belongs to the new boot: it does not confirm the pass of the boot before."""
    events = [e for e in WINDOWS_INSTALL if e["t"] <= 62.0] + [{"t": 61.0, "kind": "report", "name": "drivers"}]
    events.sort(key=lambda e: float(e["t"]))
    phases = {p.name: p for p in derive_phases(events)}
    assert phases["windowsPE"].source == "boot-order"
    assert phases["specialize"].source == "boot-order"


def test_the_table_shows_the_source_column() -> None:
    lines = list(format_table(derive_phases(WINDOWS_INSTALL)))
    assert lines[0].endswith("source")
    assert next(line for line in lines if " windowsPE " in line).split()[-1] == "boot-order"
    assert next(line for line in lines if " specialize " in line).split()[-1] == "guest"
    assert next(line for line in lines if " firmware " in line).split()[-1] == "-"
