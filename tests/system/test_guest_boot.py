"""A real arm64 Linux guest (built from Debian packages) booted through ``winarm up`` under TCG.

The guest plays an installer: booted from the USB CD after the "Press any key" prompt, it writes a bootable
seed onto the system disk and reboots; from the disk it reports ``ready`` and powers off at the power button.
Every phase asserted here comes from real QEMU events and real console output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.vmtools import Up, winarm

pytestmark = pytest.mark.qemu
GUEST = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--timeout", "30", "--no-unattend"]


def test_install_reboot_and_graceful_stop(tmp_path: Path, run_base: Path, guest_iso: Path) -> None:
    vm = Up(tmp_path, run_base, *GUEST, "--iso", str(guest_iso), "--tpm", "--stop-at", "ready")
    try:
        assert vm.wait(240) == 0, "\n".join(vm.lines)
    finally:
        vm.kill()
    events = vm.events()
    kinds = [e["kind"] for e in events]
    # the CD booted first, the key was pressed once, the guest rebooted and came back from the disk
    boots = [e["device"] for e in events if e["kind"] == "boot-device"]
    assert boots == ["cd", "disk"], boots
    assert kinds.count("key-pressed") == 1 and kinds.count("reset") == 1
    assert kinds.index("key-pressed") < kinds.index("reset")
    markers = [e["name"] for e in events if e["kind"] == "marker"]
    assert markers == ["init", "setup", "setup-done", "init", "ready", "poweroff"], markers
    # the stop was graceful: power button, the guest's own shutdown, no quit, no kill
    exit_event = events[-1]
    assert exit_event["kind"] == "exit" and exit_event["stop"] == "guest" and exit_event["clean"] is True
    shutdown = next(e for e in events if e["kind"] == "shutdown")
    assert shutdown["guest"] is True and "quit-sent" not in kinds

    result = winarm("phases", "--name", "t", "--storage", str(tmp_path), "--json", env=vm.env)
    doc = json.loads(result.stdout)
    names = [(p["name"], p["boot"]) for p in doc["phases"]]
    assert names == [("launch", 0), ("firmware", 1), ("boot-cd", 1), ("init", 1), ("setup", 1), ("setup-done", 1),
                     ("firmware", 2), ("boot-disk", 2), ("init", 2), ("ready", 2), ("shutdown", 2)], names
    assert abs(sum(p["duration"] for p in doc["phases"]) - doc["total"]) < 1e-3
    table = winarm("phases", "--name", "t", "--storage", str(tmp_path), env=vm.env).stdout
    assert "boot-disk" in table and "total" in table

    # the next boot starts from the installed disk: no CD prompt answered, no key pressed
    again = Up(tmp_path, run_base, *GUEST, "--iso", str(guest_iso), "--no-tpm", "--stop-at", "ready")
    try:
        assert again.wait(240) == 0, "\n".join(again.lines)
    finally:
        again.kill()
    events = again.events()
    assert [e["device"] for e in events if e["kind"] == "boot-device"] == ["disk"]
    assert "key-pressed" not in [e["kind"] for e in events]
    assert (tmp_path / "t" / "history").is_dir(), "the first run's event log was kept"
