"""The desktop-ready file on the share: the guest writes it at each logon (see
:data:`winarm.guest.DESKTOP_READY_FILE`), a second channel for the ``desktop-ready`` marker beside the console."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from winarm.guest import DESKTOP_READY_FILE
from winarm.vm.watch import IN_CLOSE_WRITE, IN_MOVED_TO, Watch


class ShareWatch:
    """An inotify watch on a shared folder for the desktop-ready file. Opening raises OSError when the folder
    cannot be watched; a file left by an earlier run is removed first."""

    def __init__(self, folder: Path) -> None:
        self.marker_file = folder / DESKTOP_READY_FILE
        self.marker_file.unlink(missing_ok=True)  # left by an earlier run
        self._watch = Watch(folder, IN_CLOSE_WRITE | IN_MOVED_TO)

    async def run(self, on_ready: Callable[[], Awaitable[None]]) -> None:
        """Await ``on_ready()`` each time the file is written (the file is then removed), until cancelled;
        the watch is closed when this ends."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(self._watch.fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                if DESKTOP_READY_FILE in self._watch.drain() and self.marker_file.exists():
                    self.marker_file.unlink(missing_ok=True)
                    await on_ready()
        finally:
            loop.remove_reader(self._watch.fd)
            self._watch.close()

    def close(self) -> None:
        """Close the watch (when :meth:`run` never ran)."""
        self._watch.close()
