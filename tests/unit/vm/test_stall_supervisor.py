"""The stall watch inside the real supervisor, over the fake machine of :mod:`tests.unit.vm.fakes` (QEMU cannot
run in the unit tier; its screendump is faked by writing a PPM): armed when the VM runs, console lines heard as
activity, a stall told through the supervisor's reporter, screenshots over the control socket, disarmed when
stopping."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from PIL import Image

from tests.unit.vm.fakes import Rig
from winarm.timeline.events import EventKind
from winarm.vm.control import ask


def test_the_supervisor_arms_hears_the_console_and_serves_screenshots(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, stall_timeout=600)
        rig.machine.obey_power_button()

        async def screendump(command: str, arguments: dict[str, Any] | None = None) -> Any:
            if command == "screendump" and arguments is not None:
                Path(arguments["filename"]).write_bytes(b"P6\n4 2\n255\n" + b"\x10\x20\x30" * 8)
            return await fake_execute(command, arguments)

        fake_execute = rig.machine.execute
        watch = rig.supervisor.watches.stall
        assert not watch.armed and watch.screen.execute == fake_execute, "the screen goes through the machine"
        watch.screen.execute = screendump  # the fake machine's QEMU draws a screen
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        assert watch.armed and watch.last[0] == "the VM started running"
        rig.machine.console("WINARM-EVENT hang now\r\n")
        await rig.log.seen(EventKind.GUEST_EVENT)
        assert watch.last[0] == "console line 'WINARM-EVENT hang now'"
        watch.clock = lambda: rig.log.now() + 600  # ten minutes pass with nothing more
        await watch.check()
        stalled = await rig.log.seen(EventKind.STALLED)
        assert stalled["last"] == "console line 'WINARM-EVENT hang now'"
        assert any(line.startswith("[t] stalled: no disk I/O, screen change or guest report for ")
                   for line in rig.said())
        assert (rig.paths.state_dir / "stall-1.png").is_file(), "beside the phase log"
        reply = await asyncio.to_thread(ask, rig.paths.control_socket, "screenshot")
        assert reply is not None and reply["ok"] is True and (reply["width"], reply["height"]) == (4, 2)
        made = Path(reply["path"])
        assert made.parent == rig.paths.run_dir
        with Image.open(made) as image:
            assert image.getpixel((3, 1)) == (0x10, 0x20, 0x30)
        rig.supervisor.request_stop("the test")
        assert await task == 0
        assert not watch.armed, "disarmed when stopping"

    asyncio.run(asyncio.wait_for(scenario(), 20))  # the bound only catches a hung supervisor
