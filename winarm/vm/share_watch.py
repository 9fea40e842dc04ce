"""The desktop-ready file on the share: the guest writes it at each logon (see
:data:`winarm.guest.DESKTOP_READY_FILE`), a second channel for the ``desktop-ready`` marker beside the console.

The share is written by the guest, which is untrusted: only a regular file at the marker's name counts. A folder,
a link or anything else there is left alone (never followed, never removed) and said once, so a guest cannot make
a later ``winarm up`` fail by planting one."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from winarm.guest import DESKTOP_READY_FILE
from winarm.vm.watch import IN_CLOSE_WRITE, IN_MOVED_TO, Watch


def _no_say(line: str) -> None:
    del line


class ShareWatch:
    """An inotify watch on a shared folder for the desktop-ready file. Opening raises OSError when the folder
    cannot be watched; a regular file left by an earlier run is removed first. ``say`` gets one line the first
    time something other than a regular file is found at the marker's name."""

    def __init__(self, folder: Path, say: Callable[[str], None] = _no_say) -> None:
        self.marker_file = folder / DESKTOP_READY_FILE
        self._say = say
        self._said = False
        self.take_marker()  # left by an earlier run
        self._watch = Watch(folder, IN_CLOSE_WRITE | IN_MOVED_TO)

    def take_marker(self) -> bool:
        """Remove the marker if it is a regular file (not followed if it is a link) and say whether it was.
        Anything else at its name is left as it is; an OSError while looking or removing counts as no marker."""
        try:
            mode = self.marker_file.lstat().st_mode
        except OSError:
            return False
        if not stat.S_ISREG(mode):
            if not self._said:
                self._said = True
                self._say(f"share: ignoring {self.marker_file} (not a regular file: the guest put it there)")
            return False
        try:
            self.marker_file.unlink()
        except OSError:
            return False
        return True

    async def run(self, on_ready: Callable[[], Awaitable[None]]) -> None:
        """Await ``on_ready()`` each time the file is written as a regular file (the file is then removed), until
        cancelled; the watch is closed when this ends."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(self._watch.fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                if DESKTOP_READY_FILE in self._watch.drain() and self.take_marker():
                    await on_ready()
        finally:
            loop.remove_reader(self._watch.fd)
            self._watch.close()

    def close(self) -> None:
        """Close the watch (when :meth:`run` never ran)."""
        self._watch.close()
