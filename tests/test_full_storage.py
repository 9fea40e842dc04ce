"""The storage fills up under a running VM: QEMU pauses it, winarm says so, nothing is lost, and it goes on.

Real parts throughout: the Windows-shaped testbed installed by winarm, its disk moved onto a real small tmpfs,
the guest's write load (``winarm_testbed.write_load``) growing the sparse qcow2, and the tmpfs then filled to
the last byte from the host, as a container's /storage volume fills.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from winarm.timeline.phases import EventLog, read_events
from winarm.vm.full_storage import ConsoleLog, wait_for_room
from winarm_testbed.disk_image import fsck_image
from winarm_testbed.write_load import set_write_load

from .vmtools import Up, fill, mounted_tmpfs, winarm

VM = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--timeout", "60", "--no-tpm",
      "--no-share"]


def test_the_phase_log_keeps_events_while_the_storage_is_full_and_writes_them_in_order_after(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "size=1M") as storage:
        log = EventLog(storage / "events.jsonl")
        log.record("first")
        fill(storage)
        for index in range(200):  # more than the last page of the file can take
            log.record("while-full", index=index, padding="x" * 100)
        assert log.write_error is not None and log.write_error.strerror == "No space left on device"
        assert len(log.events) == 201, "every event is kept in memory"
        (storage / "filler").unlink()
        log.record("after")
        assert log.write_error is None
        log.close()
        written = read_events(storage / "events.jsonl")
        assert [e["kind"] for e in written] == ["first", *["while-full"] * 200, "after"]
        assert [e["index"] for e in written if e["kind"] == "while-full"] == list(range(200))
        assert all(json.loads(line) for line in (storage / "events.jsonl").read_text().splitlines()), "no torn line"


def test_the_console_log_drops_what_it_cannot_write_and_says_how_much(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "size=1M") as storage:
        log = ConsoleLog(storage / "serial.log")
        log.write(b"before\n")
        fill(storage)
        for _ in range(10):
            log.write(b"y" * 4096)  # at least the first page beyond the file's last one fails
        lost = log.lost
        assert lost > 0
        (storage / "filler").unlink()
        log.write(b"after\n")
        log.close()
        text = (storage / "serial.log").read_bytes()
        assert text.startswith(b"before\n") and text.endswith(
            f"\n[winarm: {lost} bytes of console output not logged: the storage was full]\nafter\n".encode())
        kept = text.split(b"\n[winarm:")[0].count(b"y")
        assert kept == 10 * 4096 - lost, "what was written is kept, what was lost is counted"


def test_a_paused_vm_waits_for_room_and_not_before(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "size=8M") as storage:
        fill(storage)

        async def scenario() -> int:
            waiting = asyncio.ensure_future(wait_for_room(storage, room=4 * 2**20, poll=0.01))
            done, _ = await asyncio.wait({waiting}, timeout=0.2)
            assert not done, "no room yet: still waiting"
            (storage / "filler").unlink()
            return await asyncio.wait_for(waiting, 5)

        assert asyncio.run(scenario()) >= 4 * 2**20


@pytest.mark.qemu
def test_a_full_storage_pauses_the_vm_and_it_goes_on_when_there_is_room(
    tmp_path: Path, run_base: Path, testbed_iso: Path, placeholder_drivers: Path
) -> None:
    installed = tmp_path / "installed"
    install = Up(installed, run_base, *VM, "--iso", str(testbed_iso), "--drivers", str(placeholder_drivers),
                 "--stop-at", "ready")
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
        assert any(e["kind"] == "marker" and e["name"] == "poweroff" for e in events), \
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
