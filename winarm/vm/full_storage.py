"""When the storage fills up under a running VM: nothing is lost, the VM waits, and it goes on by itself.

A sparse disk image (the default) grows as the guest writes, so the storage holding it can fill while the VM
runs. QEMU's disks use ``werror=enospc``: a write that finds no room pauses the VM (QMP ``STOP``, with a
``BLOCK_IO_ERROR`` event that says ``nospace``) and keeps the request, which ``cont`` retries. The supervisor
says so in one line, waits until the storage has :data:`RESUME_ROOM` free again and continues the VM. Its own
files on the same storage (the phase log, the console log, the facts) must not stop it meanwhile: the phase log
keeps events in memory (:class:`winarm.timeline.phases.EventLog`), and the console log here drops what it cannot write
and says how much once it can write again.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from winarm.config.host import free_disk
from winarm.config.vm import SPARSE_RUN_ROOM
from winarm.files import append_some

RESUME_ROOM = SPARSE_RUN_ROOM
"""Free bytes the storage needs before a VM paused for lack of room is continued: enough for QEMU's pending
writes and a while of the guest's, so the VM does not pause again at once."""
POLL_SECONDS = 1.0
"""How often the free space is looked at while the VM waits (no event announces free space)."""


def io_error_summary(data: dict[str, Any]) -> str:
    """A ``BLOCK_IO_ERROR`` event's data in a few words: ``write on disk0: No space left on device``."""
    device = data.get("device") or data.get("node-name") or "a disk"
    return f"{data.get('operation', 'I/O')} on {device}: {data.get('reason') or 'error'}"


async def wait_for_room(storage: Path, room: int = RESUME_ROOM, poll: float = POLL_SECONDS) -> int:
    """Return the free bytes on ``storage``'s file system once there are at least ``room``."""
    while True:
        try:
            free = free_disk(storage)
        except OSError:
            free = 0
        if free >= room:
            return free
        await asyncio.sleep(poll)


CONSOLE_LOG_LIMIT = 16 * 2**20
"""Bytes of console output logged per run (the log is rotated at each start): a guest flooding its console
must not fill the storage (issue 14). A real install prints a few hundred kilobytes."""


class ConsoleLog:
    """The guest's serial output, appended raw to a file, at most ``limit`` bytes a run: past it one note says
    so and the rest is counted, not written (:attr:`capped`). A write that fails (the storage is full) drops
    those bytes rather than stopping anything; the next write that succeeds first notes how many were lost."""

    def __init__(self, path: Path, limit: int = CONSOLE_LOG_LIMIT) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.lost = 0
        """Bytes dropped since the last successful write."""
        self.limit = limit
        self.logged = 0
        self.capped = 0
        """Bytes not logged because the run's log reached :attr:`limit`."""

    def write(self, data: bytes) -> None:
        """Append ``data`` (up to the limit), or count what could not be written as lost; never raises for a
        failed write."""
        room = max(self.limit - self.logged, 0)
        if len(data) > room:
            first = self.capped == 0
            self.capped += len(data) - room
            note = (f"\n[winarm: the console log reached {self.limit} bytes: the rest of this run's console output "
                    "is not logged]\n").encode() if first else b""
            data = data[:room] + note
            if not data:
                return
        self.logged += len(data)
        if self.lost:
            note = f"\n[winarm: {self.lost} bytes of console output not logged: the storage was full]\n".encode()
            if append_some(self._fd, note)[1] is not None:
                self.lost += len(data)
                return
            self.lost = 0
        self.lost += len(data) - append_some(self._fd, data)[0]

    def close(self) -> None:
        os.close(self._fd)
