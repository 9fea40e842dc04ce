"""How the watches follow a run (the real supervisor over the fake machine of :mod:`tests.unit.vm.fakes`: QEMU
cannot run in the unit tier): the stall watch armed while a boot has no desktop and the VM runs, the status
fields filled."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.unit.vm.fakes import Rig
from winarm.guest import MARKER_PREFIX
from winarm.timeline.events import EventKind


def test_the_stall_watch_follows_desktop_boots_and_pauses(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base)
        rig.machine.obey_power_button()
        stall = rig.supervisor.watches.stall
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        assert stall.armed, "armed once the VM runs"
        rig.machine.console(f"{MARKER_PREFIX} ready\r\n")
        await rig.log.seen(EventKind.MARKER)
        assert not stall.armed, "an idle desktop is no stall"
        await rig.machine.emit("RESET", {"guest": True})
        assert stall.armed, "a new boot is watched again"
        await rig.machine.emit("STOP")
        assert not stall.armed, "a paused VM is no stall"
        await rig.machine.emit("RESUME")
        assert stall.armed
        status = rig.supervisor.status().as_json()
        assert set(status["activity"]) >= {"disk_written", "disk_read", "iso_read", "nic_up", "screen_changes",
                                           "cpu_percent"}
        assert status["reports"] == {"accepted": 0, "refused": 0, "last": None}
        assert status["stall"]["stalled"] is False and status["progress"] is None
        rig.supervisor.request_stop("the test")
        assert await task == 0
        assert not stall.armed, "stopping is no stall"

    asyncio.run(asyncio.wait_for(scenario(), 20))
