"""The storage fills up under a running VM: QEMU pauses it, winarm says so, nothing is lost, and it goes on.

Real parts throughout: the Windows-shaped testbed installed by winarm, its disk moved onto a real small tmpfs,
the guest's write load (``winarm_testbed.write_load``) growing the sparse qcow2, and the tmpfs then filled to
the last byte from the host, as a container's /storage volume fills.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.vmtools import Up, fill, mounted_tmpfs, winarm
from winarm_testbed.disk_image import fsck_image
from winarm_testbed.write_load import set_write_load

VM = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--timeout", "60", "--no-tpm",
      "--no-share"]


@pytest.mark.qemu
def test_a_full_storage_pauses_the_vm_and_it_goes_on_when_there_is_room(
    tmp_path: Path, run_base: Path, testbed_iso: Path, placeholder_drivers: Path
) -> None:
    installed = tmp_path / "installed"
    install = Up(installed, run_base, *VM, "--iso", str(testbed_iso), "--drivers", str(placeholder_drivers),
                 "--stop-at", "desktop-ready")
    try:
        assert install.wait(600) == 0, "\n".join(install.lines)
    finally:
        install.close()
    set_write_load(installed / "t" / "disk.qcow2")
    used = sum(p.stat().st_blocks * 512 for p in (installed / "t").rglob("*") if p.is_file())

    with mounted_tmpfs(tmp_path / "storage", f"size={used // 2**20 + 128}M,mode=0755") as storage:
        shutil.copytree(installed / "t", storage / "t")
        disk = storage / "t" / "disk.qcow2"
        vm = Up(storage, run_base, *VM)
        try:
            vm.wait_event("guest-event", "guest-writing", 300)
            fill(storage)  # the guest's next new cluster finds no room
            vm.wait_line("is full: the VM is paused, nothing is lost", 300)
            paused = vm.status()
            assert paused["state"] == "paused" and paused["paused"] == "storage full", paused
            assert paused["healthy"] is False, paused
            assert winarm("status", "--name", "t", "--storage", str(storage), env=vm.env).returncode == 3

            (storage / "filler").unlink()
            vm.wait_line("the storage has room again", 60)
            resumed = vm.status()
            assert resumed["state"] == "running" and resumed["paused"] is None and resumed["healthy"], resumed

            down = winarm("down", "--name", "t", "--storage", str(storage), env=vm.env, timeout=120)
            assert down.returncode == 0, down.stdout + down.stderr
            assert vm.wait(120) == 0, "\n".join(vm.lines)
        finally:
            vm.close()
        printed = "\n".join(vm.lines)
        assert "Traceback" not in printed
        assert "cannot shut down" not in printed, "the guest ran again and shut down itself"

        events = vm.events()  # what was recorded while the storage was full reached the file afterwards
        kinds = [e["kind"] for e in events]
        assert kinds.index("storage-full") < kinds.index("storage-resumed") < kinds.index("stop-requested")
        full = events[kinds.index("storage-full")]
        assert "No space left on device" in full["error"], full
        # playing Windows, the test guest's own poweroff step is a guest event (there are no serial phases)
        assert any(e["kind"] == "guest-event" and e["name"] == "poweroff" for e in events), \
            "the guest heard the power button after going on"
        assert events[-1]["kind"] == "exit" and events[-1]["clean"] is True and events[-1]["stop"] == "guest"
        timeline = winarm("phases", "--name", "t", "--storage", str(storage), "--json", env=vm.env)
        paused_in = [p for p in json.loads(timeline.stdout)["phases"] if p["paused"] > 0]
        pause = events[kinds.index("storage-resumed")]["t"] - full["t"]
        assert paused_in and abs(sum(p["paused"] for p in paused_in) - pause) < 1e-3, paused_in
        table = winarm("phases", "--name", "t", "--storage", str(storage), env=vm.env).stdout
        assert "paused: storage full" in table, table

        check = subprocess.run(["qemu-img", "check", str(disk)], capture_output=True, text=True, check=False)
        assert check.returncode == 0 and "No errors" in check.stdout, check.stdout + check.stderr
        assert [r.findings for r in fsck_image(disk) if not r.clean] == [], "the guest unmounted its disk clean"
