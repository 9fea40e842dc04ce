"""The image-apply progress of a real install, seen by QEMU alone: query-blockstats during windowsPE against the
chosen edition's TOTALBYTES.

The guest is the arm64 Linux test guest playing Windows Setup (no Windows can be had here): its windowsPE apply
reads ``sources/install.wim`` from the CD and writes the seed image and the whole WIM to the disk, which is
exactly what the test ISO's WIM XML gives as each edition's TOTALBYTES. Nothing the guest prints is used for
the figures: only QEMU's counters, as with real Windows. (Only the start of windowsPE still comes from the
guest's serial marker, until phases are named by boot order.) The sample after the reboot closes windowsPE:
it counts the writes of its last second.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vmtools import Up
from winarm.media.iso import inspect_iso

GUEST = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--no-tpm", "--timeout", "30"]


@pytest.mark.qemu
def test_apply_progress_rises_to_100_during_the_first_boot(tmp_path: Path, run_base: Path, testbed_iso: Path,
                                                           placeholder_drivers: Path) -> None:
    info = inspect_iso(testbed_iso)
    edition = info.default_edition()
    assert edition.total_bytes and info.image_bytes, "the test ISO gives the sizes the progress is measured by"
    vm = Up(tmp_path, run_base, *GUEST, "--iso", str(testbed_iso), "--drivers", str(placeholder_drivers),
            "--stop-at", "ready")
    try:
        assert vm.wait(300) == 0, "\n".join(vm.lines)
    finally:
        vm.kill()
    events = vm.events()
    windows_pe = next(i for i, e in enumerate(events) if e["kind"] == "marker" and e["name"] == "windowsPE")
    reset = next(i for i, e in enumerate(events) if e["kind"] == "reset")
    disk_boot = next(i for i, e in enumerate(events) if e["kind"] == "boot-device" and e["device"] == "disk")
    progress = [(i, e) for i, e in enumerate(events) if e["kind"] == "apply-progress"]
    assert progress, "\n".join(vm.lines)
    assert all(windows_pe < i < disk_boot for i, _ in progress), "only for windowsPE, the first boot"
    closing = [e for i, e in progress if i > reset]
    assert len(closing) <= 1, "after the reset, only the sample that closes windowsPE (its last writes)"
    assert all(e["t"] - events[reset]["t"] <= 1.5 for e in closing), closing
    shown = [e for _, e in progress]
    assert len(shown) >= 2, f"the apply is followed as it goes, not seen once at the end: {shown}"
    for event in shown:
        assert event["total"] == edition.total_bytes and event["wim_bytes"] == info.image_bytes
        assert event["percent"] == min(100, event["written"] * 100 // event["total"]), event
    steps = [e["percent"] // 5 for e in shown]
    assert steps == sorted(set(steps)) and steps[0] >= 1, f"each event a new 5 % step: {shown}"
    assert shown[-1]["percent"] == 100 and shown[-1]["written"] >= edition.total_bytes
    assert shown[-1]["read"] >= info.image_bytes, "the apply read the whole install.wim from the ISO"
    gaps = [later["t"] - earlier["t"] for earlier, later in zip(shown, shown[1:], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), f"at most one event a second: {gaps}"
