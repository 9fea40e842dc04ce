"""The VM life cycle with a real qemu-system-aarch64 under TCG and real AAVMF firmware.

These VMs have no bootable media: the firmware ends in its UEFI shell and ignores the power button, which is
exactly what the fallback stop (quit, then kill) must handle.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.vmtools import REPO_ROOT, Up, winarm

REPO = REPO_ROOT

pytestmark = pytest.mark.qemu
SMALL = ["--ram", "512M", "--cpus", "1", "--disk-size", "256M", "--no-secure-boot", "--no-tpm"]


def test_fallback_stop_of_a_firmware_only_vm(tmp_path: Path, run_base: Path) -> None:
    vm = Up(tmp_path, run_base, *SMALL, "--timeout", "3")
    try:
        vm.wait_line("running (tcg)", 60)
        report = vm.status()
        assert report["state"] == "running" and report["healthy"] is True
        assert psutil.pid_exists(report["qemu_pid"])
        assert report["vnc"] == f"unix:{report['run_dir']}/vnc.sock", "VNC on its socket by default (issue 14)"
        assert Path(report["run_dir"], "vnc.sock").is_socket()
        assert oct(Path(report["run_dir"]).stat().st_mode & 0o777) == "0o700"
        down = winarm("down", "--name", "t", "--storage", str(tmp_path), env=vm.env)
        assert down.returncode == 0, down.stderr
        assert vm.wait(30) == 0
    finally:
        vm.kill()
    kinds = [e["kind"] for e in vm.events()]
    assert kinds.index("powerdown-requested") < kinds.index("quit-sent") < kinds.index("exit")
    assert "shutdown" in kinds and "killed" not in kinds
    times = {e["kind"]: e["t"] for e in vm.events()}
    waited = times["quit-sent"] - times["powerdown-requested"]
    assert 3.0 <= waited < 3.0 + 2.0, f"the guest got {waited:.2f} s instead of the 3 s timeout"
    assert times["exit"] - times["powerdown-requested"] <= 3.0 + 2.0
    assert not psutil.pid_exists(vm.events()[1]["pid"]) or psutil.Process(vm.events()[1]["pid"]).status() == "zombie"
    assert not (run_base / "t").exists(), "the run directory is removed after a stop"
    stopped = winarm("status", "--name", "t", "--storage", str(tmp_path), env=vm.env)
    assert stopped.returncode == 3 and "stopped" in stopped.stdout


def test_sigkill_of_winarm_leaves_no_qemu_and_the_next_up_starts(tmp_path: Path, run_base: Path) -> None:
    vm = Up(tmp_path, run_base, *SMALL, "--tpm")
    try:
        vm.wait_line("running (tcg)", 60)
        children = psutil.Process(vm.proc.pid).children(recursive=True)
        names = sorted(c.name() for c in children)
        assert any(n.startswith("qemu-system") for n in names) and "swtpm" in names, names
    finally:
        vm.kill()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind after SIGKILL: {[p.name() for p in alive]}"
    # stale sockets and pid files of the dead daemon do not stop the next start
    assert (run_base / "t" / "qmp.sock").exists()
    again = Up(tmp_path, run_base, *SMALL, "--timeout", "1")
    try:
        again.wait_line("running (tcg)", 60)
        again.proc.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0
    finally:
        again.kill()


def still_files(storage: Path) -> dict[str, bytes]:
    """Every file of the storage except those the running VM itself keeps writing (its logs, the firmware's
    variables), with its bytes."""
    live = {"serial.log", "qemu.log", "events.jsonl", "efivars.fd", "swtpm.log"}
    return {str(p.relative_to(storage)): p.read_bytes() for p in sorted(storage.rglob("*"))
            if p.is_file() and p.name not in live}


def test_a_second_up_of_the_same_vm_is_refused_and_changes_nothing(tmp_path: Path, run_base: Path) -> None:
    vm = Up(tmp_path, run_base, *SMALL, "--timeout", "1")
    try:
        vm.wait_line("running (tcg)", 60)
        before = still_files(tmp_path)
        second = winarm("up", "--name", "t", "--storage", str(tmp_path), *SMALL, env=vm.env)
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1 and "already running" in second.stderr
        assert "Traceback" not in second.stderr
        assert still_files(tmp_path) == before, "the refused second up changed the storage"
        env_second = subprocess.run([sys.executable, str(REPO / "entrypoint.py")], capture_output=True, text=True,
                                    env={**vm.env, "NAME": "t", "STORAGE": str(tmp_path), "RAM_SIZE": "512M",
                                         "CPU_CORES": "1", "DISK_SIZE": "256M", "TPM": "N"}, check=False, timeout=60)
        assert env_second.returncode == 2 and env_second.stderr.count("\n") == 1, env_second.stderr
        assert "already running" in env_second.stderr
        assert still_files(tmp_path) == before
        vm.proc.send_signal(signal.SIGINT)
        assert vm.wait(30) == 0
    finally:
        vm.kill()
