"""Install phases named by Setup's boot sequence, driven through a fake QMP machine (QEMU and Windows cannot run in
the unit tier; see :mod:`tests.unit.vm.fakes`): every wait is on an event the supervisor records, never a sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tests.unit.vm.fakes import Rig
from winarm.timeline.events import EventKind
from winarm.timeline.phases import derive_phases

DISK_BOOT = 'BdsDxe: starting Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x4,0x0)\r\n'
CD_BOOT = 'BdsDxe: starting Boot0002 "UEFI QEMU QEMU USB HARDDRIVE" from PciRoot(0x0)/Pci(0x2,0x0)/USB(0x0,0x0)\r\n'


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 20))  # the bound only catches a hung supervisor


async def boot(rig: Rig, *lines: str) -> None:
    """A reset, then the firmware starting each of ``lines``' entries; returns once the last was recorded."""
    await rig.machine.emit("RESET", {"guest": True, "reason": "guest-reset"})
    before = len(rig.log.events)
    for line in lines:
        rig.machine.console(line)
    while sum(e["kind"] == "boot-device" for e in rig.log.events[before:]) < len(lines):
        await rig.log.seen(EventKind.BOOT_DEVICE, after=len(rig.log.events))


def test_an_install_names_each_boot_by_setups_sequence(tmp_path: Path, run_base: Path) -> None:
    """Real Windows says nothing on the console: from the CD windowsPE, the first disk boot specialize, the second
    oobeSystem, each marked ``boot-order``; a CD entry before the disk once the disk has booted (the prompt
    timing out) names nothing, and a third disk boot is no Setup pass."""
    async def scenario() -> None:
        medium = tmp_path / "answer.iso"
        medium.write_bytes(b"answer")
        rig = Rig(tmp_path, run_base, answer_medium=medium)
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(CD_BOOT)
        first = await rig.log.seen(EventKind.MARKER)
        assert (first["name"], first["source"]) == ("windowsPE", "boot-order")
        await boot(rig, DISK_BOOT)  # Setup put the disk first in the boot order
        await boot(rig, CD_BOOT, DISK_BOOT)
        await boot(rig, DISK_BOOT)
        rig.supervisor.request_stop("the test")
        assert await task == 0
        markers = [(e["name"], e["source"]) for e in rig.log.events if e["kind"] == "marker"]
        assert markers == [("windowsPE", "boot-order"), ("specialize", "boot-order"), ("oobeSystem", "boot-order")]
        names = [(p.name, p.boot, p.source) for p in derive_phases(rig.log.events)]
        assert ("specialize", 2, "boot-order") in names and ("oobeSystem", 3, "boot-order") in names
        assert names[-2] == ("boot-disk", 4, None), "the fourth boot is an ordinary one"

    run(scenario())


def test_no_install_no_inferred_phases(tmp_path: Path, run_base: Path) -> None:
    """Without an answer medium (an installed VM, the plain guest) boots are only ``boot-cd``/``boot-disk``."""
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base)
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(CD_BOOT)
        await rig.log.seen(EventKind.BOOT_DEVICE)
        await boot(rig, DISK_BOOT)
        rig.supervisor.request_stop("the test")
        assert await task == 0
        assert "marker" not in rig.log.kinds()
        assert [p.name for p in derive_phases(rig.log.events)][2:5] == ["boot-cd", "firmware", "boot-disk"]

    run(scenario())
