"""Writing files safely: a file the user named either wholly there or not changed at all, and appends to a log
that never raise when the storage is full."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from winarm.errors import UserError


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, what: str = "file") -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync and a rename, with ``mode``.

    Nothing is left behind on failure. Raises :class:`UserError` (naming ``what`` and the path) when the folder
    does not exist, ``path`` is a folder, or the write fails (a read-only or full disk is the user's to fix).
    """
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a directory: give a file name")
    if not folder.is_dir():
        raise UserError(f"{what} {str(path)!r}: the folder {str(folder)!r} does not exist")
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise UserError(f"cannot write {str(path)!r}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise UserError(f"cannot write {str(path)!r}: {error.strerror}") from None


def append_some(fd: int, data: bytes) -> tuple[int, OSError | None]:
    """Write ``data`` to ``fd`` (opened for appending) until done or a write fails (a full storage); return
    how many bytes were written and the error, if any. Never raises for a failed write."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except OSError as error:
            return len(data) - len(view), error
    return len(data), None
