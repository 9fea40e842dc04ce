"""Faults with real parts: QEMU killed mid-boot, swtpm killed under a running VM.

QEMU, swtpm, smbd and the guest are real (the plain test guest from Debian packages, under TCG); each fault is a
real SIGKILL of a real process.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.vmtools import FIRMWARE_ONLY, Up, family

pytestmark = pytest.mark.qemu
GUEST = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--timeout", "30", "--no-unattend"]




def gone(processes: list[psutil.Process]) -> list[str]:
    """Names of the processes still alive (zombies count as gone)."""
    _, alive = psutil.wait_procs(processes, timeout=10)
    return [p.name() for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def test_qemu_killed_mid_boot_is_one_line_and_the_disk_boots_again(tmp_path: Path, run_base: Path,
                                                                    guest_iso: Path, share_root: Path) -> None:
    shared = share_root / "shared"
    shared.mkdir()
    os.chown(shared, 4321, 4322)  # not root's: root as the share's default owner is refused
    storage = tmp_path / "storage"
    vm = Up(storage, run_base, *GUEST, "--iso", str(guest_iso), "--tpm", "--shared", str(shared))
    try:
        vm.wait_line("phase boot-cd", 240)  # the guest's first marker came: the CD's Linux is up
        report = vm.status()
        helpers = [p for p in family(vm.proc.pid) if p.name() in ("smbd", "swtpm")]
        assert {p.name() for p in helpers} == {"smbd", "swtpm"}
        os.kill(report["qemu_pid"], signal.SIGKILL)
        assert vm.wait(60) == 1, "\n".join(vm.lines)
    finally:
        vm.kill()
    crash = [line for line in vm.lines if "QEMU died" in line]
    assert len(crash) == 1, "\n".join(vm.lines)
    # the guest says init once it has found its CD, and setup right after: the kill lands in either
    phase = crash[0].split(" during ", 1)[1].split(":", 1)[0]
    assert phase in ("init", "setup") and "QEMU died (killed by SIGKILL) during " in crash[0], crash[0]
    assert ": QEMU said: " in crash[0]
    assert "the console's last lines:" in crash[0]
    assert "WINARM-PHASE init" in crash[0], "the guest's last words are in the line"
    assert not any("Traceback" in line for line in vm.lines)
    assert gone(helpers) == [], "smbd and swtpm stop with the VM"
    events = vm.events()
    crashes = [e for e in events if e["kind"] == "crash"]
    assert len(crashes) == 1 and crashes[0]["phase"] == phase and crashes[0]["code"] == -signal.SIGKILL
    assert events[-1]["kind"] == "exit" and events[-1]["clean"] is False
    assert not (run_base / "t").exists(), "the run directory is cleaned up"

    image = storage / "t" / "disk.qcow2"
    check = subprocess.run(["qemu-img", "check", str(image)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    again = Up(storage, run_base, *GUEST, "--iso", str(guest_iso), "--no-tpm", "--stop-at", "ready")
    try:
        assert again.wait(300) == 0, "\n".join(again.lines)
    finally:
        again.kill()
    markers = [e["name"] for e in again.events() if e["kind"] == "marker"]
    assert "ready" in markers, markers
    check = subprocess.run(["qemu-img", "check", str(image)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_lost_tpm_stops_the_vm_gracefully(tmp_path: Path, run_base: Path) -> None:
    """The firmware-only VM ignores the power button, so the graceful stop ends in quit after --timeout."""
    vm = Up(tmp_path, run_base, *FIRMWARE_ONLY, "--tpm")
    try:
        vm.wait_line("running (tcg)", 60)
        swtpm = next(p for p in family(vm.proc.pid) if p.name() == "swtpm")
        qemu = psutil.Process(vm.status()["qemu_pid"])
        swtpm.kill()
        assert vm.wait(60) == 1, "\n".join(vm.lines)
    finally:
        vm.kill()
    assert any("the TPM (swtpm) ended" in line and "stopping the VM" in line for line in vm.lines), vm.lines
    assert any("stopping (TPM lost): power button" in line for line in vm.lines), vm.lines
    kinds = [e["kind"] for e in vm.events()]
    assert kinds.index("swtpm-lost") < kinds.index("powerdown-requested") < kinds.index("exit")
    assert "killed" not in kinds and "crash" not in kinds
    assert gone([qemu]) == []
