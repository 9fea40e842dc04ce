"""The relay QEMU runs for each guest connection really carries a report: the exact command winarm's argv gives
QEMU, run through ``sh -c`` (as older QEMU does) and split like a shell and run directly (as libslirp's
``g_shell_parse_argv`` does), with a request on its stdin, reaches the channel on a run dir whose name holds a
space and a comma, and the answer comes back on its stdout. (The guest side, curl or wget in a VM, is the
integrator's end-to-end test.)"""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import pytest

from tests.unit.vm.channel_rig import NO_CONTENT, Rig, post
from winarm.config.paths import VmPaths
from winarm.qemu.argv import report_relay_command
from winarm.vm.guest_channel import GuestChannel
from winarm.vm.report_body import Report


@pytest.mark.parametrize("how", ["sh -c", "split"])
def test_the_relay_command_carries_a_report_and_its_answer(tmp_path: Path, how: str) -> None:
    paths = VmPaths(tmp_path / "state", tmp_path / "run dir, 'odd'" / "vm")
    paths.run_dir.mkdir(parents=True)
    command = report_relay_command(paths.report_socket)
    argv = ["sh", "-c", command] if how == "sh -c" else shlex.split(command)
    rig = Rig(paths.report_socket)

    async def main() -> tuple[bytes, bytes, int | None]:
        async with GuestChannel(rig.path, rig.reports.append, rig.refused):
            relay = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE,
                                                         stderr=asyncio.subprocess.PIPE)
            out, err = await relay.communicate(post("drivers", b"pass windowsPE\ndriver viostor 0\n"))
            return out, err, relay.returncode

    out, err, code = asyncio.run(asyncio.wait_for(main(), 30))
    assert (out, code) == (NO_CONTENT, 0), err
    assert rig.reports == [Report("drivers", (("pass", "windowsPE"), ("driver", "viostor 0")))]
    assert rig.refusals == []
