"""TrafficWatch with a fake QMP: scripted ``query-blockstats`` replies, an injected clock and tick, no QEMU.

QEMU cannot run in the unit tier, so ``execute`` is a fake that answers with the counters a test scripts (as
QEMU's cumulative ``rd_bytes``/``wr_bytes`` per drive id) and records every command. Nothing sleeps: the clock
is a variable and the wait between samples is a function the test controls.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from winarm.errors import RuntimeFailure
from winarm.media.iso import InstallImage
from winarm.qemu.argv import disk_args, media_args
from winarm.timeline.events import EventKind
from winarm.vm.progress import ApplyProgress, apply_percent, format_size_pair, progress_line
from winarm.vm.traffic import DISK_DRIVE, ISO_DRIVE, WINDOW, Counters, TrafficWatch, read_counters

MB = 1000**2
IMAGE = InstallImage(edition="Windows 11 Pro", index=2, total_bytes=1000 * MB, wim_bytes=400 * MB)


def blockstats(disk_written: int = 0, disk_read: int = 0, iso_read: int | None = 0) -> list[dict[str, Any]]:
    """A ``query-blockstats`` reply as QEMU gives it: the disk, the ISO (None: unplugged) and the answer CD."""
    reply = [{"device": DISK_DRIVE, "qdev": "/machine/peripheral-anon/device[1]/virtio-backend",
              "stats": {"rd_bytes": disk_read, "wr_bytes": disk_written, "rd_operations": 3}}]
    if iso_read is not None:
        reply.append({"device": ISO_DRIVE, "qdev": "media0", "stats": {"rd_bytes": iso_read, "wr_bytes": 0}})
    reply.append({"device": "cd1", "qdev": "media1", "stats": {"rd_bytes": 123 * MB, "wr_bytes": 0}})
    return reply


class FakeQmp:
    """QEMU's QMP for the watch: the next blockstats reply is whatever the test set last; commands recorded."""

    def __init__(self) -> None:
        self.reply: Any = blockstats()
        self.commands: list[tuple[str, dict[str, Any] | None]] = []
        self.refuse: set[str] = set()
        self.gone = False

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        self.commands.append((command, arguments))
        if self.gone:
            raise RuntimeFailure(f"QEMU's monitor is gone ({command})")
        if command in self.refuse:
            raise RuntimeFailure(f"QEMU refused {command}")
        return self.reply if command == "query-blockstats" else {}


class Rig:
    """A watch over a :class:`FakeQmp`, with the events it records, the activity it tells and a settable clock."""

    def __init__(self, image: InstallImage | None = IMAGE) -> None:
        self.qmp = FakeQmp()
        self.now = 0.0
        self.events: list[tuple[EventKind, dict[str, Any]]] = []
        self.activity: list[str] = []
        self.watch = TrafficWatch(self.qmp.execute, record=lambda kind, **details: self.events.append((kind, details)),
                                  on_activity=self.activity.append, image=image, clock=lambda: self.now)

    def at(self, seconds: float, **counters: Any) -> None:
        """A sample taken at ``seconds`` with QEMU's counters then."""
        self.now = seconds
        self.qmp.reply = blockstats(**counters)
        asyncio.run(self.watch.sample())

    def progress(self) -> list[int]:
        return [details["percent"] for kind, details in self.events if kind == EventKind.APPLY_PROGRESS]


# --- the pure arithmetic ---------------------------------------------------------------------------------------


def test_progress_line_in_gb_and_mb_capped_at_100() -> None:
    assert progress_line(3_940_000_000, 9_600_000_000) == "applying image: 41 % (3.9 of about 9.6 GB)"
    assert progress_line(52 * MB, 124 * MB) == "applying image: 41 % (52 of about 124 MB)"
    assert progress_line(130 * MB, 124 * MB) == "applying image: 100 % (130 of about 124 MB)"
    assert progress_line(0, 9_600_000_000) == "applying image: 0 % (0.0 of about 9.6 GB)"
    assert format_size_pair(999 * MB, 999_999_999) == "999 of about 1000 MB", "under 1 GB stays in MB"
    assert apply_percent(999, 1000) == 99, "rounded down: 100 % only when it is all written"
    with pytest.raises(ValueError, match="not positive"):
        progress_line(1, 0)
    assert ApplyProgress(written=415, total=1000, read=7, wim_bytes=9).step == 40


def test_read_counters_takes_the_disk_and_the_iso_and_nothing_malformed() -> None:
    assert read_counters(blockstats(5, 6, 7)) == Counters(5, 6, 7)
    assert read_counters(blockstats(5, 6, None)) == Counters(5, 6, None), "the ISO unplugged"
    assert read_counters({"error": "x"}) is None and read_counters(None) is None
    broken = [{"device": DISK_DRIVE, "stats": {"wr_bytes": -1, "rd_bytes": True}}, "junk", {"device": ISO_DRIVE}]
    assert read_counters(broken) == Counters(None, None, None)


def test_the_drive_ids_are_the_ones_qemu_is_given(tmp_path: Any) -> None:
    """The watch finds the drives by the ids the argv gives them: a renamed drive would read as no traffic."""
    assert f"id={DISK_DRIVE}," in " ".join(disk_args("virtio-blk", tmp_path / "disk.qcow2", "qcow2"))
    assert f"id={ISO_DRIVE}," in " ".join(media_args([tmp_path / "win.iso", tmp_path / "answer.iso"]))


# --- the apply progress ------------------------------------------------------------------------------------------


def test_progress_is_recorded_at_each_5_percent_step_and_capped_at_100() -> None:
    rig = Rig()
    rig.at(0, disk_written=30 * MB)  # firmware and boot-time writes before windowsPE
    rig.watch.set_phase("windowsPE")
    for second, written in enumerate([30, 60, 79, 81, 200, 540, 541, 1020, 1500], start=1):
        rig.at(second, disk_written=written * MB, iso_read=second * 40 * MB)
    assert rig.progress() == [5, 17, 51, 99, 100]
    last = rig.events[-1][1]
    assert last == {"percent": 100, "written": 1470 * MB, "total": 1000 * MB, "read": 360 * MB, "wim_bytes": 400 * MB}
    assert rig.watch.progress_line() == "applying image: 100 % (1.5 of about 1.0 GB)"


def test_at_most_one_event_a_second_and_a_late_step_is_not_lost() -> None:
    rig = Rig()
    rig.watch.set_phase("windowsPE")
    rig.at(1.0, disk_written=100 * MB)
    rig.at(1.4, disk_written=300 * MB)  # a new step, but 0.4 s after the last event
    assert rig.progress() == [10]
    rig.at(2.0, disk_written=300 * MB)
    assert rig.progress() == [10, 30]


def test_no_progress_outside_windows_pe_or_without_an_image() -> None:
    rig = Rig()
    rig.watch.set_phase("specialize")
    rig.at(1, disk_written=900 * MB)
    assert rig.progress() == [] and rig.watch.snapshot()["apply"] is None
    plain = Rig(image=None)
    plain.watch.set_phase("windowsPE")
    plain.at(1, disk_written=900 * MB)
    assert plain.progress() == [] and plain.watch.progress_line() is None


def test_the_sample_after_the_reset_closes_windows_pe() -> None:
    rig = Rig()
    rig.watch.set_phase("windowsPE")
    rig.at(1, disk_written=500 * MB)
    rig.watch.set_phase("windowsPE")  # told again (the guest confirms it): the count goes on from the start
    rig.watch.new_boot()
    rig.at(2, disk_written=1000 * MB)  # the last second's writes still belong to windowsPE
    rig.at(3, disk_written=1900 * MB)  # the next boot's writes do not
    assert rig.progress() == [50, 100]
    snapshot = rig.watch.snapshot()["apply"]
    assert snapshot["written"] == 1000 * MB and snapshot["applying"] is False
    rig.watch.set_phase("windowsPE")  # a second install from the CD starts over from what is counted now
    rig.at(4, disk_written=2000 * MB)
    assert rig.progress() == [50, 100, 10]


# --- the minute's window and activity ------------------------------------------------------------------------------


def test_snapshot_keeps_the_last_minute_and_the_totals() -> None:
    rig = Rig()
    rig.at(0, disk_written=10 * MB, disk_read=1 * MB, iso_read=5 * MB)
    rig.at(30, disk_written=20 * MB, disk_read=1 * MB, iso_read=5 * MB)
    rig.at(61, disk_written=50 * MB, disk_read=3 * MB, iso_read=None)  # the ISO unplugged
    snapshot = rig.watch.snapshot()
    assert snapshot["window"] == WINDOW
    assert (snapshot["disk_written_window"], snapshot["disk_read_window"], snapshot["iso_read_window"]) == (
        40 * MB, 2 * MB, 0), "the sample at 0 s is out of the window at 61 s"
    assert (snapshot["disk_written"], snapshot["disk_read"], snapshot["iso_read"]) == (50 * MB, 3 * MB, 5 * MB)
    assert snapshot["samples"] == 3 and snapshot["disk_idle"] == 0 and snapshot["nic_up"] is False
    rig.now = 100.0
    later = rig.watch.snapshot()
    assert later["disk_written_window"] == 30 * MB and later["disk_idle"] == 39
    rig.now = 200.0
    assert rig.watch.snapshot()["disk_written_window"] == 0
    assert json.loads(json.dumps(later)) == later, "JSON-able as it is"


def test_activity_is_told_for_each_sample_with_io() -> None:
    rig = Rig()
    rig.at(1)
    rig.at(2, disk_written=1)
    rig.at(3, disk_written=1)
    rig.at(4, disk_written=1, disk_read=4)
    rig.at(5, disk_written=1, disk_read=4, iso_read=2)
    rig.at(6, disk_written=1, disk_read=4, iso_read=None)  # an unplugged ISO is no activity
    rig.at(7, disk_written=1, disk_read=4, iso_read=1)  # the same id again: a new counter from 0
    assert rig.activity == ["disk", "disk", "iso", "iso"]


# --- the network driver and the loop -------------------------------------------------------------------------------


def test_nic_up_once_a_boot_and_the_event_re_armed() -> None:
    rig = Rig()
    path = "/machine/peripheral/nic0/virtio-backend"
    rig.watch.on_qmp_event("NIC_RX_FILTER_CHANGED", {"name": "nic0", "path": path})
    rig.watch.on_qmp_event("NIC_RX_FILTER_CHANGED", {"name": "nic0", "path": path})
    rig.watch.on_qmp_event("RESUME", {})
    assert rig.events == [(EventKind.NIC_UP, {"nic": "nic0", "path": path})]
    assert rig.watch.snapshot()["nic_up"] is True
    rig.at(1)
    assert rig.qmp.commands == [("query-rx-filter", {"name": "nic0"}), ("query-blockstats", None)]
    rig.watch.new_boot()
    assert rig.watch.snapshot()["nic_up"] is False
    rig.watch.on_qmp_event("NIC_RX_FILTER_CHANGED", {"path": path})  # a NIC without an id: re-arm them all
    assert [kind for kind, _ in rig.events] == [EventKind.NIC_UP, EventKind.NIC_UP]
    rig.qmp.refuse.add("query-rx-filter")
    rig.at(2)
    assert rig.qmp.commands[2:] == [("query-rx-filter", None), ("query-blockstats", None)], "a refusal is no end"


def test_run_samples_each_tick_and_ends_quietly_when_qemu_is_gone() -> None:
    rig = Rig()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        rig.qmp.reply = blockstats(disk_written=ticks * MB)
        if ticks == 3:
            rig.qmp.gone = True

    rig.watch.tick = tick
    asyncio.run(rig.watch.run())
    assert ticks == 3 and rig.watch.samples == 3
    assert rig.watch.snapshot()["disk_written"] == 2 * MB
    assert [c for c, _ in rig.qmp.commands] == ["query-blockstats"] * 4
