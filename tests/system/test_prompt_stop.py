"""A stop where no OS or Windows Setup runs is prompt: a real qemu-system-aarch64 under TCG with real AAVMF
firmware, and the Windows-shaped test ISO.

A VM without bootable media stays in its firmware (network boot, then the UEFI shell), which ignores the power
button. The test guest played as Windows Setup ignores it in windowsPE as Setup does; real Windows Setup cannot
run here, so the guest stands in for it (its hang option keeps it at the top of windowsPE). With a 60 s
``--timeout``, ``winarm down`` returns after the short wait, saying why.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import cache_dir
from tests.vmtools import Up, winarm
from winarm.vm.stop_plan import NO_OS_PHASES, PROMPT_WAIT

pytestmark = pytest.mark.qemu
SMALL = ["--ram", "512M", "--cpus", "1", "--disk-size", "256M", "--no-secure-boot", "--no-tpm"]
TIMEOUT = 60.0
GUEST = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--no-tpm"]


@pytest.fixture(scope="module")
def hang_iso() -> Path:
    """The Windows test ISO whose guest stops at the top of windowsPE (cached, shared with the stall test)."""
    from winarm_testbed.windows_iso import build_windows_testbed

    return build_windows_testbed(cache_dir(), hang=True, log=lambda line: None)


def test_down_of_a_vm_in_its_firmware_quits_promptly_and_says_why(tmp_path: Path, run_base: Path) -> None:
    vm = Up(tmp_path, run_base, *SMALL, "--timeout", f"{TIMEOUT:g}")
    try:
        vm.wait_line("running (tcg)", 60)
        started = time.monotonic()
        down = winarm("down", "--name", "t", "--storage", str(tmp_path), env=vm.env, timeout=TIMEOUT + 30)
        took = time.monotonic() - started
        assert down.returncode == 0, down.stderr
        assert vm.wait(30) == 0, "\n".join(vm.lines)
    finally:
        vm.kill()
    assert took < PROMPT_WAIT + 10, f"winarm down took {took:.1f} s (the timeout is {TIMEOUT:g} s)"
    pressed = next(e for e in vm.events() if e["kind"] == "powerdown-requested")
    phase = pressed["phase"]
    assert phase in NO_OS_PHASES and pressed["why"] == "no-os" and pressed["wait"] == PROMPT_WAIT, pressed
    because = f"no OS running ({NO_OS_PHASES[phase]})"
    assert pressed["because"] == because
    assert f"stopping VM 't': {because}, quit after 5 s" in down.stdout, down.stdout
    assert any(line.endswith(f"stopped: {because}, quit after 5 s") for line in vm.lines), vm.lines
    times = {e["kind"]: e["t"] for e in vm.events()}
    assert PROMPT_WAIT <= times["quit-sent"] - times["powerdown-requested"] < PROMPT_WAIT + 2
    exit_event = vm.events()[-1]
    assert exit_event["kind"] == "exit" and exit_event["stop"] == "quit" and exit_event["why"] == "no-os"


def test_down_during_windows_setup_quits_promptly_and_says_the_install_is_lost(
        tmp_path: Path, run_base: Path, hang_iso: Path, placeholder_drivers: Path) -> None:
    vm = Up(tmp_path, run_base, *GUEST, "--iso", str(hang_iso), "--drivers", str(placeholder_drivers),
            "--timeout", f"{TIMEOUT:g}")
    try:
        vm.wait_line("QEMU pid", 120)
        vm.wait_event("guest-event", "hang", 300)  # the guest is in windowsPE, and stays there
        started = time.monotonic()
        down = winarm("down", "--name", "t", "--storage", str(tmp_path), env=vm.env, timeout=TIMEOUT + 30)
        took = time.monotonic() - started
        assert down.returncode == 0, down.stderr
        assert vm.wait(30) == 0, "\n".join(vm.lines)
    finally:
        vm.kill()
    assert took < PROMPT_WAIT + 10, f"winarm down took {took:.1f} s (the timeout is {TIMEOUT:g} s)"
    because = "Windows Setup (windowsPE) ignores the power button"
    assert f"stopping VM 't': {because}, quit after 5 s" in down.stdout, down.stdout
    assert any(line.endswith(f"stopped: {because}, quit after 5 s; the install's progress is lost")
               for line in vm.lines), vm.lines
    pressed = next(e for e in vm.events() if e["kind"] == "powerdown-requested")
    assert (pressed["phase"], pressed["why"], pressed["because"]) == ("windowsPE", "setup", because)
