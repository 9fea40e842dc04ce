"""The storage fills up under a running VM: QEMU pauses it, winarm says so, nothing is lost, and it goes on.

Real parts throughout: the Windows-shaped testbed installed by winarm, its disk moved onto a real small tmpfs,
the guest's write load (``winarm_testbed.write_load``) growing the sparse qcow2, and the tmpfs then filled to
the last byte from the host, as a container's /storage volume fills.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.vmtools import fill, mounted_tmpfs
from winarm.timeline.events import EventLog, read_events
from winarm.vm.full_storage import ConsoleLog, wait_for_room

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




def test_the_console_log_has_a_cap_per_run(tmp_path: Path) -> None:
    """Issue 14, finding 6: a guest flooding its console grew serial.log without bound."""
    log = ConsoleLog(tmp_path / "serial.log", limit=1000)
    for _ in range(50):
        log.write(b"x" * 100)
    log.close()
    text = (tmp_path / "serial.log").read_bytes()
    assert text.startswith(b"x" * 1000) and text.count(b"x") == 1000
    assert b"the console log reached 1000 bytes" in text and len(text) < 1200
    assert log.capped == 4000
