"""A disk request failed: when the storage is full, the VM waits paused and goes on once there is room.

QEMU pauses the VM itself (``werror=enospc``) and reports ``BLOCK_IO_ERROR`` with ``nospace``; this part says
so once, waits for room (see :mod:`winarm.vm.full_storage`) and sends ``cont``. Another I/O error was passed
to the guest: it is said once a run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from winarm.errors import RuntimeFailure
from winarm.timeline.events import EventKind
from winarm.vm.full_storage import io_error_summary
from winarm.vm.report import Reporter
from winarm.vm.state import Lifecycle, VmState

RoomWait = Callable[[Path], Awaitable[int]]
"""Waits until the storage at a path has room again; returns the free bytes."""
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]
"""Runs a coroutine as a task its owner waits for (the supervisor's task group)."""


class StoragePause:
    """Pauses and resumes one VM for a full storage. ``before_resume`` runs just before ``cont`` (the facts
    kept meanwhile are saved); ``stopping`` says whether a stop was requested (no pause is announced then)."""

    def __init__(self, reporter: Reporter, lifecycle: Lifecycle, *, storage: Path, qemu_log: Path,
                 cont: Callable[[], Awaitable[Any]], wait_for_room: RoomWait) -> None:
        self.reporter = reporter
        self.lifecycle = lifecycle
        self.storage = storage
        self.qemu_log = qemu_log
        self.cont = cont
        self.wait_for_room = wait_for_room
        self.before_resume: Callable[[], None] = lambda: None
        self.stopping: Callable[[], bool] = lambda: False
        self._waiting: asyncio.Task[None] | None = None
        self._io_error_said = False

    @property
    def paused(self) -> bool:
        """Whether the VM waits for room now."""
        return self._waiting is not None

    def on_io_error(self, data: dict[str, Any], spawn: Spawn) -> None:
        """A ``BLOCK_IO_ERROR`` event's data. Out of room: pause (once) and start the wait for room with
        ``spawn``. Another error: said once a run."""
        if data.get("nospace") and data.get("action") == "stop":
            if self._waiting is not None or self.stopping():
                return
            self.lifecycle.move(VmState.PAUSED)
            self.reporter.record(EventKind.STORAGE_FULL, error=io_error_summary(data))
            self.reporter.say(f"the storage {self.storage} is full: the VM is paused, nothing is lost; it goes on "
                              "by itself once there is room again (free some space), or 'winarm down' stops it")
            self._waiting = spawn(self._resume_when_room())
        elif not self._io_error_said:
            self._io_error_said = True
            self.reporter.record(EventKind.IO_ERROR, error=io_error_summary(data), action=data.get("action"))
            self.reporter.say(f"disk error ({io_error_summary(data)}): the guest was told; see {self.qemu_log}")

    async def _resume_when_room(self) -> None:
        free = await self.wait_for_room(self.storage)  # the events kept meanwhile go out with the next record
        self.before_resume()
        try:
            await self.cont()
        except RuntimeFailure as error:  # QEMU went away meanwhile: the supervisor reports that
            self.reporter.record(EventKind.RESUME_FAILED, error=str(error))
            return
        self._waiting = None
        self.lifecycle.move(VmState.RUNNING)
        self.reporter.record(EventKind.STORAGE_RESUMED, free=free)
        self.reporter.say(f"the storage has room again ({free // (1024 * 1024)} MiB free): the VM goes on")

    def cancel(self) -> None:
        """Stop waiting for room (the VM is stopping)."""
        if self._waiting is not None:
            self._waiting.cancel()
