"""Waiting for files without polling: a minimal inotify watch usable from asyncio and from plain code.

Linux only (as winarm is). Used to notice the guest's desktop-ready file on the share and, in
``winarm phases --follow``, new events appended to a VM's phase log.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


class Watch:
    """An inotify watch on one path (a file or a directory) for ``mask``. The file descriptor becomes readable
    when something happened; :meth:`drain` returns the names reported (empty names for the path itself).

    Raises OSError when the path cannot be watched (missing, no permission, inotify limits)."""

    def __init__(self, path: Path, mask: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
        if libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
            error = ctypes.get_errno()
            os.close(fd)
            raise OSError(error, f"{os.strerror(error)}: {path}")
        self.fd = fd

    def drain(self) -> list[str]:
        """The names of every event queued so far (non-blocking)."""
        names: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return names
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size: offset + _EVENT.size + length]
                names.append(os.fsdecode(raw.rstrip(b"\0")))
                offset += _EVENT.size + length

    def wait(self, timeout: float | None) -> bool:
        """Block until an event is queued (True) or ``timeout`` seconds pass (False)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return bool(ready)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
