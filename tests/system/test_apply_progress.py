"""The image-apply progress of a real install, seen by QEMU alone: query-blockstats during windowsPE against the
chosen edition's TOTALBYTES.

The guest is the arm64 Linux test guest playing Windows Setup (no Windows can be had here): its windowsPE apply
reads ``sources/install.wim`` from the CD and writes the seed image and the whole WIM to the disk, which is
exactly what the test ISO's WIM XML gives as each edition's TOTALBYTES. Nothing the guest prints is used for
the figures, nor for where they fall: windowsPE is named by Setup's boot order (the CD's boot-device event, as
with real Windows, which prints nothing on a console) and the progress is QEMU's counters. The sample after the
reboot closes windowsPE: it counts the writes of its last second.
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
            "--stop-at", "desktop-ready")
    try:
        assert vm.wait(300) == 0, "\n".join(vm.lines)
    finally:
        vm.kill()
    events = vm.events()
    windows_pe = next(i for i, e in enumerate(events) if e["kind"] == "marker" and e["name"] == "windowsPE")
    cd_boot = next(i for i, e in enumerate(events) if e["kind"] == "boot-device" and e["device"] == "cd")
    assert cd_boot < windows_pe and events[windows_pe]["t"] == events[cd_boot]["t"], events[windows_pe]
    assert events[windows_pe]["source"] == "boot-order", "named by boot order: the guest says nothing of it"
    reset = next(i for i, e in enumerate(events) if e["kind"] == "reset")
    disk_boot = next(i for i, e in enumerate(events) if e["kind"] == "boot-device" and e["device"] == "disk")
    progress = [(i, e) for i, e in enumerate(events) if e["kind"] == "apply-progress"]
    assert progress, "\n".join(vm.lines)
    assert all(windows_pe < i < disk_boot for i, _ in progress), "only for windowsPE, the first boot"
    # windowsPE now starts at the CD's boot entry (GRUB and the kernel loading count in it), not at the guest's
    # first console line; the apply's base is taken there, and the guest writes nothing to the disk before its
    # apply, so the first step still comes only once the apply has written 5 % (checked below)
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
    # everything the apply wrote (the seed image and the whole install.wim) was read from the ISO; since windowsPE
    # starts at the CD's boot entry, the count also holds what GRUB read (the kernel and initramfs), so the bar is
    # the whole TOTALBYTES (more than the WIM alone, which the seed's reads would already have covered)
    assert shown[-1]["read"] >= edition.total_bytes > info.image_bytes, "the apply read its whole image from the ISO"
    gaps = [later["t"] - earlier["t"] for earlier, later in zip(shown, shown[1:], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), f"at most one event a second: {gaps}"
