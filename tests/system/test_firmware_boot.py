"""What the UEFI firmware does at boot, told and acted on, end to end under a real QEMU with real AAVMF.

The Windows-shaped test ISO stands in for Windows' install media (its loader is GRUB, playing the CD's "Press any
key" prompt; built with ``drop_key`` it drops the first key, with ``deaf_prompt`` it takes none). What is real:
the firmware's own lines (its menu, its shell, Secure Boot refusing an unsigned loader), QMP's system_reset and
send-key, the supervisor and its exit status.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cache_dir
from tests.vmtools import FIRMWARE_ONLY, Up

pytestmark = pytest.mark.qemu
GUEST = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-tpm", "--no-unattend", "--timeout", "3"]


def _testbed(**options: bool) -> Path:
    from winarm_testbed.windows_iso import build_windows_testbed

    return build_windows_testbed(cache_dir(), log=lambda line: None, **options)


def test_a_key_lost_at_the_cd_prompt_is_pressed_again(tmp_path: Path, run_base: Path) -> None:
    """The CD's loader drops the first key: winarm sees the prompt again and presses again; the CD boots."""
    vm = Up(tmp_path, run_base, *GUEST, "--no-secure-boot", "--iso", str(_testbed(drop_key=True)),
            "--stop-at", "init")
    try:
        assert vm.wait(240) == 0, "\n".join(vm.lines)
    finally:
        vm.close()
    events = vm.events()
    kinds = [e["kind"] for e in events]
    presses = [e["press"] for e in events if e["kind"] == "key-pressed"]
    assert presses == [1, 2], presses
    assert [e["device"] for e in events if e["kind"] == "boot-device"][0] == "cd"
    assert "cd-boot-failed" not in kinds, "the first boot from the CD went on"
    assert not [e for e in events if e["kind"] == "reset" and not e["guest"]], "winarm reset nothing"
    assert kinds.index("key-pressed") < kinds.index("marker")  # the guest's reboot may follow as it stops
    times = [e["t"] for e in events if e["kind"] == "key-pressed"]
    assert times[1] - times[0] >= 1.0, "a second apart at least"


def test_a_cd_that_never_boots_is_tried_three_times_then_the_run_fails(tmp_path: Path, run_base: Path) -> None:
    """The CD's loader takes no key and goes back to the firmware (its menu): reset, again, then one line."""
    vm = Up(tmp_path, run_base, *GUEST, "--no-secure-boot", "--iso", str(_testbed(deaf_prompt=True)))
    try:
        assert vm.wait(300) == 1, "\n".join(vm.lines)
    finally:
        vm.close()
    events = vm.events()
    failed = [e for e in events if e["kind"] == "cd-boot-failed"]
    assert [(e["attempt"], e["retry"], e["what"]) for e in failed] == [(1, True, "menu"), (2, True, "menu"),
                                                                       (3, False, "menu")], failed
    resets = [e for e in events if e["kind"] == "reset"]
    assert len(resets) == 2 and not any(e["guest"] for e in resets), "winarm reset the VM twice"
    keys = [e for e in events if e["kind"] == "key-pressed"]
    assert 3 <= len(keys) <= 15, "keys pressed at each boot's prompt, at most 5 a boot"
    (line,) = [line for line in vm.lines if "did not boot in 3 tries" in line]
    assert "the install CD did not boot in 3 tries (each time the firmware fell back to its own menu" in line, line
    assert "the firmware's last lines: " in line and '"UiApp"' in line, line
    assert sum("resetting the VM to try again" in line for line in vm.lines) == 2
    kinds = [e["kind"] for e in events]
    stop = next(e for e in events if e["kind"] == "stop-requested")
    assert stop["reason"] == "the install CD did not boot"
    quit_after = events[kinds.index("quit-sent")]["t"] - stop["t"]
    assert quit_after < 1.0, "no OS runs: QEMU is told to quit at once, not after the power button's timeout"
    assert events[-1]["kind"] == "exit"


def test_secure_boot_refusing_the_cd_is_told_with_the_way_out(tmp_path: Path, run_base: Path) -> None:
    """The test CD's loader is not signed by Microsoft: Secure Boot with Microsoft's keys refuses it. One line
    names the boot option and the way out; --no-secure-boot (the way out) then boots the same VM's CD."""
    iso = str(_testbed())
    vm = Up(tmp_path, run_base, *GUEST, "--secure-boot", "--iso", iso)
    try:
        assert vm.wait(240) == 1, "\n".join(vm.lines)
    finally:
        vm.close()
    (refused,) = [e for e in vm.events() if e["kind"] == "boot-refused"]
    assert (refused["device"], refused["status"], refused["action"]) == ("cd", "Access Denied", "load"), refused
    (line,) = [line for line in vm.lines if "Secure Boot refused to" in line]
    assert (f'Secure Boot refused to load {refused["entry"]} "{refused["description"]}" (the install CD): Access '
            "Denied: the firmware's Secure Boot keys do not trust its signature, or it is not signed; the way out: "
            "start with --no-secure-boot") in line, line
    assert "USB" in refused["path"]
    stop = next(e for e in vm.events() if e["kind"] == "stop-requested")
    assert stop["reason"] == "Secure Boot refused the install CD"

    again = Up(tmp_path, run_base, *GUEST, "--no-secure-boot", "--iso", iso, "--stop-at", "init")
    try:
        assert again.wait(240) == 0, "\n".join(again.lines)
    finally:
        again.close()
    events = again.events()
    assert "boot-refused" not in [e["kind"] for e in events], "the VM's UEFI variables follow --no-secure-boot"
    assert [e["device"] for e in events if e["kind"] == "boot-device"][0] == "cd"


def _blank_disk(storage: Path, facts: dict[str, bool]) -> Path:
    (storage / "t").mkdir(parents=True)
    disk = storage / "t" / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    (storage / "t" / "vm.json").write_text(json.dumps(facts))
    return disk


@pytest.mark.parametrize(("facts", "junk", "says"), [
    ({}, True, "nothing to boot: the firmware fell through to its UEFI shell; the disk has never booted an OS and "
               "no install CD is attached: stop the VM ('winarm down') and start it with --iso"),
    ({"disk_booted": True}, False, "no OS booted: the firmware fell through to its UEFI shell; the disk has booted "
                                   "before, so its boot loader is missing or damaged; the firmware's last lines: "),
], ids=["a-disk-with-data-but-no-loader", "an-installed-disk-gone-blank"])
def test_nothing_to_boot_makes_the_vm_unhealthy(tmp_path: Path, run_base: Path, facts: dict[str, bool], junk: bool,
                                                says: str) -> None:
    """No ISO, and a disk the firmware cannot boot (past the start's refusal: a disk with data of its own, or one
    winarm remembers booting): the firmware falls through to its shell; status says unhealthy, with the line."""
    disk = _blank_disk(tmp_path, facts)
    if junk:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x55 0 4096", str(disk)], check=True,
                       capture_output=True)
    vm = Up(tmp_path, run_base, *FIRMWARE_ONLY, env={"WINARM_FIRMWARE_ONLY": "0"})
    try:
        line = vm.wait_line(says[:30], 120)
        report = vm.status()
        vm.proc.terminate()
        assert vm.wait(60) == 0
    finally:
        vm.close()
    assert says in line, line
    assert report["state"] == "running" and report["healthy"] is False, report
    assert report["problem"] == line.split("] ", 1)[1]
    (no_boot,) = [e for e in vm.events() if e["kind"] == "no-boot"]
    assert (no_boot["what"], no_boot["disk_booted"]) == ("shell", bool(facts))


def test_a_tests_firmware_only_vm_sits_in_the_shell_and_stays_healthy(tmp_path: Path, run_base: Path) -> None:
    """The tests' own firmware-only VMs (WINARM_FIRMWARE_ONLY=1) are not refused and their shell is no problem."""
    vm = Up(tmp_path, run_base, *FIRMWARE_ONLY)
    try:
        vm.wait_event("no-boot", None, 120)
        report = vm.status()
        vm.proc.terminate()
        assert vm.wait(60) == 0
    finally:
        vm.close()
    assert report["healthy"] is True and report["problem"] is None, report
    assert [e["expected"] for e in vm.events() if e["kind"] == "no-boot"] == [True]
