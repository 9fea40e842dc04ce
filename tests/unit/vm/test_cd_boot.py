"""The CD prompt's keys, the CD tried again, Secure Boot refusals and a firmware with nothing to boot, through the
real supervisor over a fake QMP machine (QEMU cannot run in the unit tier; see :mod:`tests.unit.vm.fakes`). The
console text is what AAVMF prints (see :mod:`tests.unit.vm.test_firmware_watch`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tests.unit.vm.fakes import Rig
from tests.unit.vm.test_firmware_watch import SHELL, UIAPP, USB_CD
from winarm.guest import CD_PROMPT, MARKER_PREFIX
from winarm.timeline.events import EventKind
from winarm.vm.install_watch import CD_BOOT_TRIES, CD_PROMPT_PRESSES

CD_BOOT = f"BdsDxe: starting Boot0001 {USB_CD}\r\n"
MENU = f'BdsDxe: starting Boot0000 "UiApp" from {UIAPP}\r\n'
THE_SHELL = f'BdsDxe: starting Boot0002 "EFI Internal Shell" from {SHELL}\r\nUEFI Interactive Shell v2.2\r\n'


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 30))  # the bound only catches a hung supervisor


def resets_on_system_reset(rig: Rig) -> None:
    """QEMU resets at ``system_reset``: its RESET event follows."""
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Task[None]] = []

    def reset() -> None:
        pending.append(loop.create_task(rig.machine.emit("RESET", {"guest": False, "reason": "host-qmp-system-reset"})))

    rig.machine.handlers["system_reset"] = reset


async def count(rig: Rig, kind: EventKind, wanted: int) -> list[dict[str, Any]]:
    """The events of ``kind`` once there are ``wanted`` of them (each awaited as it is recorded)."""
    while True:
        found = [e for e in rig.log.events if e["kind"] == kind]
        if len(found) >= wanted:
            return found
        await rig.log.seen(kind, after=len(rig.log.events))


def test_the_key_is_pressed_again_while_the_prompt_counts_down_a_second_apart(tmp_path: Path,
                                                                               run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, iso=tmp_path / "x.iso")
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(CD_BOOT + CD_PROMPT)  # Windows' loader: the prompt, then a dot a second
        await rig.log.seen(EventKind.KEY_PRESSED)
        for _ in range(8):
            rig.machine.console(".")
        presses = await count(rig, EventKind.KEY_PRESSED, 2)
        assert [p["press"] for p in presses] == [1, 2], "the dots after the first key: one more, not eight"
        gap = presses[1]["t"] - presses[0]["t"]
        assert gap >= 0.99, f"{gap:.2f} s apart"
        for pressed in range(3, CD_PROMPT_PRESSES + 1):  # the countdown goes on: the loader still waits
            rig.machine.console(".")
            await count(rig, EventKind.KEY_PRESSED, pressed)
        assert len(rig.machine.sent("send-key")) == CD_PROMPT_PRESSES
        rig.machine.console("." * 5 + "\r\n" + CD_PROMPT + "\r\n" + f"{MARKER_PREFIX} barrier\r\n")
        await rig.log.seen(EventKind.MARKER)
        assert len(rig.machine.sent("send-key")) == CD_PROMPT_PRESSES, "at most five a boot"
        rig.supervisor.request_stop("done")
        assert await task == 0

    run(scenario())


def test_a_prompt_shown_once_gets_one_key(tmp_path: Path, run_base: Path) -> None:
    """GRUB's echo: the prompt's line ends at once, then its menu; the key boots the CD."""
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, iso=tmp_path / "x.iso")
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(CD_BOOT + CD_PROMPT)
        await rig.log.seen(EventKind.KEY_PRESSED)
        rig.machine.console("\r\nGNU GRUB  version 2.06\r\n")  # the same prompt's line ends: no new prompt
        started = time.monotonic()
        rig.machine.console(f"{MARKER_PREFIX} init\r\n")
        await rig.log.seen(EventKind.MARKER)
        assert len(rig.machine.sent("send-key")) == 1
        rig.supervisor.request_stop("done")
        assert await task == 0
        assert len(rig.machine.sent("send-key")) == 1 or time.monotonic() - started < 1, "no key once it booted"

    run(scenario())


def test_a_cd_boot_the_firmware_gives_up_is_reset_and_tried_again(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, iso=tmp_path / "x.iso", timeout=30.0)
        resets_on_system_reset(rig)
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(CD_BOOT + CD_PROMPT + "\r\nwinarm: no key pressed, exiting to the firmware\r\n" + MENU)
        failed = await rig.log.seen(EventKind.CD_BOOT_FAILED)
        assert (failed["attempt"], failed["tries"], failed["what"], failed["returned"], failed["retry"]) == (
            1, CD_BOOT_TRIES, "menu", "Boot0001", True)
        reset = await rig.log.seen(EventKind.RESET)
        assert reset["guest"] is False and rig.machine.sent("system_reset") == [None]
        assert ("[t] the install CD did not boot: the firmware fell back to its own menu; resetting the VM to try "
                "again (2 of 3)") in rig.said()
        after = len(rig.log.events)
        rig.machine.console(CD_BOOT + CD_PROMPT + "\r\n" + f"{MARKER_PREFIX} windowsPE\r\n")  # this time it boots
        await rig.log.seen(EventKind.MARKER, after=after)
        assert rig.supervisor.status().healthy and rig.supervisor.install.cd_tries == 1
        assert not rig.supervisor.install.no_os, "the CD's loader runs"
        rig.machine.obey_power_button()
        rig.supervisor.request_stop("done")
        assert await task == 0

    run(scenario())


def test_three_failed_cd_boots_fail_the_run_in_one_line(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, iso=tmp_path / "x.iso", timeout=30.0)
        resets_on_system_reset(rig)
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        for attempt in range(1, CD_BOOT_TRIES + 1):
            rig.machine.console(CD_BOOT + CD_PROMPT + "\r\n" + MENU)
            await count(rig, EventKind.CD_BOOT_FAILED, attempt)
            if attempt < CD_BOOT_TRIES:
                await count(rig, EventKind.RESET, attempt)
        assert await task == 1
        assert len(rig.machine.sent("system_reset")) == CD_BOOT_TRIES - 1
        (line,) = [line for line in rig.said() if "did not boot in" in line]
        assert line == (
            "[t] the install CD did not boot in 3 tries (each time the firmware fell back to its own menu; a key was "
            "pressed at its prompt each time); the firmware's last lines: " + CD_BOOT.strip() + " | " + CD_PROMPT
            + " | " + MENU.strip())
        kinds = rig.log.kinds()
        assert kinds.index("stop-requested") < kinds.index("quit-sent") < kinds.index("exit")
        at = {e["kind"]: e["t"] for e in rig.log.events}
        assert at["quit-sent"] - at["stop-requested"] < 1, "the firmware ignores the button: no 30 s wait for it"
        assert not [line for line in rig.said() if "did not shut down within" in line]

    run(scenario())


def test_secure_boot_refusing_the_install_cd_fails_at_once_with_the_way_out(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, iso=tmp_path / "x.iso")
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(f"BdsDxe: failed to load Boot0001 {USB_CD}: Access Denied\r\n")
        refused = await rig.log.seen(EventKind.BOOT_REFUSED)
        assert (refused["entry"], refused["device"], refused["status"]) == ("Boot0001", "cd", "Access Denied")
        assert await task == 1
        (line,) = [line for line in rig.said() if "Secure Boot refused to" in line]
        assert line.startswith('[t] Secure Boot refused to load Boot0001 "UEFI QEMU QEMU USB HARDDRIVE '
                               '1-0000:00:01.0-3" (the install CD): Access Denied: ')
        assert "the way out: start with --no-secure-boot, or use firmware whose Secure Boot keys" in line
        assert rig.machine.sent("system_reset") == [], "trying again cannot help"
        assert "cd-boot-failed" not in rig.log.kinds()

    run(scenario())


def test_the_firmware_with_nothing_to_boot_makes_the_vm_unhealthy_until_the_next_boot(tmp_path: Path,
                                                                                      run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base)  # no ISO, a disk that never booted
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        assert rig.supervisor.status().healthy and rig.supervisor.install.no_os
        rig.machine.console(THE_SHELL)
        no_boot = await rig.log.seen(EventKind.NO_BOOT)
        assert (no_boot["what"], no_boot["disk_booted"], no_boot["returned"]) == ("shell", False, None)
        status = rig.supervisor.status()
        assert status.healthy is False and status.problem is not None
        assert status.problem.startswith("nothing to boot: the firmware fell through to its UEFI shell")
        assert f"[t] {status.problem}" in rig.said()
        assert rig.machine.sent("system_reset") == [], "no install CD to try again"
        await rig.machine.emit("RESET", {"guest": True, "reason": "guest-reset"})
        assert rig.supervisor.status().healthy, "a new boot starts afresh"
        rig.supervisor.request_stop("done")
        assert await task == 0

    run(scenario())


def test_a_disk_that_booted_before_and_now_does_not_is_told_so(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, iso=tmp_path / "x.iso")
        rig.launched.facts["disk_booted"] = True  # installed: the CD is not tried again
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console("BdsDxe: No bootable option or device was found.\r\n")
        no_boot = await rig.log.seen(EventKind.NO_BOOT)
        assert no_boot["disk_booted"] is True and no_boot["what"] == "no-bootable-option"
        problem = rig.supervisor.status().problem
        assert problem is not None and problem.startswith(
            "no OS booted: the firmware found no bootable option or device; the disk has booted before")
        assert rig.machine.sent("system_reset") == []
        rig.supervisor.request_stop("done")
        assert await task == 0

    run(scenario())


def test_status_prints_the_problem_under_the_vm_line() -> None:
    from winarm.vm.status import VmStatus, status_lines

    report = VmStatus(name="t", state="running", healthy=False, problem="nothing to boot: the firmware ...",
                      daemon_pid=1, qemu_pid=2, run_dir="/run/winarm/t")
    lines = list(status_lines([report], as_json=False))
    assert lines[0].startswith("t: running, healthy=no, qemu pid 2")
    assert lines[1] == "  PROBLEM: nothing to boot: the firmware ..."
    assert '"problem": "nothing to boot: the firmware ..."' in next(status_lines([report], as_json=True))


def test_the_facts_a_stop_can_ask_no_os_and_setup_running(tmp_path: Path, run_base: Path) -> None:
    """``InstallWatch.no_os`` (the firmware runs, no OS loader) and ``InstallWatch.setup_running`` (a boot of
    Setup's passes during an install): both make the power button pointless."""
    async def scenario() -> None:
        medium = tmp_path / "answer.iso"
        medium.write_bytes(b"answer")
        rig = Rig(tmp_path, run_base, iso=tmp_path / "x.iso", answer_medium=medium)
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        install = rig.supervisor.install
        assert install.no_os and not install.setup_running, "the firmware runs"
        rig.machine.console(CD_BOOT)
        await rig.log.seen(EventKind.MARKER)  # windowsPE, named by the boot order
        assert not install.no_os and install.setup_running
        rig.machine.console(f"{MARKER_PREFIX} desktop-ready\r\n")
        await rig.log.seen(EventKind.ANSWER_MEDIUM_REMOVED)
        assert not install.setup_running, "the install is complete"
        rig.supervisor.request_stop("done")
        assert await task == 0

    run(scenario())
