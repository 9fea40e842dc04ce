"""The writer of the initramfs archive: a "newc" (SVR4, no CRC) cpio, as the Linux kernel unpacks it."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

__all__ = ["Cpio"]


class Cpio:
    """Writer of a "newc" (SVR4, no CRC) cpio archive, as the Linux initramfs expects.

    Owners are root, times are zero, so the same inputs give the same bytes.
    """

    def __init__(self) -> None:
        """Start an empty archive."""
        self._buf = io.BytesIO()
        self._ino = 0

    def add_node(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        """Append one entry NAME (relative, no leading slash) with MODE, contents DATA and device RDEV."""
        self._ino += 1
        encoded = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._buf.write(header + encoded)
        self._pad()
        self._buf.write(data)
        self._pad()

    def add_tree(self, top: Path) -> None:
        """Append every directory, regular file and symlink under TOP, parents before children.

        Raises OSError when a file cannot be read.
        """
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            base = Path(dirpath)
            for name in [*dirnames, *sorted(filenames)]:
                path = base / name
                rel = path.relative_to(top).as_posix()
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    self.add_node(rel, stat.S_IFLNK | 0o777, os.readlink(path).encode())
                elif stat.S_ISDIR(st.st_mode):
                    self.add_node(rel, stat.S_IFDIR | 0o755)
                elif stat.S_ISREG(st.st_mode):
                    perm = 0o755 if st.st_mode & 0o111 else 0o644
                    self.add_node(rel, stat.S_IFREG | perm, path.read_bytes())

    def finish(self) -> bytes:
        """Append the trailer and return the whole archive."""
        self.add_node("TRAILER!!!", 0)
        return self._buf.getvalue()

    def _pad(self) -> None:
        """Pad the archive with zeros to a multiple of four bytes."""
        self._buf.write(b"\0" * (-self._buf.tell() % 4))
