"""A raised DISK_SIZE on an installed VM, end to end: winarm grows the image and says so, and at the next start
Windows' task (played by the test guest, a real arm64 Linux) extends C: over the new space with diskpart's
`select volume C` / `extend` read from the script the install left on C:. The host then reads the disk: C:'s
GPT partition ends at the disk's last usable LBA, both GPT copies are whole, and the file systems are clean.
No Windows can run here (the guest plays diskpart on the GPT; its FAT file system keeps its size)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vmtools import Up
from winarm_testbed.disk_image import fsck_image, gpt_problems, partitions

GUEST = ["--ram", "1G", "--cpus", "2", "--no-secure-boot", "--no-tpm", "--timeout", "30"]
SECTOR = 512
MiB = 1024 * 1024


def c_partition(disk: Path) -> tuple[int, int]:
    """C:'s partition (partition 2, the last one): the byte just after it (at the disk's last usable LBA it is 33
    sectors before the disk's end: the backup entries and header follow), and its size in whole MiB."""
    found = partitions(disk)
    assert [p.number for p in found] == [1, 2], found
    return found[1].start + found[1].size, found[1].size // MiB


def guest_events(vm: Up) -> list[tuple[str, str | None]]:
    return [(e["name"], e.get("detail")) for e in vm.events() if e["kind"] == "guest-event"]


@pytest.mark.qemu
def test_a_raised_disk_size_grows_c_at_the_next_start(tmp_path: Path, run_base: Path, testbed_iso: Path,
                                                      placeholder_drivers: Path) -> None:
    vm = Up(tmp_path, run_base, *GUEST, "--disk-size", "256M", "--iso", str(testbed_iso), "--drivers",
            str(placeholder_drivers), "--stop-at", "desktop-ready")
    try:
        assert vm.wait(300) == 0, "\n".join(vm.lines)
    finally:
        vm.kill()
    first = guest_events(vm)
    assert ("task-added", "WinarmExtendC") in first
    disk = tmp_path / "t" / "disk.qcow2"
    end, installed = c_partition(disk)
    assert end == 256 * MiB - 33 * SECTOR
    assert ("volume-extended", f"C: 128 {installed}") in first, "the first logon extends C: over the seed's free space"
    assert gpt_problems(disk) == []
    assert not any(e["kind"] == "disk-grown" for e in vm.events())

    later = Up(tmp_path, run_base, *GUEST, "--disk-size", "512M", "--stop-at", "desktop-ready")
    try:
        assert later.wait(240) == 0, "\n".join(later.lines)
    finally:
        later.kill()
    assert any("disk grown from 256M to 512M: C: is extended over it at Windows' next start" in line
               for line in later.lines), later.lines
    grown = [e for e in later.events() if e["kind"] == "disk-grown"]
    assert [(e["size_before"], e["size"]) for e in grown] == [(256 * MiB, 512 * MiB)]
    events = guest_events(later)
    end, grown_to = c_partition(disk)
    assert end == 512 * MiB - 33 * SECTOR, "C: reaches the new end of the disk"
    assert grown_to == installed + 256
    assert ("volume-extended", f"C: {installed} {grown_to}") in events, events
    assert gpt_problems(disk) == [], "the backup GPT moved to the new end"
    assert all(result.clean for result in fsck_image(disk)), fsck_image(disk)
